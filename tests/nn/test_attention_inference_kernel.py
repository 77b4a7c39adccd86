"""The inference kernel rule of attnlab.nn.attention: bf16, no grad, inside torch.compile, up to
COMPILED_EXPLICIT_MAX_KEYS keys -> compiled_inference_attention (bf16 matmuls, fp32 softmax); anything
else -> fused SDPA. The rule picks what it says, and the explicit kernel keeps SDPA's answer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.device import cpu_has_native_bf16
from attnlab.nn import fused_attention
from attnlab.nn.attention import (
    COMPILED_EXPLICIT_MAX_KEYS,
    MultiHeadAttention,
    broadcast_padding_mask,
    compiled_inference_attention,
    uses_compiled_explicit_attention,
)

# bf16 keeps 8 significant bits: q, k, v rounded to bf16 and the probabilities rounded once more move a
# context of unit-scale values by ~1e-2 at most (measured: 1.2e-2 max over 12 x 512 causal rows).
BF16_ATOL = 3e-2


def _qkv(batch: int, q_len: int, k_len: int, dtype: torch.dtype = torch.bfloat16):
    generator = torch.Generator().manual_seed(0)
    shapes = [(batch, 4, q_len, 16), (batch, 4, k_len, 16), (batch, 4, k_len, 16)]
    return [torch.randn(*shape, generator=generator).to(dtype) for shape in shapes]


def test_rule_picks_explicit_only_for_compiled_bf16_cpu_inference(monkeypatch):
    query = torch.zeros(1, 2, 8, 4, dtype=torch.bfloat16)
    boolean = torch.ones(1, 1, 1, 8, dtype=torch.bool)
    with torch.no_grad():
        assert not uses_compiled_explicit_attention(query, 8, None, 0.0)  # eager: flash is faster
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with torch.no_grad():
        assert uses_compiled_explicit_attention(query, 8, None, 0.0)
        assert uses_compiled_explicit_attention(query, COMPILED_EXPLICIT_MAX_KEYS, boolean, 0.0)
        assert not uses_compiled_explicit_attention(query, COMPILED_EXPLICIT_MAX_KEYS + 1, None, 0.0)
        assert not uses_compiled_explicit_attention(query.float(), 8, None, 0.0)
        assert not uses_compiled_explicit_attention(query, 8, None, 0.1)
        assert not uses_compiled_explicit_attention(query, 8, boolean.float(), 0.0)
    with torch.enable_grad():
        assert not uses_compiled_explicit_attention(query, 8, None, 0.0)


@pytest.mark.parametrize("is_causal", [False, True])
def test_explicit_kernel_equals_sdpa_with_padding_and_a_cache_offset(is_causal):
    query, key, value = _qkv(2, 5, 9)  # 5 new queries after 4 cached positions
    padding = torch.ones(2, 9, dtype=torch.long)
    padding[1, :2] = 0  # row 1's first two keys are padding
    mask = broadcast_padding_mask(padding)
    got = compiled_inference_attention(query, key, value, mask=mask, is_causal=is_causal)
    assert got.dtype == torch.bfloat16 and got.shape == (2, 4, 5, 16)
    full = mask.expand(2, 4, 5, 9)
    if is_causal:  # bottom-right aligned: query i sees keys j <= 4 + i
        full = full & torch.ones(5, 9, dtype=torch.bool).tril(4)
    expected = F.scaled_dot_product_attention(query.double(), key.double(), value.double(), attn_mask=full)
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=BF16_ATOL)
    # a wrong mask moves the answer by far more than the tolerance
    assert (compiled_inference_attention(query, key, value).double() - expected).abs().max() > 10 * BF16_ATOL


def test_explicit_kernel_zeroes_fully_masked_rows():
    query, key, value = _qkv(1, 3, 3)
    mask = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    assert torch.equal(compiled_inference_attention(query, key, value, mask=mask), torch.zeros_like(query))


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="bf16 is emulated on this CPU (far too slow)")
@pytest.mark.parametrize("heads", [4, 2], ids=["width-8-torch-form", "width-16-fused-where-built"])
def test_compiled_bf16_attention_runs_the_explicit_kernel_and_keeps_the_answer(heads):
    """Through MultiHeadAttention under torch.compile: no fused SDPA kernel runs (the C kernel, opaque to
    the compiler, where it runs; else the torch form), and the output stays within bf16 rounding of the
    fp32 layer."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    layer = MultiHeadAttention(32, heads).eval().requires_grad_(False)
    x = torch.randn(2, 12, 32)
    with torch.no_grad():
        expected = layer(x, is_causal=True)
        fast = layer.to(torch.bfloat16)
        run = torch.compile(lambda inputs: fast(inputs, is_causal=True))
        got = run(x.bfloat16())  # compiles
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(x.bfloat16())
    kernels = {event.key for event in prof.key_averages()}
    assert not any("scaled_dot_product" in name for name in kernels), sorted(kernels)
    fused = fused_attention.available() and (32 // heads) % 16 == 0  # the head widths the kernel serves
    assert ("attnlab::attend" in kernels) == fused, sorted(kernels)
    torch.testing.assert_close(got.float(), expected, rtol=0, atol=BF16_ATOL)
