"""The learning-rate schedule under a time budget (--max-time): its horizon and its cosine."""

from __future__ import annotations

import json
import os
import signal
from types import SimpleNamespace

import pytest
import torch

from attnlab.models import GPT, GPTConfig
from attnlab.training import LMTrainingConfig, loop, train_language_model
from attnlab.training.schedule import BudgetHorizon, BudgetSchedule, warmup_cosine

TEXT = "abcabcabd" * 200


def _lrs_of(schedule, horizons):
    """The rates of steps 0, 1, ... with ``horizons[step]`` the estimate after each step."""
    lrs = []
    for step, horizon in enumerate(horizons):
        lrs.append(schedule.lr_at(step))
        schedule.step_done(step, horizon)
    return lrs


def test_without_a_budget_it_is_warmup_cosine():
    schedule = BudgetSchedule(lr=1.0, min_lr=0.1, warmup=10, max_steps=100)
    lrs = _lrs_of(schedule, [100] * 100)
    assert lrs == [warmup_cosine(s, lr=1.0, min_lr=0.1, warmup=10, total=100) for s in range(100)]
    assert schedule.cooldown_from is None


def test_the_last_fifth_of_the_budget_cools_down_to_min_lr():
    """100 steps fit a budget, max_steps is 2,000: the cosine over 2,000 steps (still high), then from
    step 80 a straight line to min_lr at step 100."""
    schedule = BudgetSchedule(lr=1.0, min_lr=0.1, warmup=10, max_steps=2000)
    lrs = _lrs_of(schedule, [100] * 100)
    cosine = [warmup_cosine(s, lr=1.0, min_lr=0.1, warmup=10, total=2000) for s in range(100)]
    assert lrs[:81] == cosine[:81] and schedule.cooldown_from == 80
    top = cosine[80]
    assert lrs[80:] == pytest.approx([0.1 + (top - 0.1) * (1 - (s - 80) / 20) for s in range(80, 100)])
    assert schedule.progress == 1.0 and schedule.lr_at(100) == pytest.approx(0.1)


def test_a_moving_horizon_never_raises_the_rate_and_ends_at_min_lr():
    """The estimate jumps about (the pace changed): the cool-down, once begun, is spread over the
    steps left, so the rate only falls after warm-up and is min_lr when the last estimate ends."""
    schedule = BudgetSchedule(lr=1.0, min_lr=0.1, warmup=5, max_steps=1000)
    lrs = _lrs_of(schedule, [1000] * 10 + [60] * 45 + [200] * 5 + [70] * 10)
    assert schedule.cooldown_from == 48  # 12 steps left of 60
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:], strict=False))
    assert lrs[5] == 1.0 and schedule.progress == 1.0 and schedule.lr_at(70) == pytest.approx(0.1)


def test_a_resumed_cooldown_goes_on_and_an_ended_one_starts_over():
    first = BudgetSchedule(lr=1.0, min_lr=0.1, warmup=5, max_steps=1000)
    _lrs_of(first, [100] * 90)  # Ctrl-C after step 90, in the cool-down
    resumed = BudgetSchedule(lr=1.0, min_lr=0.1, warmup=5, max_steps=1000)
    resumed.load_state_dict(first.state_dict())
    assert resumed.lr_at(90) == first.lr_at(90) < 0.6 and resumed.horizon == 100
    _lrs_of(first, [100] * 100)  # the budget ran out: at min_lr
    again = BudgetSchedule(lr=1.0, min_lr=0.1, warmup=5, max_steps=1000)
    again.load_state_dict(first.state_dict())
    assert again.cooldown_from is None
    assert again.lr_at(100) == warmup_cosine(100, lr=1.0, min_lr=0.1, warmup=5, total=1000)


def test_the_horizon_is_timed_after_warm_up():
    """Slow first steps (allocation, compilation) do not count once 5 steps after warm-up are timed."""
    horizon = BudgetHorizon(max_time=60.0, max_steps=10_000, warmup=10, first_step=0)
    # 10 warm-up steps took 10 s (the first alone 8 s): the whole run's pace stands in until then.
    assert horizon.estimate(10, 10.0) == 10 + 50
    assert horizon.estimate(14, 10.4) == 14 + int(49.6 * 14 / 10.4)  # 4 steps timed: not yet
    # 5 steps after warm-up in 0.5 s: 0.1 s a step, 49.5 s left.
    assert horizon.estimate(15, 10.5) == 15 + 495
    assert horizon.estimate(15, 70.0) == 15  # out of time
    capped = BudgetHorizon(max_time=60.0, max_steps=300, warmup=10, first_step=0)
    assert capped.estimate(10, 1.0) == 300
    assert BudgetHorizon(max_time=None, max_steps=300, warmup=10, first_step=0).estimate(10, 1.0) == 300
    # A run resumed past warm-up times from its second step (its first pays the one-time costs).
    resumed = BudgetHorizon(max_time=10.0, max_steps=10_000, warmup=10, first_step=500)
    assert resumed.estimate(501, 2.0) == 501 + 4  # the whole run's pace: 1 step in 2 s
    for done in range(502, 507):
        resumed.estimate(done, 2.0 + 0.1 * (done - 501))
    assert resumed.estimate(506, 2.5) == 506 + 75


