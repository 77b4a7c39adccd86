"""attnlab.nn.linear: F.linear's values on either GEMM, and oneDNN only where nothing needs gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnlab.nn.linear as linear_module
from attnlab.errors import AttnlabError
from attnlab.nn.linear import Linear, linear, uses_onednn

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this build")


@pytest.fixture
def counted(monkeypatch):
    """oneDNN forced on, and its calls counted."""
    calls = []
    real = linear_module._onednn_linear

    def counting(x, weight, bias):
        calls.append(tuple(x.shape))
        return real(x, weight, bias)

    monkeypatch.setattr(linear_module, "onednn_is_faster", lambda: True)
    monkeypatch.setattr(linear_module, "_onednn_linear", counting)
    return calls


@needs_onednn
@pytest.mark.parametrize("case", ["2d", "3d", "sliced", "transposed", "no_bias", "one_row"])
def test_onednn_gives_f_linears_values(counted, case):
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(48, 32, generator=generator), torch.randn(48, generator=generator)
    x = {"2d": torch.randn(7, 32, generator=generator),
         "3d": torch.randn(2, 5, 32, generator=generator),
         "sliced": torch.randn(6, 64, generator=generator)[:, 16:48],  # rows with a stride of 64
         "transposed": torch.randn(32, 6, generator=generator).T,
         "no_bias": torch.randn(4, 32, generator=generator),
         "one_row": torch.randn(1, 32, generator=generator)}[case]
    bias = None if case == "no_bias" else bias
    with torch.no_grad():
        got = linear(x, weight, bias)
    expected = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    assert counted == [tuple(x.shape)]
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert torch.allclose(got.double(), expected, rtol=0, atol=1e-5)  # fp32 rounding of sums of ~32


@needs_onednn
def test_anything_needing_gradients_stays_on_f_linear(counted):
    layer = Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    out = layer(x)  # parameters and input require grad: autograd must see F.linear
    out.sum().backward()
    assert counted == [] and x.grad is not None and layer.weight.grad is not None
    with torch.no_grad():
        layer(x)
    assert counted == [(3, 8)]
    frozen = Linear(8, 4).requires_grad_(False)
    frozen(torch.randn(2, 8))  # grad mode on, but nothing requires it
    assert counted == [(3, 8), (2, 8)]


@needs_onednn
def test_autocast_other_dtypes_and_empty_inputs_stay_on_f_linear(counted):
    layer = Linear(8, 4)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer(torch.randn(3, 8)).dtype == torch.bfloat16  # autocast saw the call
        layer.bfloat16()
        assert layer(torch.randn(3, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16
        assert Linear(8, 4)(torch.randn(0, 8)).shape == (0, 4)
    assert counted == []


def test_the_layer_is_an_nn_linear_with_its_state_dict():
    layer = Linear(6, 3)
    assert isinstance(layer, nn.Linear)
    plain = nn.Linear(6, 3)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 6)
    with torch.no_grad():
        assert torch.allclose(layer(x), plain(x), atol=1e-6)


def test_the_environment_fixes_the_choice(monkeypatch):
    linear_module.onednn_is_faster.cache_clear()
    try:
        monkeypatch.setenv(linear_module.ENVIRONMENT, "torch")
        assert linear_module.onednn_is_faster() is False
        assert not uses_onednn(torch.randn(2, 4), torch.randn(3, 4))
        linear_module.onednn_is_faster.cache_clear()
        monkeypatch.setenv(linear_module.ENVIRONMENT, "mkl")
        with pytest.raises(AttnlabError, match=r"ATTNLAB_FP32_GEMM must be 'torch' or 'onednn'.*'mkl'"):
            linear_module.onednn_is_faster()
        linear_module.onednn_is_faster.cache_clear()
        monkeypatch.delenv(linear_module.ENVIRONMENT)
        assert linear_module.onednn_is_faster() in (True, False)  # measured on this CPU
    finally:
        linear_module.onednn_is_faster.cache_clear()


@needs_onednn
def test_a_flop_counter_and_jit_trace_see_f_linear(counted):
    from torch.utils.flop_counter import FlopCounterMode

    layer = Linear(8, 4).requires_grad_(False)
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(3, 8))
    assert counter.get_total_flops() == 2 * 3 * 8 * 4 and counted == []
    traced = torch.jit.trace(layer, (torch.randn(3, 8),))
    assert "aten::linear" in str(traced.graph) and "mkldnn" not in str(traced.graph)
    x = torch.randn(5, 8)
    assert torch.allclose(traced(x), F.linear(x, layer.weight, layer.bias), atol=1e-6)


def test_a_build_without_onednn_keeps_f_linear(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    monkeypatch.setenv(linear_module.ENVIRONMENT, "onednn")
    linear_module.onednn_is_faster.cache_clear()
    try:
        assert linear_module.onednn_is_faster() is False
        layer = Linear(8, 4).requires_grad_(False)
        x = torch.randn(3, 8)
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    finally:
        linear_module.onednn_is_faster.cache_clear()
