"""The building blocks of attnlab.nn refuse wrong inputs in one line: MultiHeadAttention
(input, mask, memory, constructor), KVCache, PositionwiseFeedForward and SwiGLUFeedForward.

Before, these failed inside torch ("not enough values to unpack", "mat1 and mat2 shapes
cannot be multiplied") or were accepted (``MultiHeadAttention(0, 2)``). The checks compare
shapes and dtypes only; the last tests show that torch.compile still captures one whole
graph and that torch.jit.trace still traces.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.nn.attention import KVCache, MultiHeadAttention, broadcast_padding_mask
from attnlab.nn.feedforward import PositionwiseFeedForward, SwiGLUFeedForward


# ----------------------------------------------------------------- MultiHeadAttention input
@pytest.mark.parametrize("x, message", [
    (torch.randn(5, 16), r"must be 3-D \(B, T, 16\); got shape \(5, 16\) \(add a batch dimension"),
    (torch.randn(2, 5, 16, 1), r"must be 3-D"),
    (torch.randn(2, 5, 12), r"x has width 12 but this layer's d_model is 16"),
    (torch.ones(2, 5, 16, dtype=torch.long), r"floating-point tensor .*got torch.int64"),
    ([[0.0] * 16], r"must be a torch.Tensor \(B, T, 16\); got list"),
])
def test_attention_input_is_checked(x, message):
    with pytest.raises(AttnlabError, match=message):
        MultiHeadAttention(16, 2)(x)


@pytest.mark.parametrize("mask, message", [
    (torch.ones(2, 7, dtype=torch.bool), r"mask of shape \(2, 7\) does not broadcast to \(2, 2, 5, 5\)"),
    (torch.ones(3, 1, 1, 5, dtype=torch.bool), r"does not broadcast"),
    (torch.ones(2, 1, 1, 1, 5, dtype=torch.bool), r"does not broadcast"),
    (torch.ones(2, 1, 1, 5, dtype=torch.long), r"mask must be boolean .*\.bool\(\)"),
    ([[True] * 5], r"mask must be a torch.Tensor"),
])
def test_attention_mask_is_checked(mask, message):
    with pytest.raises(AttnlabError, match=message):
        MultiHeadAttention(16, 2)(torch.randn(2, 5, 16), mask=mask)


def test_masks_that_broadcast_are_accepted():
    torch.manual_seed(0)
    module = MultiHeadAttention(16, 2).eval()
    x = torch.randn(2, 5, 16)
    padding = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    expected = module(x, mask=broadcast_padding_mask(padding))  # (B, 1, 1, S)
    as_float = torch.zeros(2, 1, 1, 5).masked_fill(padding[:, None, None, :] == 0, float("-inf"))
    assert torch.allclose(module(x, mask=as_float), expected, atol=1e-6)  # an additive mask
    assert module(x, mask=torch.ones(5, 5, dtype=torch.bool)).shape == (2, 5, 16)  # (T, S)
    assert module(x, mask=torch.ones(2, 2, 5, 5, dtype=torch.bool)).shape == (2, 5, 16)


def test_cross_attention_memory_is_checked():
    module = MultiHeadAttention(16, 2, cross_attention=True)
    x = torch.randn(2, 5, 16)
    with pytest.raises(AttnlabError, match=r"memory has width 8 but this layer's d_model is 16"):
        module(x, memory=torch.randn(2, 7, 8))
    with pytest.raises(AttnlabError, match=r"memory must be 3-D"):
        module(x, memory=torch.randn(7, 16))
    with pytest.raises(AttnlabError, match=r"memory holds 3 sequences but x holds 2"):
        module(x, memory=torch.randn(3, 7, 16))
    with pytest.raises(AttnlabError, match=r"memory holds 3 sequences but x holds 2"):
        module(x, memory=module.project_memory(torch.randn(3, 7, 16)))
    assert module(x, memory=torch.randn(2, 7, 16)).shape == (2, 5, 16)


# ----------------------------------------------------------------- MultiHeadAttention constructor
@pytest.mark.parametrize("args, kwargs, message", [
    ((0, 2), {}, r"d_model must be an int >= 1. Got 0"),
    ((-16, 2), {}, r"d_model must be an int >= 1"),
    ((16.0, 2), {}, r"d_model must be an int >= 1. Got 16.0"),
    ((16, 0), {}, r"n_heads must be an int >= 1. Got 0"),
    ((16, -2), {}, r"n_heads must be an int >= 1"),
    ((16, 4), {"n_kv_heads": 3}, r"n_kv_heads must be an int >= 1 that divides n_heads \(4\).* Got 3"),
    ((16, 4), {"n_kv_heads": 0}, r"n_kv_heads must be an int >= 1 that divides n_heads \(4\).* Got 0"),
    ((16, 4), {"n_kv_heads": 8}, r"n_kv_heads must be .* Got 8"),
    ((16, 2), {"d_head": 0}, r"d_head must be an int >= 1"),
    ((16, 2), {"dropout": 1.5}, r"dropout must be a probability in \[0, 1\]"),
    ((10, 3), {}, r"d_model \(10\) must be divisible by n_heads \(3\)"),
])
def test_attention_constructor_is_checked(args, kwargs, message):
    with pytest.raises(AttnlabError, match=message):
        MultiHeadAttention(*args, **kwargs)


# ----------------------------------------------------------------- KVCache
def test_kv_cache_of_another_batch_size_is_refused():
    module = MultiHeadAttention(16, 2)
    cache = KVCache(1, 2, 8, 8)
    with pytest.raises(AttnlabError, match=r"made for batch size 1 but got 3 sequences; make new caches"):
        module(torch.randn(3, 2, 16), kv_cache=cache, is_causal=True)
    with pytest.raises(AttnlabError, match=r"holds 4 heads of width 4"):
        module(torch.randn(1, 2, 16), kv_cache=KVCache(1, 4, 8, 4), is_causal=True)
    with pytest.raises(AttnlabError, match=r"one shape \(B, H, T, D\)"):
        cache.update(0, torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 2, 8))
    with pytest.raises(AttnlabError, match=r"start_pos must be >= 0"):
        cache.update(-1, torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8))
    assert module(torch.randn(1, 2, 16), kv_cache=cache, is_causal=True).shape == (1, 2, 16)


@pytest.mark.parametrize("args", [(0, 2, 8, 8), (1, 0, 8, 8), (1, 2, -1, 8), (1, 2, 8, 0), (1.5, 2, 8, 8)])
def test_kv_cache_constructor_is_checked(args):
    with pytest.raises(AttnlabError, match=r"must be an int >= 1"):
        KVCache(*args)


# ----------------------------------------------------------------- feed-forward networks
@pytest.mark.parametrize("layer", [PositionwiseFeedForward, SwiGLUFeedForward])
def test_feed_forward_input_is_checked(layer):
    ffn = layer(8, 16)
    with pytest.raises(AttnlabError, match=r"must end in d_model = 8; got shape \(2, 3, 7\)"):
        ffn(torch.randn(2, 3, 7))
    with pytest.raises(AttnlabError, match=r"must end in d_model = 8; got shape \(\)"):
        ffn(torch.tensor(1.0))
    with pytest.raises(AttnlabError, match=r"floating-point"):
        ffn(torch.ones(2, 3, 8, dtype=torch.long))
    with pytest.raises(AttnlabError, match=r"must be a torch.Tensor"):
        ffn([0.0] * 8)
    for name, args in (("d_model", (0, 16)), ("d_ff", (8, 0)), ("d_ff", (8, 2.5))):
        with pytest.raises(AttnlabError, match=f"{name} must be an int >= 1"):
            layer(*args)
    assert ffn(torch.randn(2, 3, 8)).shape == (2, 3, 8)
    assert ffn(torch.randn(4, 8)).shape == (4, 8)  # position-wise: any leading dimensions


# ----------------------------------------------------------------- compile and trace
def test_the_checks_keep_torch_compile_to_one_graph():
    """fullgraph=True fails on any graph break; the checks are shape and dtype comparisons only."""
    import torch._dynamo

    torch.manual_seed(1)
    module = MultiHeadAttention(16, 2, n_kv_heads=1).eval()
    ffn = PositionwiseFeedForward(16, 32).eval()
    cache = KVCache(2, 1, 8, 8)

    def step(x, mask, start_pos):
        return ffn(module(x, mask=mask, kv_cache=cache, start_pos=start_pos, is_causal=True))

    x, mask = torch.randn(2, 3, 16), torch.ones(2, 1, 1, 3, dtype=torch.bool)
    expected = step(x, mask, 0)
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="eager")
    assert torch.allclose(compiled(x, mask, 0), expected, atol=1e-6)
    # Compiled without fullgraph (as attnlab's speed module does), a wrong input still reads as
    # AttnlabError (with fullgraph, torch reports any raise as "Unsupported: Observed exception").
    lenient = torch.compile(step, backend="eager")
    with pytest.raises(AttnlabError, match="made for batch size 2 but got 3"):
        lenient(torch.randn(3, 3, 16), torch.ones(3, 1, 1, 3, dtype=torch.bool), 0)
    torch._dynamo.reset()


def test_the_checks_keep_jit_trace_working():
    torch.manual_seed(2)
    module = MultiHeadAttention(16, 2).eval()
    x = torch.randn(2, 5, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on Python values fixed at trace time
        traced = torch.jit.trace(module, (x,))
    other = torch.randn(2, 5, 16)
    assert torch.allclose(traced(other), module(other), atol=1e-6)
