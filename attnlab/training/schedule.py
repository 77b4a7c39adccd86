"""Learning-rate schedules: the learning rate of optimizer step ``step`` (counted from 0).

- :func:`warmup_cosine`: GPT-2/3-style pre-training (the shared loop's default);
- :func:`warmup_linear`: GPT-1 §4.1 and BERT §A.3 fine-tuning (linear warm-up, linear decay to 0);
- :func:`noam_lr`: "Attention Is All You Need" §5.3 eq. (3) (warm-up, then inverse square root);
- :class:`BudgetSchedule`: warm-up + cosine with a cool-down to ``min_lr`` when a time budget
  (``--max-time``) runs out, :class:`BudgetHorizon` estimating the step at which it does.
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


def steps_in_budget(done: int, elapsed: float, *, steps_timed: int, max_time: float, max_iters: int,
                    seconds_timed: float | None = None) -> int:
    """The step a run will have reached when ``max_time`` seconds run out, at its pace so far.

    ``elapsed`` seconds of the budget are spent; ``steps_timed`` steps took ``seconds_timed``
    seconds (default ``elapsed``; evaluations included); the estimate is
    ``done + remaining seconds x steps per second``, at most ``max_iters``. Called every step,
    it corrects itself as the pace changes.
    """
    seconds = elapsed if seconds_timed is None else seconds_timed
    if steps_timed < 1 or seconds <= 0:
        return max_iters
    remaining = max(0.0, max_time - elapsed)
    return min(max_iters, done + int(remaining * steps_timed / seconds + 1e-9))  # 6.9999999 steps are 7


class BudgetHorizon:
    """The step at which ``max_time`` seconds will run out: where :class:`BudgetSchedule` ends its cool-down.

    The pace is timed from the end of warm-up (or, in a resumed run past it, from its second
    step), so that one-time costs of the first steps (allocation, compilation) do not count;
    evaluations count, as they spend the budget too. Until 5 steps are timed so (``trusted``),
    the pace of the whole run so far stands in, for the progress bar only. Never more than
    ``max_steps``; ``max_steps`` when there is no budget.
    """

    TIMED_STEPS = 5  # steps after the reference point before its pace is trusted

    def __init__(self, *, max_time: float | None, max_steps: int, warmup: int, first_step: int) -> None:
        self.max_time, self.max_steps = max_time, max_steps
        self.first_step = first_step  # this run's first step (a resumed run's step so far)
        self.timed_from_step = max(warmup, first_step + 1)
        self.timed_from_clock: float | None = None
        self.trusted = max_time is None

    def estimate(self, done: int, clock: float) -> int:
        """The horizon after ``done`` steps, ``clock`` seconds into this run (the same on every rank)."""
        if self.max_time is None:
            return self.max_steps
        if self.timed_from_clock is None and done >= self.timed_from_step:
            self.timed_from_step, self.timed_from_clock = done, clock
        self.trusted = self.timed_from_clock is not None and done - self.timed_from_step >= self.TIMED_STEPS
        if self.trusted:
            steps, seconds = done - self.timed_from_step, clock - self.timed_from_clock
        else:
            steps, seconds = done - self.first_step, clock
        return steps_in_budget(done, clock, steps_timed=steps, seconds_timed=seconds,
                               max_time=self.max_time, max_iters=self.max_steps)


class BudgetSchedule:
    """Warm-up + cosine over ``max_steps`` (:func:`warmup_cosine`), and under a time budget a
    linear cool-down to ``min_lr`` over the last ``COOLDOWN`` (20%) of the steps the budget holds.

    Warm-up, stable, decay (Hu et al. 2024, arXiv:2404.06395; Hägele et al. 2024, arXiv:2405.18392,
    who find that a short cool-down, around 20% of the steps, matches a cosine over the run): the rate
    stays on the cosine planned for ``max_steps`` (high, when the budget stops the run early) until
    ``horizon`` (:class:`BudgetHorizon`) is near, then decays to ``min_lr`` when the time runs out.
    The cool-down starts, from the rate reached, once the steps left are at most ``COOLDOWN`` of
    the horizon, and is then spread over the steps left as the horizon estimate moves:
    ``progress += (1 - progress) / (horizon - step)``, so the rate never rises again. Measured on
    ``attnlab train gpt``'s defaults at equal steps (whole-split validation loss after 500 steps:
    2.130), it beat both the cosine over ``max_steps`` cut off by the clock (2.182) and a cosine
    over the budget's steps (2.216), which decays too early for so short a run.
    Without a budget (``horizon`` stays ``max_steps``) it is :func:`warmup_cosine` exactly.
    ``state_dict`` goes into checkpoints: a run resumed in its cool-down goes on with the same rate.
    """

    COOLDOWN = 0.2

    def __init__(self, *, lr: float, min_lr: float, warmup: int, max_steps: int) -> None:
        self.lr, self.min_lr, self.warmup, self.max_steps = lr, min_lr, warmup, max_steps
        self.horizon = max_steps
        self.cooldown_from: int | None = None  # the first step of the cool-down, once begun
        self.top = lr  # the rate the cool-down starts from
        self.progress = 0.0  # of the cool-down: 0 at its start, 1 at min_lr

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (counted from 0)."""
        if self.cooldown_from is None:
            return warmup_cosine(step, lr=self.lr, min_lr=self.min_lr, warmup=self.warmup,
                                 total=self.max_steps)
        return self.min_lr + (self.top - self.min_lr) * (1.0 - self.progress)

    def step_done(self, step: int, horizon: int) -> None:
        """Step ``step`` is done; ``horizon`` is the step count the run is now expected to end at."""
        self.horizon = horizon
        if self.cooldown_from is None:
            begins = step + 1 >= self.warmup and horizon - (step + 1) <= self.COOLDOWN * horizon
            if horizon < self.max_steps and begins:
                self.top, self.cooldown_from, self.progress = self.lr_at(step + 1), step + 1, 0.0
            return
        left = horizon - step
        self.progress = 1.0 if left <= 1 else self.progress + (1.0 - self.progress) / left

    def state_dict(self) -> dict[str, float | int | None]:
        return {"horizon": self.horizon, "cooldown_from": self.cooldown_from, "top": self.top,
                "progress": self.progress}

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        """A saved cool-down goes on; one that had ended (the budget ran out) starts over: the rate
        goes back to the cosine and cools down again at the end of the new budget."""
        if state.get("cooldown_from") is None or float(state["progress"]) >= 1.0:
            return
        self.horizon, self.cooldown_from = int(state["horizon"]), int(state["cooldown_from"])
        self.top, self.progress = float(state["top"]), float(state["progress"])