def _data():
    vocab = {ch: i for i, ch in enumerate(sorted(set(TEXT)))}
    ids = torch.tensor([vocab[c] for c in TEXT])
    return ids[:1600], ids[1600:]


def _fake_clock(monkeypatch, seconds):
    """The loop's clock: each reading is the next of ``seconds`` (cumulative), so that the pace is
    what the test says whatever else the machine runs."""
    readings = iter(seconds)
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: next(readings)))


def _lrs(out):
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["lr"] for r in records if "lr" in r]


def _run(out, max_time, on_step=None, resume=False):
    train, val = _data()
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=4, max_positions=16))
    config = LMTrainingConfig(max_iters=100_000, max_time=max_time, batch_size=4, lr=1e-2, min_lr=1e-3,
                              warmup_iters=5, eval_interval=100_000)
    return train_language_model(model, train, val, config, out_dir=out, progress=False, on_step=on_step,
                                resume=resume)


@pytest.mark.usefixtures("one_thread")
def test_the_rate_reaches_min_lr_when_the_budget_runs_out(tmp_path, monkeypatch):
    """1 s of steps of 0.01 s, after 3 slow first steps of 0.1 s: 73 steps, with max_iters far
    away; the rate stays on max_iters' cosine, then cools down to min_lr at the 73rd step."""
    step_times = [0.1] * 3 + [0.01] * 10_000
    clock = [0.0]
    for seconds in step_times:
        clock.append(clock[-1] + seconds)
    _fake_clock(monkeypatch, clock)
    summary = _run(tmp_path, 1.0)
    lrs = _lrs(tmp_path)
    steps = next(k for k, t in enumerate(clock) if t >= 1.0)
    assert summary["steps"] == len(lrs) == steps == 73
    cosine = [warmup_cosine(s, lr=1e-2, min_lr=1e-3, warmup=5, total=100_000) for s in range(steps)]
    cooled = int(0.8 * steps) + 1  # the first step with at most 20% of the steps left
    assert lrs[:cooled] == pytest.approx(cosine[:cooled])
    one_step = (lrs[cooled] - 1e-3) / (steps - cooled)  # of the straight line down to min_lr
    assert 1e-3 <= lrs[-1] <= 1e-3 + one_step * 1.001  # its last step (the estimate may end one early)
    assert lrs[-2] == pytest.approx(lrs[-1] + one_step, rel=0.2)
    assert all(a >= b for a, b in zip(lrs[cooled - 1:], lrs[cooled:], strict=False))
    saved = torch.load(tmp_path / "training_state.pt", weights_only=True)["schedule"]
    assert saved["progress"] == 1.0  # at the budget's end the rate is min_lr


@pytest.mark.usefixtures("one_thread")
def test_resume_goes_on_with_the_same_rate(tmp_path, monkeypatch):
    """Ctrl-C at step 35 of a 0.4 s budget of 0.01 s steps (in the cool-down), resumed for the
    0.05 s left: the resumed run goes on with the rate of the uninterrupted run, from the
    checkpoint's state, and cools down to min_lr as it did."""
    _fake_clock(monkeypatch, [0.01 * i for i in range(10_000)])
    _run(tmp_path / "whole", 0.4)
    whole = _lrs(tmp_path / "whole")

    def ctrl_c(step, loss):
        if step == 35:
            os.kill(os.getpid(), signal.SIGINT)

    _fake_clock(monkeypatch, [0.01 * i for i in range(10_000)])
    assert _run(tmp_path / "split", 0.4, on_step=ctrl_c)["interrupted"]
    _fake_clock(monkeypatch, [0.01 * i for i in range(10_000)])
    _run(tmp_path / "split", 0.05, resume=True)
    split = _lrs(tmp_path / "split")
    assert len(split) == len(whole) == 40
    assert whole[35] < 0.7 * whole[30]  # cooling down
    assert split[:36] == whole[:36]  # the first resumed step's rate too, exactly
    # then the new run's own clock re-estimates the horizon (rounding may end one step apart)
    assert split[36:] == pytest.approx(whole[36:], abs=whole[34] - whole[35])
    assert split[-1] <= whole[35] - 3 * (whole[34] - whole[35])  # cooled down in the resumed run
