"""attnlab.inspect.analysis and .report against direct computations: value-weighted attention,
rollout and the per-head decomposition, on BERT, GPT-2, grouped-query Llama, the encoder-decoder
(cross-attention too) and the real MiniLM weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlab
from attnlab.compare import Size, build
from attnlab.errors import AttnlabError
from attnlab.inspect import trace
from attnlab.inspect.analysis import (
    attention_rollout,
    head_contributions,
    head_output_weights,
    output_bias,
    transformed_value_norms,
    value_norms,
    value_weighted_attention,
    value_weighted_attention_layer,
)
from attnlab.inspect.report import format_inspection, inspect_ids, inspect_text


@pytest.fixture(scope="module")
def models(hf_bert, hf_gpt2, hf_llama):
    return {"bert": attnlab.load_pretrained(hf_bert[1]), "gpt2": attnlab.load_pretrained(hf_gpt2[1]),
            "llama": attnlab.load_pretrained(hf_llama[1])}


def _traced(model, length=9, batch=2, seed=0):
    ids = torch.randint(0, 97, (batch, length), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), trace(model) as t:
        model(ids)
    return t.attention


def _head_value(record, h):
    """v_j of query head h recomputed from the layer input X: (B, S, D); no recorded value used."""
    m = record.module
    kv_head = h // (m.n_heads // m.n_kv_heads)
    rows = slice(kv_head * m.d_head, (kv_head + 1) * m.d_head)
    v = record.input @ m.value_weight[rows].T
    return v + m.value_bias[rows] if m.value_bias is not None else v


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_value_weighted_attention_equals_the_loop(models, name):
    """||alpha_ij (x_j W_V^h + b_V^h) W_O^h|| computed term by term from X and the weights."""
    record = _traced(models[name])[1]
    m = record.module
    got = value_weighted_attention(record)
    layer = value_weighted_attention_layer(record, chunk=4)  # chunks smaller than T on purpose
    w_o = m.out.weight.detach()  # (M, H*D)
    batch, heads, t, s = record.probs.shape
    summed = torch.zeros(batch, t, s, m.d_model)
    for h in range(heads):
        v = _head_value(record, h).detach()  # (B, S, D)
        w_h = w_o[:, h * m.d_head:(h + 1) * m.d_head]  # (M, D)
        for b in range(batch):
            for i in range(t):
                for j in range(s):
                    vector = record.probs[b, h, i, j] * (w_h @ v[b, j])
                    assert abs(float(vector.norm()) - float(got[b, h, i, j])) < 1e-5
                    summed[b, i, j] += vector
    assert torch.allclose(layer, summed.norm(dim=-1), atol=1e-5)


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_norms_of_value_vectors_and_what_they_carry(models, name):
    record = _traced(models[name])[0]
    m = record.module
    for h in range(m.n_heads):
        v = _head_value(record, h)
        assert torch.allclose(value_norms(record)[:, h], v.norm(dim=-1), atol=1e-5)
        w_h = m.out.weight[:, h * m.d_head:(h + 1) * m.d_head]
        assert torch.allclose(transformed_value_norms(record)[:, h], (v @ w_h.T).norm(dim=-1), atol=1e-5)
    assert head_output_weights(m).shape == (m.n_heads, m.d_head, m.d_model)


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_heads_add_up_to_the_attention_output(models, name):
    """sum_h context^h W_O^(h) + b_O == the layer's attention output, to 1e-5."""
    for record in _traced(models[name]):
        parts = head_contributions(record)  # (B, H, T, M)
        bias = output_bias(record)
        total = parts.sum(1) + (bias if bias is not None else 0)
        assert (total - record.output).abs().max().item() < 1e-5
    assert (output_bias(record) is None) == (name == "llama")  # the Llama family has no biases


def _rollout_oracle(probs_per_layer, residual=True):
    result = None
    for probs in probs_per_layer:
        a = probs.double().numpy().mean(axis=1)  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * np.eye(a.shape[-1])[None]
        a = a / a.sum(-1, keepdims=True)
        result = a if result is None else np.einsum("bij,bjk->bik", a, result)
    return result


@pytest.mark.parametrize("name", ["bert", "gpt2"])
@pytest.mark.parametrize("residual", [True, False])
def test_rollout_equals_the_product_of_layers(models, name, residual):
    probs = [r.probs for r in _traced(models[name])]
    got = attention_rollout(probs, residual=residual)
    assert np.allclose(got.double().numpy(), _rollout_oracle(probs, residual), atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.ones(got.shape[:2]), atol=1e-5)  # rows stay distributions
    if name == "gpt2":
        assert torch.all(got.triu(1) == 0)  # causal: no flow from the future


