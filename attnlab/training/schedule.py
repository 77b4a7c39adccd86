"""Learning-rate schedules: the learning rate of optimizer step ``step`` (counted from 0).

- :func:`warmup_cosine`: GPT-2/3-style pre-training (the shared loop's default);
- :func:`warmup_linear`: GPT-1 §4.1 and BERT §A.3 fine-tuning (linear warm-up, linear decay to 0);
- :func:`noam_lr`: "Attention Is All You Need" §5.3 eq. (3) (warm-up, then inverse square root).
"""

from __future__ import annotations

import math

from attnlab.errors import AttnlabError


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


def warmup_linear(step: int, *, lr: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then linear decay to 0 at ``total`` (GPT-1 §4.1)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * max(0.0, (total - step) / max(1, total - warmup))


def noam_lr(step: int, *, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """The learning rate of eq. (3) of arXiv:1706.03762 at optimizer step ``step`` (counted from 1):

        lrate = scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)

    a linear increase over the first ``warmup`` steps, then a decrease proportional to the
    inverse square root of the step; the peak, at step = warmup, is (d_model · warmup)^-0.5.
    The paper uses warmup = 4000 with Adam (beta1 = 0.9, beta2 = 0.98, epsilon = 1e-9);
    ``scale`` (1 in the paper) is the "factor" of later implementations.
    """
    if step < 1 or warmup < 1:
        raise AttnlabError(f"step and warmup must be >= 1. Got step={step}, warmup={warmup}.")
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


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
