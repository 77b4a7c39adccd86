"""GPT with the Llama switches (RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases)
against transformers.LlamaForCausalLM on the same weights (fp32, odd sizes)."""

from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError
from attnlab.inference.generation import generate
from attnlab.inspect import trace
from attnlab.models import GPT, GPTConfig

TOL = 1e-4


@pytest.fixture(scope="module")
def pair(hf_llama):
    reference, directory = hf_llama
    return reference, attnlab.load_pretrained(directory)


def _ids(seed, shape=(2, 19)):
    return torch.randint(0, 103, shape, generator=torch.Generator().manual_seed(seed))


def test_config_read_from_the_llama_dir(pair):
    _, ours = pair
    c = ours.config
    assert (c.position, c.norm, c.ffn, c.bias) == ("rope", "rmsnorm", "swiglu", False)
    shape = (c.n_heads, c.n_kv_heads, c.d_head, c.rope_theta, c.tie_word_embeddings)
    assert shape == (6, 2, 22, 5000.0, False)


def test_logits_equal_transformers(pair):
    reference, ours = pair
    ids = _ids(0)
    mask = torch.ones_like(ids)
    mask[1, 13:] = 0
    with torch.no_grad():
        assert (ours(ids).logits - reference(input_ids=ids).logits).abs().max().item() < TOL
        got = ours(ids, attention_mask=mask).logits
        expected = reference(input_ids=ids, attention_mask=mask).logits
    assert (got - expected)[mask.bool()].abs().max().item() < TOL


def test_greedy_continuation_equals_transformers(pair):
    reference, ours = pair
    ids = _ids(1, (1, 7))
    expected = reference.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=20,
                                  do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(generate(ours, ids, 20, temperature=0), expected)


def test_grouped_query_kv_cache_equals_uncached(pair):
    _, ours = pair
    ids = _ids(2, (2, 16))
    with torch.no_grad():
        full = ours(ids).logits
        caches = ours.new_kv_caches(2)
        assert caches[0].keys.shape[1] == 2  # the cache holds the 2 key/value heads, not 6
        steps = [ours(ids[:, :9], kv_caches=caches).logits]
        steps += [ours(ids[:, t : t + 1], kv_caches=caches, start_pos=t).logits for t in range(9, 16)]
    assert (torch.cat(steps, dim=1) - full).abs().max().item() < TOL


def test_trace_shows_value_vectors_shared_within_a_group(pair):
    _, ours = pair
    ids = _ids(3, (1, 8))
    with torch.no_grad(), trace(ours) as t:
        traced = ours(ids).logits
    with torch.no_grad():
        fast = ours(ids).logits
    assert (traced - fast).abs().max().item() < 1e-5
    a = t.attention[1]
    assert a.value.shape == (1, 6, 8, 22)
    # Query heads 0-2 read key/value head 0, heads 3-5 read key/value head 1.
    assert torch.equal(a.value[:, 0], a.value[:, 2]) and torch.equal(a.value[:, 3], a.value[:, 5])
    assert not torch.equal(a.value[:, 0], a.value[:, 3])
    module = a.module
    flat = a.input @ module.value_weight.T  # (B, T, H_kv * D): no bias in Llama
    assert module.value_weight.shape == (2 * 22, 132)
    assert (module.expand_kv(module._split_heads(flat)) - a.value).abs().max().item() < 1e-5


def test_save_pretrained_round_trips_into_transformers(pair, tmp_path):
    import transformers

    reference, ours = pair
    ours.save_pretrained(tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(back).__name__ == "LlamaForCausalLM"
    ids = _ids(4)
    with torch.no_grad():
        assert torch.equal(back(input_ids=ids).logits, reference(input_ids=ids).logits)


def test_tied_llama_round_trip(tmp_path):
    import transformers

    config = GPTConfig.from_preset("smollm2-135m", n_layers=2, d_model=96, n_heads=6, n_kv_heads=3,
                                   d_ff=64, vocab_size=50, max_positions=32)
    torch.manual_seed(0)
    ours = GPT(config).eval()
    ours.save_pretrained(tmp_path)
    reference = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (reference(input_ids=ids).logits - ours(ids).logits).abs().max().item() < TOL


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_heads=6, n_kv_heads=4, d_model=96), "multiple of 'n_kv_heads'"),
        (dict(position="rope", n_heads=4, d_model=36), "must be even"),
        (dict(norm="batchnorm"), "'norm' parameter of GPTConfig"),
        (dict(ffn="moe"), "'ffn' parameter of GPTConfig"),
        (dict(position="alibi"), "'position' parameter of GPTConfig"),
    ],
)
def test_invalid_llama_switches(kwargs, message):
    with pytest.raises(AttnlabError, match=message):
        GPTConfig(**kwargs)


def test_mixed_switches_cannot_be_saved_in_hf_layout(tmp_path):
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=10, position="rope"))
    with pytest.raises(AttnlabError, match="mixes GPT-2 and Llama options"):
        model.save_pretrained(tmp_path)


def test_unsupported_llama_configs_are_named(hf_llama, tmp_path):
    import json
    import shutil

    _, directory = hf_llama
    for change, message in (({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, "rope_type='yarn'"),
                            ({"attention_bias": True}, "attention_bias"),
                            ({"hidden_act": "gelu"}, "hidden_act='gelu'")):
        target = tmp_path / message[:8].replace("'", "")
        shutil.copytree(directory, target)
        config = json.loads((target / "config.json").read_text())
        config.update(change)
        if "rope_scaling" in change:
            config["rope_parameters"] = {**config.get("rope_parameters", {}), **change["rope_scaling"]}
        (target / "config.json").write_text(json.dumps(config))
        with pytest.raises(AttnlabError, match=message):
            attnlab.load_pretrained(target)
