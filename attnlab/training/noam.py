"""The learning-rate schedule of "Attention Is All You Need", §5.3 eq. (3):

    lrate = d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)

a linear increase over the first ``warmup_steps`` steps, then a decrease proportional
to the inverse square root of the step; the peak, at step = warmup_steps, is
(d_model · warmup_steps)^-0.5. The paper uses warmup_steps = 4000 with Adam
(beta1 = 0.9, beta2 = 0.98, epsilon = 1e-9). ``scale`` multiplies the whole curve
(1 in the paper; the "factor" of later implementations).
"""

from __future__ import annotations

from attnlab.errors import AttnlabError


def noam_lr(step: int, *, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """The learning rate of optimizer step ``step`` (counted from 1)."""
    if step < 1 or warmup < 1:
        raise AttnlabError(f"step and warmup must be >= 1. Got step={step}, warmup={warmup}.")
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
