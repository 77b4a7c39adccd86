"""attnlab::attend (attention for bf16 and fp32 inference in one C call) against float64, and when
MultiHeadAttention takes it."""

from __future__ import annotations

import math

import pytest
import torch

import attnlab.nn.fused_attention as fused_attention
from attnlab.nn.attention import MultiHeadAttention, causal_mask, compiled_inference_attention

needs_kernel = pytest.mark.skipif(not fused_attention.available(),
                                  reason="no C compiler, or a CPU without AVX512-BF16: the torch form serves")
needs_f32_kernel = pytest.mark.skipif(not fused_attention.f32_available(),
                                      reason="no C compiler, or a CPU without AVX-512: SDPA serves")
BOTH = [pytest.param(torch.bfloat16, marks=needs_kernel, id="bf16"),
        pytest.param(torch.float32, marks=needs_f32_kernel, id="fp32")]

# bf16 keeps 8 significant bits: q, k, v rounded to bf16 and the probabilities rounded once more move a
# context of unit-scale values by ~1e-2 at most.
BF16_ATOL = 3e-2


def exact(query, key, value, key_mask, causal) -> torch.Tensor:
    """Eq. 1 in float64 on the same bf16 inputs, hidden keys left out, empty rows 0."""
    batch, heads, q_len, _ = query.shape
    k_len, groups = key.shape[2], heads // key.shape[1]
    key, value = (t.double().repeat_interleave(groups, dim=1) for t in (key, value))
    visible = torch.ones(batch, 1, q_len, k_len, dtype=torch.bool)
    if key_mask is not None:
        visible = visible & key_mask[:, None, None, :]
    if causal:
        visible = visible & causal_mask(q_len, k_len)
    scores = query.double() @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    scores = scores.masked_fill(~visible, -math.inf)
    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ value


def inputs(batch, heads, kv_heads, q_len, k_len, d, seed=0, dtype=torch.bfloat16):
    """q as the fused projection leaves it (a strided view of (B, T, (H + 2 H_kv) D)), k and v as a cache."""
    generator = torch.Generator().manual_seed(seed)
    qkv = torch.randn(batch, q_len, (heads + 2 * kv_heads) * d, generator=generator).to(dtype)
    query = qkv[..., : heads * d].view(batch, q_len, heads, d).transpose(1, 2)
    key, value = (torch.randn(batch, kv_heads, k_len, d, generator=generator).to(dtype) for _ in "kv")
    return query, key, value


def sdpa(query, key, value, mask, causal):
    """fp32's reference: fused SDPA, bottom-right causal mask folded into the boolean mask."""
    visible = None if mask is None else mask
    if causal:
        aligned = causal_mask(query.shape[2], key.shape[2])
        visible = aligned if visible is None else visible & aligned
    return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=visible,
                                                            enable_gqa=True)


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize(
    "batch, heads, kv_heads, q_len, k_len, d",
    [(2, 4, 4, 5, 9, 16), (2, 4, 2, 7, 37, 32), (1, 3, 1, 13, 13, 64), (8, 12, 12, 128, 128, 32),
     (2, 2, 2, 3, 130, 128), (1, 2, 2, 1, 40, 64), (1, 2, 1, 9, 21, 48), (2, 3, 3, 17, 17, 80)],
    ids=["cache-offset", "grouped-tail", "one-kv-head", "minilm", "wide-heads", "one-query", "width-48",
         "width-80"],
)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_equals_float64_as_well_as_torch(dtype, batch, heads, kv_heads, q_len, k_len, d, masked, causal):
    query, key, value = inputs(batch, heads, kv_heads, q_len, k_len, d, dtype=dtype)
    key_mask = torch.rand(batch, k_len, generator=torch.Generator().manual_seed(1)) > 0.3 if masked else None
    mask = None if key_mask is None else key_mask[:, None, None, :]
    few = dtype == torch.float32 and q_len < fused_attention.MIN_F32_QUERIES  # fp32 leaves those to SDPA
    assert fused_attention.serves(query, key, value, mask) == (not few)
    got = fused_attention.attend(query, key, value, mask=mask, is_causal=causal)
    assert got.shape == (batch, heads, q_len, d) and got.dtype == dtype
    assert got.transpose(1, 2).is_contiguous()  # heads merge for the output projection without a copy
    expected = exact(query, key, value, key_mask, causal)
    error = (got.double() - expected).abs().max().item()
    if dtype == torch.bfloat16:
        groups = heads // kv_heads  # the torch form takes every query head's keys and values
        torch_form = compiled_inference_attention(query, key.repeat_interleave(groups, 1),
                                                  value.repeat_interleave(groups, 1), mask=mask,
                                                  is_causal=causal)
        assert error <= max(1.5 * (torch_form.double() - expected).abs().max().item(), 4e-3)
        assert error < BF16_ATOL
    else:  # fp32: SDPA's error, give or take the order of the sums and the exponential's last bit
        reference = sdpa(query, key, value, mask, causal).nan_to_num(0.0)
        assert error <= 2 * (reference.double() - expected).abs().max().item() + 2e-7
        assert error < 1e-5
    # the mask is applied: leaving it out moves the answer by far more than the error
    if masked or (causal and q_len > 1):
        wrong = fused_attention.attend(query, key, value).double()
        assert (wrong - expected).abs().max() > 10 * max(error, 1e-3)


