"""The fine-tuning recipe GPT-1 and BERT share, as settings for the shared loop.

GPT-1 §4.1 (Radford et al. 2018) and BERT Appendix A.3 (Devlin et al. 2019,
arXiv:1810.04805) fine-tune the same way: a few epochs over the labelled examples in
a new random order each, a learning rate warmed up linearly over a fraction of the
steps and decayed linearly to 0 at the last, and Adam(W) with its default beta2 of
0.999 (pre-training's 0.99/0.95 suit bigger steps). :func:`plan_epochs` turns a
fine-tuning config (``epochs``, ``max_steps``, ``batch_size``, ``lr``,
``warmup_fraction``, ``weight_decay``, ``grad_clip``, ``seed``, ``dtype``) into the
loop's :class:`~attnlab.training.loop.TrainingConfig`, the epoch order and the schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from attnlab.training.loop import TrainingConfig
from attnlab.training.order import EpochOrder
from attnlab.training.schedule import warmup_linear


@dataclass
class EpochPlan:
    """What the loop needs to fine-tune for some epochs: its settings, the batch order, the schedule."""

    config: TrainingConfig
    order: EpochOrder
    total: int  # optimizer steps
    warmup: int  # of them, warming up

    def schedule(self, step: int) -> float:
        return warmup_linear(step, lr=self.config.lr, warmup=self.warmup, total=self.total)


def plan_epochs(n_examples: int, config: Any, *, eval_interval: int | None = None) -> EpochPlan:
    """``config.epochs`` over ``n_examples`` in batches of ``config.batch_size`` (fewer steps if
    ``config.max_steps`` says so); evaluations every ``eval_interval`` steps (None: at the end only)."""
    total = math.ceil(n_examples / config.batch_size) * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = math.ceil(total * config.warmup_fraction)
    settings = TrainingConfig(
        max_steps=total, batch_size=config.batch_size, lr=config.lr, min_lr=0.0, warmup_steps=warmup,
        weight_decay=config.weight_decay, beta2=0.999, grad_clip=config.grad_clip,
        eval_interval=eval_interval or total, seed=config.seed, dtype=config.dtype,
    )
    return EpochPlan(settings, EpochOrder(n_examples, config.batch_size), total, warmup)