def test_rollout_of_one_layer_and_head_reductions(models):
    probs = [r.probs for r in _traced(models["bert"])]
    first = probs[0]
    expected = 0.5 * first.mean(1) + 0.5 * torch.eye(first.shape[-1])
    assert torch.allclose(attention_rollout(probs[:1]), expected, atol=1e-6)
    assert torch.allclose(attention_rollout(probs[:1], residual=False), first.mean(1), atol=1e-6)
    top = attention_rollout(probs[:1], residual=False, head_reduction="max")
    assert torch.allclose(top, first.amax(1) / first.amax(1).sum(-1, keepdim=True), atol=1e-6)
    with pytest.raises(AttnlabError, match="head_reduction"):
        attention_rollout(probs, head_reduction="median")
    with pytest.raises(AttnlabError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(AttnlabError, match="cross-attention does not roll out"):
        attention_rollout([torch.rand(1, 2, 3, 4)])


def test_a_large_weight_on_a_short_value_vector_adds_little(models):
    """Kobayashi et al.'s point: with one value vector zeroed, its weight no longer counts."""
    record = _traced(models["bert"], batch=1)[0]
    weighted = value_weighted_attention(record)
    shrunk = type(record)(**{**record.__dict__, "value": record.value.clone()})
    shrunk.value[:, :, 0] = 0.0  # token 0's value vectors, every head
    after = value_weighted_attention(shrunk)
    assert torch.all(after[..., 0] == 0) and torch.all(record.probs[..., 0] > 0)
    assert torch.equal(after[..., 1:], weighted[..., 1:])


def test_encoder_decoder_has_three_stacks_and_cross_attention_decomposes():
    torch.manual_seed(0)
    model = build("transformer", Size(d_model=32, n_layers=2, n_heads=4, vocab_size=50, seq_len=16))
    source, target = [5, 6, 7, 8, 9, 10], [2, 11, 12, 13]
    found = inspect_ids(model, source, [f"s{i}" for i in source], target, [f"t{i}" for i in target])
    assert [s.kind for s in found.stacks] == ["encoder", "decoder", "cross"]
    encoder, decoder, cross = found.stacks
    assert encoder.probs().shape == (2, 4, 6, 6)
    assert decoder.probs().shape == (2, 4, 4, 4) and torch.all(decoder.probs().triu(1) == 0)
    assert cross.probs().shape == (2, 4, 4, 6)  # target queries, source keys and values
    assert cross.query_tokens == ["t2", "t11", "t12", "t13"] and cross.key_tokens[0] == "s5"
    for stack in found.stacks:
        for record in stack.records:
            total = head_contributions(record).sum(1) + output_bias(record)
            assert (total - record.output).abs().max().item() < 1e-5
    weighted = value_weighted_attention(cross.records[1])
    assert weighted.shape == (1, 4, 4, 6)
    text = format_inspection(found, "cross", 1, 3)
    assert "decoder cross-attention" in text and "rollout" not in text
    with pytest.raises(AttnlabError, match="needs decoder input ids"):
        inspect_ids(model, source, ["a"] * 6)
    with pytest.raises(AttnlabError, match=r"no 'self' attention"):
        found.stack("self")


def test_real_minilm_decomposition_and_special_tokens(minilm):
    """On the real all-MiniLM-L6-v2: heads add up to 1e-5, and the [CLS] value vectors are short."""
    from attnlab.interop.pretrained import load_with_tokenizer

    loaded = load_with_tokenizer(minilm)
    found = inspect_text(loaded.model, loaded.tokenizer, "The cat sat on the mat because it was tired.")
    stack = found.stack()
    assert stack.key_tokens[0] == "[CLS]" and stack.key_tokens[-1] == "[SEP]"
    for record in stack.records:
        total = head_contributions(record).sum(1) + output_bias(record)
        assert (total - record.output).abs().max().item() < 1e-5
    # Kobayashi et al. 2020, §4: BERT attends to [CLS] a lot, but what [CLS] carries is small.
    record = stack.records[2]
    probs, weighted = record.probs[0], value_weighted_attention(record)[0]
    weight_share = probs[..., 0].mean()
    norm_share = (weighted[..., 0] / weighted.sum(-1)).mean()
    assert norm_share < 0.5 * weight_share
    text = format_inspection(found, None, 2, 5)
    assert "check: sum_h context^h W_O^(h) + b_O" in text and "attention rollout" in text


def test_layer_and_head_out_of_range(models):
    found = inspect_ids(models["bert"], [1, 2, 3], ["a", "b", "c"])
    with pytest.raises(AttnlabError, match=r"--layer must be in \[0, 2\]"):
        format_inspection(found, None, 3, 0)
    with pytest.raises(AttnlabError, match=r"--head must be in \[0, 5\]"):
        format_inspection(found, None, 0, 6)
    with pytest.raises(AttnlabError, match="no tokens"):
        inspect_ids(models["bert"], [], [])
