"""The position-wise feed-forward network, §3.3 of arXiv:1706.03762.

    FFN(x) = act(x W_1 + b_1) W_2 + b_2                                   (eq. 2)

applied to every position separately and identically: it is a two-layer MLP
(Rumelhart, Hinton & Williams 1986) whose batch is every (sequence, position).
The activation differs across the family:

    relu       max(0, x)                      the Transformer paper
    gelu       x Φ(x), exact                  BERT (Devlin et al. 2019, arXiv:1810.04805)
    gelu_tanh  the tanh approximation of GELU GPT-2 (Hendrycks & Gimpel 2016, arXiv:1606.08415)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import Tensor, nn

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.nn.linear import Linear

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_tanh": partial(nn.GELU, approximate="tanh"),
    "silu": nn.SiLU,
}


def activation_module(name: str) -> nn.Module:
    """The nn.Module for an activation name in :data:`ACTIVATIONS`."""
    if name not in ACTIVATIONS:
        raise AttnlabError(
            f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}."
        )
    return ACTIVATIONS[name]()


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = act(x W_1 + b_1) W_2 + b_2 on (B, T, M) -> (B, T, M).

    ``fc_in`` is W_1 (M -> d_ff), ``fc_out`` is W_2 (d_ff -> M).
    """

    def __init__(self, d_model: int, d_ff: int, *, activation: str = "relu", bias: bool = True):
        super().__init__()
        _check_sizes(d_model, d_ff)
        self.fc_in = Linear(d_model, d_ff, bias=bias)
        self.activation = activation_module(activation)
        self.fc_out = Linear(d_ff, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        check_width(x, self.fc_in.in_features)
        return self.fc_out(self.activation(self.fc_in(x)))


def _check_sizes(d_model: int, d_ff: int) -> None:
    check_int("d_model", d_model)
    check_int("d_ff", d_ff)


def check_width(x, d_model: int) -> None:
    """``x`` must be a floating-point (..., d_model) tensor: shape and dtype lookups only."""
    if not isinstance(x, Tensor):
        raise AttnlabError(f"The feed-forward input must be a torch.Tensor (..., {d_model}); "
                           f"got {type(x).__name__}.")
    if x.dim() == 0 or x.shape[-1] != d_model:
        raise AttnlabError(
            f"The feed-forward input must end in d_model = {d_model}; got shape {tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise AttnlabError(f"The feed-forward input must be a floating-point tensor; got {x.dtype}.")


class SwiGLUFeedForward(nn.Module):
    """FFN_SwiGLU(x) = (SiLU(x W_gate) ⊙ x W_up) W_down, (B, T, M) -> (B, T, M).

    Shazeer 2020, "GLU Variants Improve Transformer", arXiv:2002.05202, eq. 6;
    the feed-forward network of Llama-family models (no biases there).
    """

    def __init__(self, d_model: int, d_ff: int, *, bias: bool = False) -> None:
        super().__init__()
        _check_sizes(d_model, d_ff)
        self.gate = Linear(d_model, d_ff, bias=bias)
        self.up = Linear(d_model, d_ff, bias=bias)
        self.down = Linear(d_ff, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        check_width(x, self.gate.in_features)
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))
