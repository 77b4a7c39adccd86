"""The shared loop's Task hooks: schedule, optimizer, extra loss figures, evaluation hooks
(early stopping), the end hook, frozen parts, and exact resume of an epoch order."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.models import GPT, GPTConfig
from attnlab.training.gpt_pretrain import next_token_loss
from attnlab.training.loop import Task, TrainingConfig, run_training
from attnlab.training.order import EpochOrder

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest

DATA = torch.randint(0, 20, (24, 9), generator=torch.Generator().manual_seed(0))  # 24 windows of 8 + 1


def _model(dropout: float = 0.1) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, max_positions=8, n_layers=1, n_heads=2, d_model=16, d_ff=32,
                         dropout=dropout))


def _epoch_task(**hooks) -> Task:
    order = EpochOrder(len(DATA), 4)
    return Task(next_batch=lambda g: DATA[order.next(g)], loss=next_token_loss,
                tokens=lambda b: b.numel(), order=order, **hooks)


def test_schedule_optimizer_figures_and_end_hook(tmp_path):
    steps, ends = [], []

    def loss(model, batch):
        value = next_token_loss(model, batch)
        return value, {"twice": 2 * value.detach()}

    def at_end(model, summary):
        ends.append(dict(summary))
        return {"extra": 7}

    task = Task(next_batch=lambda g: DATA[:4], loss=loss, tokens=lambda b: b.numel(),
                schedule=lambda step: 0.01 / (step + 1),
                optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.0),
                after_step=lambda model, step: steps.append(step), at_end=at_end,
                evaluate_final=lambda m: {"final": 1.0}, info={"note": "hi"})
    summary = run_training(_model(), task, TrainingConfig(max_iters=4, batch_size=4), out_dir=tmp_path,
                           progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["note"] == "hi"
    step_records = [r for r in records if "lr" in r]
    assert [r["lr"] for r in step_records] == pytest.approx([0.01, 0.005, 0.01 / 3, 0.0025])
    assert all(r["twice"] == pytest.approx(2 * r["train_loss"]) for r in step_records)
    assert steps == [1, 2, 3, 4] and len(ends) == 1 and ends[0]["final"] == 1.0
    assert summary["extra"] == 7 and records[-1]["extra"] == 7 and records[-1]["event"] == "end"


def test_early_stopping_hook_stops_without_a_second_final_evaluation():
    calls, seen = [], []
    scores = iter([0.5, 0.4, 0.3, 0.9])

    def evaluate(model):
        calls.append(1)
        return {"score": next(scores)}

    def after_evaluation(step, metrics, train_loss):
        seen.append((step, metrics["score"]))
        return metrics["score"] < 0.45  # stops at the second evaluation

    task = _epoch_task(evaluate_sample=evaluate, evaluate_final=evaluate, after_evaluation=after_evaluation)
    summary = run_training(_model(), task, TrainingConfig(max_iters=20, batch_size=4, eval_interval=2),
                           progress=False)
    assert summary["steps"] == 4 and summary["stopped_early"] and summary["score"] == 0.4
    assert seen == [(2, 0.5), (4, 0.4)] and len(calls) == 2


def test_evaluate_now_and_the_final_evaluation_reach_the_hook():
    seen = []
    task = _epoch_task(evaluate_sample=lambda m: {"x": 0.0}, evaluate_final=lambda m: {"x": 1.0},
                       evaluate_now=lambda step: step == 3,
                       after_evaluation=lambda step, metrics, loss: seen.append((step, metrics["x"])))
    summary = run_training(_model(), task, TrainingConfig(max_iters=5, batch_size=4), progress=False)
    assert seen == [(3, 0.0), (5, 1.0)] and not summary["stopped_early"]


def test_frozen_parts_stay_in_eval_mode():
    model = _model()
    for param in model.blocks.parameters():
        param.requires_grad_(False)
    modes = []

    def loss(m, batch):
        modes.append((m.training, m.blocks.training))
        return next_token_loss(m, batch)

    task = Task(next_batch=lambda g: DATA[:4], loss=loss, tokens=lambda b: b.numel(),
                evaluate_sample=lambda m: {})
    before = {k: v.clone() for k, v in model.blocks.state_dict().items()}
    run_training(model, task, TrainingConfig(max_iters=4, batch_size=4, eval_interval=2), progress=False)
    assert modes == [(True, False)] * 4  # also after the evaluation at step 2
    assert all(torch.equal(v, model.blocks.state_dict()[k]) for k, v in before.items())


def test_an_epoch_order_resumes_exactly(tmp_path):
    config = TrainingConfig(max_iters=9, batch_size=4, eval_interval=4)
    straight = _model()
    run_training(straight, _epoch_task(), config, out_dir=tmp_path / "a", progress=False)
    run_training(_model(), _epoch_task(), TrainingConfig(**{**config.__dict__, "max_steps": 5}),
                 out_dir=tmp_path / "b", progress=False)
    resumed = _model()
    summary = run_training(resumed, _epoch_task(), config, out_dir=tmp_path / "b", resume=True,
                           progress=False)
    assert summary["steps"] == 9
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
