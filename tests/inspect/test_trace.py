"""trace(model): every intermediate of every attention layer, equal to the fast path."""

from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError
from attnlab.inspect import trace
from attnlab.inspect.values import format_report, value_report
from attnlab.nn import MultiHeadAttention


@pytest.fixture(scope="module")
def bert(hf_bert):
    return attnlab.load_pretrained(hf_bert[1])


@pytest.fixture(scope="module")
def gpt(hf_gpt2):
    return attnlab.load_pretrained(hf_gpt2[1])


def _bert_inputs():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 97, (2, 11), generator=gen)
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, 7:] = 0
    return ids, mask


def test_records_every_layer_with_documented_shapes(bert):
    ids, mask = _bert_inputs()
    with torch.no_grad(), trace(bert) as t:
        bert(ids, attention_mask=mask)
    assert t.layer_names == [f"blocks.{i}.attention" for i in range(3)]
    assert len(t.attention) == 3
    a = t.attention[1]
    assert a.input.shape == (2, 11, 90)
    for name in ("query", "key", "value", "context"):
        assert getattr(a, name).shape == (2, 6, 11, 15), name
    assert a.scores.shape == a.probs.shape == (2, 6, 11, 11)
    assert a.output.shape == (2, 11, 90)


@pytest.mark.parametrize("model_name", ["bert", "gpt"])
def test_value_is_input_times_w_v_plus_b_v(model_name, request):
    model = request.getfixturevalue(model_name)
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), trace(model) as t:
        model(ids)
    for a in t.attention:
        module = a.module
        for weight, bias, got in (
            (module.value_weight, module.value_bias, a.value),
            (module.query_weight, module.query_bias, a.query),
            (module.key_weight, module.key_bias, a.key),
        ):
            flat = a.input @ weight.T + bias  # (B, T, H*D)
            heads = flat.view(2, 9, module.n_heads, module.d_head).transpose(1, 2)
            assert (heads - got).abs().max().item() < 1e-5


def test_context_probs_and_masking(bert):
    ids, mask = _bert_inputs()
    with torch.no_grad(), trace(bert) as t:
        bert(ids, attention_mask=mask)
    for a in t.attention:
        assert (a.probs @ a.value - a.context).abs().max().item() < 1e-6
        assert torch.allclose(a.probs.sum(-1), torch.ones(2, 6, 11), atol=1e-6)
        assert torch.all(a.probs[1, :, :, 7:] == 0)  # padded keys get probability 0
        scaled = (a.query @ a.key.transpose(-1, -2)) / 15**0.5
        assert (a.scores[0] - scaled[0]).abs().max().item() < 1e-5
        # The output is the concatenated heads through W_O.
        concat = a.context.transpose(1, 2).reshape(2, 11, 90)
        assert (a.module.out(concat) - a.output).abs().max().item() < 1e-6


def test_gpt_probs_are_causal(gpt):
    ids = torch.randint(0, 101, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), trace(gpt) as t:
        gpt(ids)
    upper = torch.triu(torch.ones(8, 8, dtype=torch.bool), diagonal=1)
    for a in t.attention:
        assert torch.all(a.probs[..., upper] == 0)


@pytest.mark.parametrize("model_name", ["bert", "gpt"])
def test_traced_output_equals_fast_path(model_name, request):
    model = request.getfixturevalue(model_name)
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, 9:] = 0
    with torch.no_grad():
        fast = model(ids, attention_mask=mask)
        with trace(model):
            traced = model(ids, attention_mask=mask)
    name = "last_hidden_state" if model_name == "bert" else "logits"
    assert (getattr(fast, name) - getattr(traced, name)).abs().max().item() < 1e-5


def test_off_by_default_and_after_the_block(gpt):
    modules = [m for m in gpt.modules() if isinstance(m, MultiHeadAttention)]
    assert modules and all(m.recorder is None for m in modules)
    with trace(gpt) as t:
        assert all(m.recorder is t for m in modules)
    assert all(m.recorder is None for m in modules)
    # Nothing recorded outside the block.
    with torch.no_grad():
        gpt(torch.ones(1, 4, dtype=torch.long))
    assert t.records == []


def test_recorder_released_even_on_error(gpt):
    with pytest.raises(AttnlabError), trace(gpt):
        gpt(torch.ones(4, dtype=torch.long))
    assert all(m.recorder is None for m in gpt.modules() if isinstance(m, MultiHeadAttention))


def test_nested_trace_and_non_attnlab_model_are_clear_errors(gpt):
    with trace(gpt), pytest.raises(AttnlabError, match="already being traced"), trace(gpt):
        pass
    with pytest.raises(AttnlabError, match="no attnlab attention layers"), trace(torch.nn.Linear(2, 2)):
        pass


def test_records_every_call_during_cached_decoding(gpt):
    with torch.no_grad(), trace(gpt) as t:
        caches = gpt.new_kv_caches(1)
        gpt(torch.ones(1, 5, dtype=torch.long), kv_caches=caches)
        gpt(torch.ones(1, 1, dtype=torch.long), kv_caches=caches, start_pos=5)
    assert len(t.records) == 2 * 3
    last = t.attention[0]
    assert last.query.shape[2] == 1 and last.value.shape[2] == 6  # one query, six cached values


def test_value_report_checks_and_text(bert):
    ids = [2, 5, 7, 11, 13]
    tokens = ["a", "b", "<script>", "d", "e"]
    report = value_report(bert, ids, tokens, layer=2, head=4)
    assert report.value_vectors.shape == (5, 15)
    assert report.value_error < 1e-5 and report.context_error < 1e-6
    text = format_report(report, dims=4)
    assert "layer 2, head 4" in text and "max abs error" in text
    with pytest.raises(AttnlabError, match=r"--head must be in \[0, 5\]"):
        value_report(bert, ids, tokens, layer=0, head=6)
    with pytest.raises(AttnlabError, match=r"--layer must be in \[0, 2\]"):
        value_report(bert, ids, tokens, layer=3, head=0)