@pytest.mark.parametrize("dtype", BOTH)
def test_a_row_with_no_visible_key_gets_zero(dtype):
    query, key, value = inputs(2, 2, 2, 3, 20, 16, dtype=dtype)
    key_mask = torch.ones(2, 20, dtype=torch.bool)
    key_mask[1] = False
    got = fused_attention.attend(query, key, value, mask=key_mask[:, None, None, :])
    assert torch.equal(got[1], torch.zeros_like(got[1]))
    assert got[0].abs().max() > 0
    # causal with more queries than keys: the first rows see nothing
    got = fused_attention.attend(*inputs(1, 2, 2, 6, 4, 16, dtype=dtype), is_causal=True)
    assert torch.equal(got[:, :, :2], torch.zeros_like(got[:, :, :2])) and got[:, :, 2:].abs().max() > 0


def test_serves_only_what_the_kernel_computes():
    query, key, value = inputs(1, 2, 2, 4, 4, 32)
    per_query = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    assert not fused_attention.serves(query.float(), key.float(), value.float(), None)  # 4 fp32 queries
    assert not fused_attention.serves(query.half(), key.half(), value.half(), None)
    assert not fused_attention.serves(query, key.float(), value.float(), None)  # mixed dtypes
    many = inputs(1, 2, 2, fused_attention.MIN_F32_QUERIES, 9, 32, dtype=torch.float32)
    assert fused_attention.serves(*many, None) == fused_attention.f32_available()
    assert not fused_attention.serves(*inputs(1, 2, 2, 4, 4, 24), None)  # head width not a multiple of 16
    assert not fused_attention.serves(query, key, value, per_query)
    assert not fused_attention.serves(query, key, value, per_query[:, :, :1].float())  # not boolean
    strided = query.transpose(-1, -2).contiguous().transpose(-1, -2)  # the head width not contiguous
    assert not fused_attention.serves(strided, key, value, None)
    assert fused_attention.serves(query, key, value, per_query[:, :, :1]) == fused_attention.available()


def test_key_padding_takes_only_one_row_of_keys_per_sequence():
    keys = torch.tensor([[True, False, True]])
    assert torch.equal(fused_attention.key_padding(keys[:, None, None, :], 2, 3), keys.expand(2, 3))
    assert fused_attention.key_padding(None, 2, 3) is None
    assert fused_attention.key_padding(torch.ones(1, 1, 2, 3, dtype=torch.bool), 1, 3) is None  # per query
    assert fused_attention.key_padding(torch.ones(1, 2, 1, 3, dtype=torch.bool), 1, 3) is None  # per head


def fused_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = fused_attention.attend

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(fused_attention, "attend", counted)
    return calls


@needs_kernel
@pytest.mark.parametrize("is_causal", [False, True])
def test_multi_head_attention_takes_it_for_bf16_inference_and_keeps_the_answer(monkeypatch, is_causal):
    torch.manual_seed(0)
    layer = MultiHeadAttention(64, 4, n_kv_heads=2).eval().requires_grad_(False)
    x, padding = torch.randn(2, 12, 64), torch.ones(2, 1, 1, 12, dtype=torch.bool)
    padding[1, ..., :3] = False
    with torch.no_grad():
        expected = layer(x, mask=padding, is_causal=is_causal)
        fast = layer.to(torch.bfloat16)
        calls = fused_calls(monkeypatch)
        got = fast(x.bfloat16(), mask=padding, is_causal=is_causal)
    assert calls
    torch.testing.assert_close(got.float(), expected, rtol=0, atol=BF16_ATOL)


@needs_f32_kernel
def test_multi_head_attention_takes_it_for_fp32_prompts_and_keeps_the_answer(monkeypatch):
    torch.manual_seed(0)
    layer = MultiHeadAttention(64, 4, n_kv_heads=2).eval().requires_grad_(False)
    x, padding = torch.randn(2, 20, 64), torch.ones(2, 1, 1, 20, dtype=torch.bool)  # 20 >= MIN_F32_QUERIES
    padding[1, ..., :3] = False
    with torch.no_grad():
        calls = fused_calls(monkeypatch)
        got = layer(x, mask=padding, is_causal=True)
        monkeypatch.setattr(fused_attention, "f32_available", lambda: False)  # SDPA's answer
        reference = layer(x, mask=padding, is_causal=True)
    assert len(calls) == 1
    torch.testing.assert_close(got, reference, rtol=0, atol=1e-6)


@needs_kernel
def test_training_and_fp32_decoding_keep_their_kernels(monkeypatch):
    layer = MultiHeadAttention(32, 2)
    calls = fused_calls(monkeypatch)
    layer.to(torch.bfloat16)(torch.randn(1, 4, 32).to(torch.bfloat16))  # weights need gradients
    layer.float()(torch.randn(1, 12, 32))
    with torch.no_grad():
        layer.eval()(torch.randn(1, 4, 32))  # fewer fp32 queries than MIN_F32_QUERIES
    assert not calls


@pytest.mark.parametrize("dtype", BOTH)
def test_threads_split_heads_and_change_nothing(dtype):
    query, key, value = inputs(2, 6, 3, 33, 70, 64, dtype=dtype)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fused_attention.attend(query, key, value, is_causal=True)
        torch.set_num_threads(2)
        two = fused_attention.attend(query, key, value, is_causal=True)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one, two)  # each head is one thread's whole task
