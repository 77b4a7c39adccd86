"""plan_epochs: epochs to steps, the warm-up fraction, GPT-1/BERT's AdamW beta2 and linear schedule."""

from __future__ import annotations

import pytest

from attnlab.training.bert_finetune import FinetuneConfig
from attnlab.training.fine_tuning import plan_epochs


def test_epochs_become_steps_with_a_linear_schedule():
    plan = plan_epochs(25, FinetuneConfig(epochs=3, batch_size=8, lr=1e-3, warmup_fraction=0.25))
    assert plan.total == 12 and plan.warmup == 3  # 4 batches an epoch (the last of 1 example)
    assert plan.config.max_steps == 12 and plan.config.beta2 == 0.999 and plan.config.min_lr == 0.0
    assert plan.config.eval_interval == 12  # evaluated at the end only
    assert [plan.schedule(s) for s in (0, 2, 3, 12)] == pytest.approx([1e-3 / 3, 1e-3, 1e-3, 0.0])
    assert plan.order.n_items == 25 and plan.order.batch_size == 8


def test_max_steps_cuts_and_eval_interval_is_kept():
    plan = plan_epochs(25, FinetuneConfig(epochs=3, batch_size=8, max_steps=5), eval_interval=2)
    assert plan.total == 5 and plan.config.max_steps == 5 and plan.config.eval_interval == 2
