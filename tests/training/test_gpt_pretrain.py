"""The language-model training loop: it learns, it logs, it saves a loadable model."""

from __future__ import annotations

import json

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError
from attnlab.models import GPT, GPTConfig
from attnlab.training import LMTrainingConfig, evaluate_loss, train_language_model
from attnlab.training.gpt_pretrain import optimizer_for
from attnlab.training.schedule import steps_in_budget, warmup_cosine

TEXT = "abcabcabd" * 200  # a pattern a tiny model learns in a few dozen steps


def _data():
    vocab = {ch: i for i, ch in enumerate(sorted(set(TEXT)))}
    ids = torch.tensor([vocab[c] for c in TEXT])
    return ids[:1600], ids[1600:]


def test_training_lowers_the_loss_and_saves(tmp_path):
    train, val = _data()
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=4, max_positions=16))
    before = evaluate_loss(model, val)
    config = LMTrainingConfig(max_iters=60, batch_size=8, lr=1e-2, warmup_iters=5, eval_interval=20)
    summary = train_language_model(model, train, val, config, out_dir=tmp_path, progress=False)
    assert summary["val_loss"] < 0.5 * before
    assert summary["steps"] == 60
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["event"] == "start" and records[-1]["event"] == "end"
    assert [r["step"] for r in records if "val_loss_sample" in r] == [20, 40]
    assert [r["step"] for r in records if "train_loss" in r and "event" not in r] == list(range(1, 61))
    loaded = attnlab.load_pretrained(tmp_path)
    ids = val[:16][None]
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_saved_model_loads_in_transformers(tmp_path):
    import transformers
    train, val = _data()
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=4, max_positions=16))
    train_language_model(model, train, val, LMTrainingConfig(max_iters=3, batch_size=2),
                         out_dir=tmp_path, progress=False)
    reference = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids = val[:16][None]
    with torch.no_grad():
        assert (reference(input_ids=ids).logits - model(ids).logits).abs().max() < 1e-5


@pytest.mark.parametrize("length", [16 * 5, 16 * 5 + 1, 16 * 5 + 7])
def test_evaluate_loss_covers_the_whole_split(length):
    """Every token but the first is predicted once, from the tokens since its window began."""
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=4, max_positions=16)).eval()
    data = torch.randint(0, 4, (length,))
    losses = []
    with torch.no_grad():
        for t in range(1, length):
            start = ((t - 1) // 16) * 16  # the window that predicts token t
            logits = model(data[start:t][None]).logits[0, -1]
            losses.append(-torch.log_softmax(logits, -1)[data[t]].item())
    expected = sum(losses) / len(losses)
    assert evaluate_loss(model, data, batch_size=2) == pytest.approx(expected, rel=1e-5)


def test_same_seed_same_run():
    train, val = _data()
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=4, max_positions=16))
        summary = train_language_model(model, train, val, LMTrainingConfig(max_iters=5, batch_size=4),
                                       progress=False)
        losses.append(summary["train_loss"])
    assert losses[0] == losses[1]


def test_weight_decay_only_on_linear_matrices():
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=4))
    decay, no_decay = optimizer_for(model, LMTrainingConfig()).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert model.embeddings.token.weight in no_decay["params"]  # tied with the output layer
    n_params = sum(p.numel() for group in (decay, no_decay) for p in group["params"])
    assert n_params == model.num_parameters()


def test_schedule_warms_up_then_decays():
    lrs = [warmup_cosine(s, lr=1.0, min_lr=0.1, warmup=10, total=100) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


def test_steps_in_budget_follows_the_pace_so_far():
    # 50 steps in 10 s of a 60 s budget: 250 more at that pace.
    assert steps_in_budget(50, 10.0, steps_timed=50, max_time=60, max_iters=10_000) == 300
    assert steps_in_budget(50, 10.0, steps_timed=50, max_time=60, max_iters=200) == 200  # capped
    assert steps_in_budget(80, 10.0, steps_timed=30, max_time=60, max_iters=10_000) == 230  # resumed at 50
    assert steps_in_budget(50, 70.0, steps_timed=50, max_time=60, max_iters=10_000) == 50  # time is up
    assert steps_in_budget(0, 0.0, steps_timed=0, max_time=60, max_iters=10_000) == 10_000  # no pace yet


def test_a_time_budget_sets_the_progress_bar_end_and_the_schedule(tmp_path, monkeypatch, capsys):
    """With max_time the bar ends where the clock will stop the run (its ETA follows the time
    limit), and so does the schedule: the rate cools down to min_lr when the time runs out (see
    tests/training/test_schedule.py). The loop's clock is faked (0.01 s a step) so that the pace
    is steady whatever else the machine runs."""
    from types import SimpleNamespace

    from attnlab.training import loop

    ticks = iter(range(10**9))
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 0.01))
    train, val = _data()
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=4, max_positions=16))
    config = LMTrainingConfig(max_iters=100_000, max_time=1.0, batch_size=4, lr=1e-2, min_lr=1e-3,
                              warmup_iters=5, eval_interval=100_000)
    summary = train_language_model(model, train, val, config, out_dir=tmp_path, progress=True)
    assert summary["steps"] == 100  # 1 s of 0.01 s steps
    bars = capsys.readouterr().err.replace("\r", "\n")
    assert "100/100 " in bars and "/100000" in bars  # planned from max_iters, then from the clock
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if "lr" in r]
    # max_iters' cosine until the last 20 of the 100 steps, then a straight line down to min_lr
    assert lrs[:81] == pytest.approx([warmup_cosine(step, lr=1e-2, min_lr=1e-3, warmup=5, total=100_000)
                                      for step in range(81)])
    assert lrs[-1] == pytest.approx(1e-3 + (lrs[80] - 1e-3) / 20)


def test_too_short_data_and_bad_settings():
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=4, max_positions=16))
    with pytest.raises(AttnlabError, match="block size"):
        train_language_model(model, torch.zeros(10, dtype=torch.long), torch.zeros(10, dtype=torch.long),
                             LMTrainingConfig(max_iters=1), progress=False)
    with pytest.raises(AttnlabError, match="'batch_size'"):
        LMTrainingConfig(batch_size=0)
    with pytest.raises(AttnlabError, match="lr must be > 0"):
        LMTrainingConfig(lr=-1)
