"""attnlab::softmax_bf16_ (the C softmax of bf16 attention scores) against the torch formula it replaces."""

from __future__ import annotations

import pytest
import torch

import attnlab.nn.score_softmax as score_softmax
from attnlab.nn.attention import causal_mask, compiled_inference_attention

pytestmark = pytest.mark.skipif(not score_softmax.available(),
                                reason="no C compiler: the torch formula serves")


def reference(scores: torch.Tensor, scale: float, key_mask: torch.Tensor | None,
              causal: bool) -> torch.Tensor:
    """The torch formula: fp32 softmax over visible keys, hidden ones 0, rounded to bf16."""
    batch, _, q_len, k_len = scores.shape
    visible = torch.ones(batch, 1, q_len, k_len, dtype=torch.bool)
    if key_mask is not None:
        visible = visible & key_mask[:, None, None, :]
    if causal:
        visible = visible & causal_mask(q_len, k_len)
    x = (scores.float() * scale).masked_fill(~visible, float("-inf"))
    probs = torch.softmax(x, dim=-1).nan_to_num(0.0)  # a row with nothing visible: all 0
    return probs.masked_fill(~visible, 0.0).to(torch.bfloat16)


def ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest distance in bf16 units in the last place (both non-negative)."""
    return (a.view(torch.int16).int() - b.view(torch.int16).int()).abs().max().item()


@pytest.mark.parametrize("shape", [(2, 3, 5, 37), (1, 2, 16, 16), (2, 2, 7, 130), (1, 12, 64, 64)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_equals_the_torch_formula_to_one_bf16_unit(shape, masked, causal):
    generator = torch.Generator().manual_seed(0)
    scores = (torch.randn(shape, generator=generator) * 6).to(torch.bfloat16)
    key_mask = torch.rand(shape[0], shape[-1], generator=generator) > 0.3 if masked else None
    expected = reference(scores, 0.17, key_mask, causal)
    got = score_softmax.softmax_bf16(scores.clone(), 0.17, key_mask, causal)
    assert got.dtype == torch.bfloat16 and got.shape == shape
    assert ulps(got, expected) <= 1
    hidden = expected == 0
    assert torch.equal(got[hidden], expected[hidden])  # hidden keys exactly 0
    # and not the identity: the scores themselves are far from probabilities
    assert (scores.float() - expected.float()).abs().max() > 1


def test_a_row_with_no_visible_key_is_zero_and_the_op_writes_in_place():
    scores = torch.randn(2, 1, 3, 20).to(torch.bfloat16)
    key_mask = torch.ones(2, 20, dtype=torch.bool)
    key_mask[1] = False
    score_softmax.softmax_bf16_(scores, 1.0, key_mask, False)
    assert torch.equal(scores[1], torch.zeros_like(scores[1]))
    torch.testing.assert_close(scores[0].float().sum(-1), torch.ones(1, 3), rtol=0, atol=2e-2)


def test_key_padding_takes_only_one_row_of_keys_per_sequence():
    keys = torch.tensor([[True, False, True]])
    assert torch.equal(score_softmax.key_padding(keys[:, None, None, :], 2, 3), keys.expand(2, 3))
    assert score_softmax.key_padding(None, 2, 3) is None
    assert score_softmax.key_padding(torch.ones(1, 1, 2, 3, dtype=torch.bool), 1, 3) is None  # per query
    assert score_softmax.key_padding(torch.ones(1, 2, 1, 3, dtype=torch.bool), 1, 3) is None  # per head
    assert score_softmax.key_padding(torch.ones(1, 1, 1, 3), 1, 3) is None  # not boolean


@pytest.mark.parametrize("is_causal", [False, True])
def test_compiled_inference_attention_gives_the_torch_formulas_answer(monkeypatch, is_causal):
    generator = torch.Generator().manual_seed(1)
    query, key, value = (torch.randn(2, 4, n, 16, generator=generator).to(torch.bfloat16) for n in (5, 9, 9))
    padding = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    padding[1, ..., :2] = False
    fast = compiled_inference_attention(query, key, value, mask=padding, is_causal=is_causal)
    monkeypatch.setattr(score_softmax, "available", lambda: False)
    torch_formula = compiled_inference_attention(query, key, value, mask=padding, is_causal=is_causal)
    # the same bf16 matmuls around softmaxes within one bf16 unit of each other
    torch.testing.assert_close(fast.float(), torch_formula.float(), rtol=0, atol=2e-2)
