"""Learning-rate schedules."""

from __future__ import annotations

import math


def warmup_cosine(step: int, *, lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total``.

    The schedule of GPT-2/3-style pre-training (Loshchilov & Hutter 2017, arXiv:1608.03983,
    for the cosine; Goyal et al. 2017, arXiv:1706.02677, for the warm-up).
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))
