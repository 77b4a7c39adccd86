"""The lean decode loop and the prefill/encoder wrappers equal the library's own paths (fp32)."""

from __future__ import annotations

import copy

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.generation import generate as core_generate
from attnlab.models import GPT, BertConfig, BertModel, GPTConfig
from attnlab.speed import CompiledEncoder, CompiledPrefill, forward_cached, generate
from attnlab.speed.inference import new_caches

TINY_LLAMA = dict(vocab_size=97, max_positions=64, n_layers=2, n_heads=6, n_kv_heads=2, d_model=48,
                  d_ff=40, position="rope", norm="rmsnorm", ffn="swiglu", activation="silu", bias=False)


@pytest.fixture(params=["gpt2", "llama"])
def model(request):
    torch.manual_seed(0)
    if request.param == "gpt2":
        return GPT(GPTConfig.from_preset("gpt-nano", vocab_size=97)).eval()
    return GPT(GPTConfig(**TINY_LLAMA)).eval()


def test_forward_cached_equals_the_model_forward(model):
    ids = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(1))
    caches = new_caches(model, 2, 11)
    with torch.no_grad():
        prefill = forward_cached(model, ids[:, :7], caches, 0)
        steps = [forward_cached(model, ids[:, t : t + 1], caches, t) for t in range(7, 11)]
        full = model(ids).logits
    torch.testing.assert_close(prefill, full[:, 6], rtol=1e-5, atol=1e-5)
    for t, logits in zip(range(7, 11), steps, strict=True):
        torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)


def test_greedy_tokens_equal_the_library_generate(model):
    ids = torch.randint(0, 97, (3, 5), generator=torch.Generator().manual_seed(2))
    assert torch.equal(generate(model, ids, 20), core_generate(model, ids, 20, temperature=0))


def test_sampling_and_eos_equal_the_library_generate(model):
    ids = torch.randint(0, 97, (2, 4), generator=torch.Generator().manual_seed(3))
    settings = dict(temperature=1.3, top_k=10, top_p=0.9, eos_token_id=5)
    ours = generate(model, ids, 25, generator=torch.Generator().manual_seed(4), **settings)
    theirs = core_generate(model, ids, 25, generator=torch.Generator().manual_seed(4), **settings)
    assert torch.equal(ours, theirs)


def test_generate_checks_its_inputs(model):
    ids = torch.zeros(1, 60, dtype=torch.long)
    with pytest.raises(AttnlabError, match="use attnlab.generation.generate, which slides"):
        generate(model, ids, 10)
    with pytest.raises(AttnlabError, match="max_new_tokens must be an int >= 0"):
        generate(model, ids[:, :4], -1)
    assert torch.equal(generate(model, ids[0, :4], 0), ids[:, :4])  # 1-D prompt, nothing new


def test_prefill_fills_the_caches_and_returns_next_token_logits(model):
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(5))
    reference_caches = model.new_kv_caches(2, 16)
    with torch.no_grad():
        expected = model(ids, kv_caches=reference_caches).logits[:, -1]
    prefill = CompiledPrefill(copy.deepcopy(model), 2, 16, dtype="fp32", compile=False)
    torch.testing.assert_close(prefill(ids), expected, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(prefill.caches, reference_caches, strict=True):
        torch.testing.assert_close(ours.keys[:, :, :9], theirs.keys[:, :, :9])
        torch.testing.assert_close(ours.values[:, :, :9], theirs.values[:, :, :9])
    with pytest.raises(AttnlabError, match="built for batch size 2"):
        prefill(ids[:1])


def test_encoder_equals_bert_with_and_without_padding():
    torch.manual_seed(0)
    bert = BertModel(BertConfig.from_preset("bert-tiny", vocab_size=120, max_positions=32)).eval()
    ids = torch.randint(1, 120, (3, 10), generator=torch.Generator().manual_seed(6))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    encoder = CompiledEncoder(copy.deepcopy(bert), dtype="fp32", compile=False)
    with torch.no_grad():
        padded, plain = bert(ids, attention_mask=mask).last_hidden_state, bert(ids).last_hidden_state
    torch.testing.assert_close(encoder(ids, mask)[mask.bool()], padded[mask.bool()], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(encoder(ids), plain, rtol=1e-5, atol=1e-5)


def test_bf16_encoder_is_within_the_stated_tolerance():
    from attnlab.speed.suites import encoder_agreement

    torch.manual_seed(0)
    bert = BertModel(BertConfig.from_preset("bert-tiny", vocab_size=120, max_positions=32)).eval()
    ids = torch.randint(1, 120, (2, 16), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        exact = bert(ids).last_hidden_state
    fast = CompiledEncoder(copy.deepcopy(bert), dtype="bf16", compile=False)(ids)
    assert encoder_agreement(fast, exact, "bf16")[1]


def test_wrappers_reject_the_wrong_model():
    with pytest.raises(AttnlabError, match="needs a GPT"):
        CompiledPrefill(BertModel(BertConfig.from_preset("bert-tiny")), 1, 8, compile=False)
    with pytest.raises(AttnlabError, match="dtype must be 'auto' or one of"):
        CompiledEncoder(BertModel(BertConfig.from_preset("bert-tiny")), dtype="fp8", compile=False)


@pytest.mark.slow
def test_compiled_prefill_and_encoder_equal_eager_in_fp32():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=97)).eval()
    ids = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        expected = gpt(ids).logits[:, -1]
    compiled = CompiledPrefill(copy.deepcopy(gpt), 1, 12, dtype="fp32")
    torch.testing.assert_close(compiled(ids), expected, rtol=1e-4, atol=1e-4)
    bert = BertModel(BertConfig.from_preset("bert-tiny", vocab_size=120, max_positions=32)).eval()
    ids = torch.randint(1, 120, (2, 10), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = bert(ids).last_hidden_state
    torch.testing.assert_close(CompiledEncoder(copy.deepcopy(bert), dtype="fp32")(ids), expected,
                               rtol=1e-4, atol=1e-4)
