"""The position-wise FFN (eq. 2 of arXiv:1706.03762) and its activations, against formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.errors import AttnlabError
from attnlab.nn.feedforward import ACTIVATIONS, PositionwiseFeedForward, activation_module

POINTS = torch.linspace(-6, 6, 241, dtype=torch.float64)


def gelu_exact(x: float) -> float:
    return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))


def gelu_tanh(x: float) -> float:
    return 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


FORMULAS = {
    "relu": lambda x: max(0.0, x), "gelu": gelu_exact, "gelu_tanh": gelu_tanh,
    "silu": lambda x: x / (1.0 + math.exp(-x)),
}
TORCH = {
    "relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu,
}


def test_the_four_activations_are_offered():
    assert sorted(ACTIVATIONS) == ["gelu", "gelu_tanh", "relu", "silu"]


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_equals_its_formula_and_torch(name):
    got = activation_module(name)(POINTS)
    formula = torch.tensor([FORMULAS[name](x) for x in POINTS.tolist()], dtype=torch.float64)
    assert (got - formula).abs().max().item() < 1e-12
    assert torch.allclose(got, TORCH[name](POINTS), rtol=0, atol=1e-12)


def test_exact_and_tanh_gelu_differ():
    # Guards against "gelu" silently being the approximation (they differ by ~1e-4 near |x| = 2).
    difference = (activation_module("gelu")(POINTS) - activation_module("gelu_tanh")(POINTS)).abs().max()
    assert difference.item() > 1e-5


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_feed_forward_equals_manual_two_layer_mlp(name):
    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(10, 23, activation=name).double()
    x = torch.randn(3, 5, 10, dtype=torch.float64)
    W1, b1, W2, b2 = ffn.fc_in.weight, ffn.fc_in.bias, ffn.fc_out.weight, ffn.fc_out.bias
    assert W1.shape == (23, 10) and W2.shape == (10, 23)
    hidden = TORCH[name](x @ W1.T + b1)
    expected = hidden @ W2.T + b2
    got = ffn(x)
    assert got.shape == (3, 5, 10)
    assert (got - expected).abs().max().item() < 1e-12


def test_feed_forward_is_position_wise():
    torch.manual_seed(1)
    ffn = PositionwiseFeedForward(6, 11)
    x = torch.randn(2, 4, 6)
    whole = ffn(x)
    for t in range(4):
        assert torch.allclose(whole[:, t], ffn(x[:, t]), atol=1e-6)


def test_feed_forward_without_bias():
    ffn = PositionwiseFeedForward(6, 11, bias=False)
    assert ffn.fc_in.bias is None and ffn.fc_out.bias is None
    assert torch.equal(ffn(torch.zeros(1, 2, 6)), torch.zeros(1, 2, 6))


@pytest.mark.parametrize("make", [lambda: activation_module("swish"),
                                  lambda: PositionwiseFeedForward(4, 8, activation="swish")])
def test_unknown_activation_raises(make):
    expected = r"Unknown activation 'swish'; choose one of \['gelu', 'gelu_tanh', 'relu', 'silu'\]"
    with pytest.raises(AttnlabError, match=expected):
        make()
