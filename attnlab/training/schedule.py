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


def steps_in_budget(done: int, elapsed: float, *, steps_timed: int, max_time: float, max_iters: int) -> int:
    """The step a run will have reached when ``max_time`` seconds run out, at its pace so far.

    ``steps_timed`` steps took ``elapsed`` seconds (evaluations included); the estimate is
    ``done + remaining seconds x steps per second``, at most ``max_iters``. Called every step,
    it corrects itself as the pace changes (the progress bar's end under ``--max-time``).
    """
    if steps_timed < 1 or elapsed <= 0:
        return max_iters
    remaining = max(0.0, max_time - elapsed)
    return min(max_iters, done + int(remaining * steps_timed / elapsed))
