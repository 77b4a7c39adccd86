"""The compiled prefill and encoder wrappers equal the library's own paths (fp32), and stay within the
stated tolerance when compiled in bf16. (The one decode path is tested in tests/models/test_gpt.py and
tests/inference/test_generation.py.)"""

from __future__ import annotations

import copy

import pytest
import torch

from attnlab.device import cpu_has_native_bf16
from attnlab.errors import AttnlabError
from attnlab.inference.compiled import CompiledEncoder, CompiledPrefill
from attnlab.models import GPT, BertConfig, BertModel, GPTConfig
from attnlab.speed.comparison import encoder_agreement, encoder_figures


@pytest.fixture(params=["gpt-nano", "smollm2-135m"])
def model(request):
    """A GPT-2-layout and a Llama-layout GPT (rotary positions, grouped-query attention), tiny."""
    torch.manual_seed(0)
    small = dict(n_layers=2, d_model=48, n_heads=6, n_kv_heads=2, d_ff=40)
    small = {} if request.param == "gpt-nano" else small
    return GPT(GPTConfig.from_preset(request.param, vocab_size=97, max_positions=64, **small)).eval()


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


def test_wrappers_reject_the_wrong_model():
    with pytest.raises(AttnlabError, match="needs a GPT"):
        CompiledPrefill(BertModel(BertConfig.from_preset("bert-tiny")), 1, 8, compile=False)
    with pytest.raises(AttnlabError, match="dtype must be one of"):
        CompiledEncoder(BertModel(BertConfig.from_preset("bert-tiny")), dtype="fp8", compile=False)


# --- the compiled paths the benchmarks and commands take: torch.compile, bf16 where native ----------------
#
# Tolerances against the fp32 eager model: bf16 keeps 8 significant bits (relative rounding 2^-9 ~ 2e-3
# per operation), so after two layers outputs move by ~1% of their scale (measured here: prefill
# logits 0.2% of the largest |logit|, encoder 0.4% relative). Prefill: max |dlogit| <= 2% of the
# largest |logit|, caches within 2% relative (norm). Encoder: TOLERANCE["bf16"] of the benchmarks (3%
# relative, 0.25 max abs). Without native bf16 the same paths run fp32, to float rounding (1e-4).
# One compiled object per module (compiling a tiny model takes ~5-15 s); each is called with one
# input shape only, as a new shape would compile again.

COMPILED_DTYPE = "bf16" if cpu_has_native_bf16() else "fp32"


@pytest.fixture(scope="module")
def compiled_prefill():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=97)).eval()
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(8))
    prefill = CompiledPrefill(copy.deepcopy(gpt), 2, 16, dtype=COMPILED_DTYPE)
    return gpt, ids, prefill, prefill(ids)


def test_compiled_prefill_logits_are_within_the_stated_tolerance(compiled_prefill):
    gpt, ids, prefill, logits = compiled_prefill
    assert prefill.dtype == COMPILED_DTYPE and logits.dtype == torch.float32 and logits.shape == (2, 97)
    with torch.no_grad():
        expected = gpt(ids).logits[:, -1]
    bound = 0.02 * float(expected.abs().max()) if COMPILED_DTYPE == "bf16" else 1e-4
    assert float((logits - expected).abs().max()) <= bound
    torch.testing.assert_close(prefill(ids), logits)  # the second call runs the compiled code again


def test_compiled_prefill_fills_the_caches(compiled_prefill):
    gpt, ids, prefill, _ = compiled_prefill
    reference = gpt.new_kv_caches(2, 16)
    with torch.no_grad():
        gpt(ids, kv_caches=reference)
    bound = 2e-2 if COMPILED_DTYPE == "bf16" else 1e-5
    for ours, theirs in zip(prefill.caches, reference, strict=True):
        for mine, want in ((ours.keys, theirs.keys), (ours.values, theirs.values)):
            assert encoder_figures(mine[:, :, :12], want[:, :, :12])["relative"] <= bound


@pytest.fixture(scope="module")
def compiled_encoder():
    torch.manual_seed(0)
    bert = BertModel(BertConfig.from_preset("bert-tiny", vocab_size=120, max_positions=32)).eval()
    ids = torch.randint(1, 120, (3, 10), generator=torch.Generator().manual_seed(9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    encoder = CompiledEncoder(copy.deepcopy(bert), dtype=COMPILED_DTYPE)
    return bert, ids, mask, encoder(ids, mask)


def test_compiled_encoder_is_within_the_stated_tolerance_with_padding(compiled_encoder):
    bert, ids, mask, output = compiled_encoder
    with torch.no_grad():
        expected = bert(ids, attention_mask=mask).last_hidden_state
    keep = mask.bool()  # padded positions are not an output anyone reads
    text, ok = encoder_agreement(output[keep], expected[keep], COMPILED_DTYPE)
    assert ok, text


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="bf16 is emulated on this CPU (far too slow)")
def test_bf16_eager_encoder_is_within_the_stated_tolerance():
    """The path ``--no-compile`` takes: bf16 weights, eager."""
    torch.manual_seed(0)
    bert = BertModel(BertConfig.from_preset("bert-tiny", vocab_size=120, max_positions=32)).eval()
    ids = torch.randint(1, 120, (2, 16), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        exact = bert(ids).last_hidden_state
    fast = CompiledEncoder(copy.deepcopy(bert), dtype="bf16", compile=False)(ids)
    text, ok = encoder_agreement(fast, exact, "bf16")
    assert ok, text


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this torch build")
def test_frozen_compile_prepacks_the_weights_for_onednn():
    """Freezing is on: the linear layer runs pre-packed (oneDNN's linear with GELU fused in, in bf16;
    MKL's packed linear in fp32), not as ``addmm`` over weights passed in as inputs (what
    ``torch.compile(options={"freezing": True})`` compiled, silently, with torch 2.13)."""
    from torch.profiler import ProfilerActivity, profile

    from attnlab.inference.compiled import frozen_compile

    torch.manual_seed(0)
    dtype = torch.bfloat16 if COMPILED_DTYPE == "bf16" else torch.float32
    layers = torch.nn.Sequential(torch.nn.Linear(16, 24), torch.nn.GELU()).eval().requires_grad_(False)
    layers = layers.to(dtype)
    run = frozen_compile(layers)
    x = torch.randn(4, 16, dtype=dtype)
    with torch.no_grad():
        expected = layers(x)
        torch.testing.assert_close(run(x), expected, rtol=1e-2, atol=1e-2)  # compiles
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(x)
    kernels = {event.key for event in prof.key_averages()}
    packed = "mkldnn::_linear_pointwise" if dtype == torch.bfloat16 else "mkl::_mkl_linear"
    assert packed in kernels and "aten::addmm" not in kernels, sorted(kernels)
