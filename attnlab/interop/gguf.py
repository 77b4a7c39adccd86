"""Llama-family ``.gguf`` files -> what a Hugging Face ``LlamaForCausalLM`` checkpoint holds.

    contents = read_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
    contents.config       # dict for transformers.LlamaConfig(**config) / config.json
    contents.state_dict   # fp32 tensors under LlamaForCausalLM's names, (out_features, in_features)
    contents.tokenizer    # attnlab Tokenizer (byte-level BPE) rebuilt from the file's vocabulary
    contents.chat_template, contents.bos_token_id, contents.eos_token_id
    read_gguf(path, weights="packed").packed   # also the Q4_0/Q4_1/Q8_0 matrices as the file stores them
    save_hf_checkpoint(contents, "smollm2-hf")   # config.json + model.safetensors + tokenizer files

The format (GGUF spec, ggml-org/ggml ``docs/gguf.md``): the magic ``GGUF``, a version, a
key/value metadata table (``general.architecture``, ``llama.*`` hyper-parameters,
``tokenizer.ggml.*``), then a table of tensors, each with a name, its dimensions listed
fastest-varying first, a ggml type (F32, F16, Q4_1, Q8_0, ...) and an offset into the
aligned data section. :mod:`attnlab.interop.gguf_file` parses the container (the ``gguf``
package's reader took ~3 s on SmolLM2's vocabulary alone); dequantisation is the ``gguf``
package's (``gguf.quants.dequantize``, published with llama.cpp); this module maps
names, checks shapes, undoes the one layout change llama.cpp's converter makes (the q/k row
order, see :func:`permute_for_llama_cpp`). The metadata becomes the config and the tokenizer in
:mod:`attnlab.interop.gguf_metadata`.

Dimension legend: H heads of one projection (query heads for ``attn_q``, key/value heads
for ``attn_k``), D = head_dim, C = input features (d_model).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.files import atomic_write, atomic_write_text
from attnlab.inference import packed_kernels
from attnlab.inference.packed import PackedLinear, from_gguf_tensor
from attnlab.inference.packed_kernels import BLOCK_BYTES
from attnlab.interop.gguf_file import GGUFFile, GGUFFormatError
from attnlab.interop.gguf_metadata import config_from_metadata, tokenizer_from_metadata
from attnlab.interop.tokenizers import Tokenizer

GGUF_MAGIC = b"GGUF"
WEIGHTS = ("packed", "float")  # what read_gguf keeps besides fp32: the file's blocks too, or not

# llama.cpp tensor names -> transformers LlamaForCausalLM names. ``output.weight`` exists only
# when the LM head is not tied to the embedding (llama.cpp's converter drops a tied copy).
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}

@dataclass
class GGUFContents:
    """Everything a Hugging Face Llama checkpoint directory would hold, read from one ``.gguf``.

    ``config`` is ``config.json``; ``state_dict`` is ``model.safetensors`` (fp32; no
    ``lm_head.weight`` when the embeddings are tied); ``tokenizer`` and ``tokenizer_config``
    are ``tokenizer.json`` and ``tokenizer_config.json``; ``metadata`` keeps the file's small
    key/value entries (``general.name``, ``general.file_type``, ...) for display. ``packed``
    (``weights="packed"``): the Q4_0/Q4_1/Q8_0 matrices as :class:`PackedLinear` under their
    Hugging Face names (q/k rows in Hugging Face order), each ``.weight`` bit for bit the fp32
    tensor it stands for; ``state_dict`` then leaves those out, so that no fp32 copy of a packed
    matrix is ever made.
    """

    config: dict[str, Any]
    state_dict: dict[str, Tensor]
    tokenizer: Tokenizer
    chat_template: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    tokenizer_config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    packed: dict[str, PackedLinear] = field(default_factory=dict)


# --------------------------------------------------------------------------- q/k row order
def permute_for_llama_cpp(weight: Tensor, n_heads: int) -> Tensor:
    """Hugging Face row order -> llama.cpp's, as llama.cpp's ``convert_hf_to_gguf.py`` writes
    ``attn_q`` (with the query heads) and ``attn_k`` (with the key/value heads).

    Why it exists: HF's RoPE (``rotate_half``) rotates dimension i of a head together with
    dimension i + D/2, while ggml's default ("normal") RoPE rotates neighbouring dimensions
    2i and 2i+1. The converter therefore reorders the D rows of every head so that the two
    halves are interleaved: new row 2i = old row i, new row 2i+1 = old row i + D/2. Seen as
    arrays, each head's rows go from shape (2, D/2) to (D/2, 2).

    weight: (H*D, C) or (H*D,) -> same shape.
    """
    rows = weight.shape[0]
    _check_heads(rows, n_heads)
    d_head = rows // n_heads
    return weight.reshape(n_heads, 2, d_head // 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def unpermute_from_llama_cpp(weight: Tensor, n_heads: int) -> Tensor:
    """The exact inverse of :func:`permute_for_llama_cpp`: llama.cpp row order -> HF's.

    Each head's rows, read as (D/2, 2) pairs, are transposed back to (2, D/2) halves:
    HF row i = file row 2i, HF row i + D/2 = file row 2i+1. Verified numerically in
    ``tests/interop/test_gguf.py`` (inverse of the forward permutation; RoPE in the two
    conventions agrees; greedy text of the real SmolLM2 file matches the reference).

    weight: (H*D, C) or (H*D,) -> same shape.
    """
    rows = weight.shape[0]
    _check_heads(rows, n_heads)
    d_head = rows // n_heads
    return weight.reshape(n_heads, d_head // 2, 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def _check_heads(rows: int, n_heads: int) -> None:
    if n_heads < 1 or rows % n_heads or (rows // n_heads) % 2:
        raise AttnlabError(
            f"Cannot split {rows} rows into {n_heads} heads of an even head_dim; "
            f"the file's head counts do not match its attention weights."
        )


# --------------------------------------------------------------------------- reading
def read_gguf(path: str | os.PathLike[str], *, weights: str = "float") -> GGUFContents:
    """Read a llama-architecture ``.gguf`` file into HF-layout config, fp32 weights and tokenizer.

    Every quantised tensor is dequantised to fp32 with ``gguf.quants.dequantize``: the
    weights are the file's values decoded exactly, block scale times quantised integer
    (plus the block minimum for types such as Q4_1), with no further rounding. Raises
    :class:`AttnlabError` (one line) for a missing, non-GGUF, truncated or non-llama file, an
    unsupported quantisation type, and when the ``gguf`` package is absent. ``weights="packed"``
    keeps the quantized matrices' blocks instead (``GGUFContents.packed``), for fast decoding,
    and dequantizes none of them.
    """
    if weights not in WEIGHTS:
        raise AttnlabError(f"weights must be one of {list(WEIGHTS)}. Got {weights!r} instead.")
    gguf = _import_gguf()
    path = Path(path)
    reader = _open(path, gguf)
    metadata = _small_metadata(reader, gguf)
    architecture = metadata.get("general.architecture")
    if architecture != "llama":
        raise AttnlabError(
            f"{path} is a GGUF file of architecture {architecture!r}; attnlab reads llama GGUF files "
            f"(general.architecture 'llama' with a byte-level BPE vocabulary, e.g. SmolLM2)."
        )
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    _check_complete(path, reader)
    _check_quantisation(path, reader, gguf)
    config = config_from_metadata(path, metadata, tensors)
    state_dict = _state_dict(path, config, tensors, gguf, leave_packable=weights == "packed")
    packed = packed_layers(tensors, config) if weights == "packed" else {}
    tokenizer, tokenizer_config = tokenizer_from_metadata(path, reader, metadata, config)
    chat_template = metadata.get("tokenizer.chat_template")
    if chat_template is not None:
        tokenizer_config["chat_template"] = chat_template
    del reader, tensors  # drop the memory map before returning the fp32 copies
    return GGUFContents(
        config=config,
        state_dict=state_dict,
        tokenizer=tokenizer,
        chat_template=chat_template,
        bos_token_id=config.get("bos_token_id"),
        eos_token_id=config.get("eos_token_id"),
        tokenizer_config=tokenizer_config,
        metadata=metadata,
        packed=packed,
    )


def _import_gguf() -> Any:
    try:
        import gguf
        import gguf.quants  # noqa: F401  (dequantize lives in this submodule)
    except ImportError:
        raise AttnlabError(
            "Reading .gguf files needs the gguf package: pip install gguf (the attnlab 'gguf' extra)."
        ) from None
    return gguf


def _open(path: Path, gguf: Any) -> GGUFFile:
    if not path.exists():
        raise AttnlabError(f"No such GGUF file: {path}; give the path of a .gguf file.")
    if not path.is_file():
        raise AttnlabError(f"{path} is not a file; give the path of a .gguf file.")
    with open(path, "rb") as stream:
        magic = stream.read(4)
    if magic != GGUF_MAGIC:
        raise AttnlabError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r}); "
            f"give a .gguf file written by llama.cpp or the gguf package."
        )
    try:
        # A read-only memory map, so tensors are paged in only as they are dequantised.
        return GGUFFile(path)
    except GGUFFormatError as error:
        raise AttnlabError(
            f"{path} is truncated or corrupt ({path.stat().st_size} bytes; reading it stopped at: "
            f"{_first_line(error)}); copy or download the file again."
        ) from None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:160] if lines else type(error).__name__


def _small_metadata(reader: GGUFFile, gguf: Any) -> dict[str, Any]:
    """Scalars, strings and short arrays of the key/value table (the vocabulary is read later)."""
    metadata: dict[str, Any] = {}
    for name, entry in reader.fields.items():
        if entry.kind == gguf.GGUFValueType.ARRAY and len(entry.value) > 64:
            continue  # tokens, merges, token types: read where needed, they are ~100k entries
        value = entry.contents()
        if entry.kind == gguf.GGUFValueType.FLOAT32:
            # Stored as float32: write 1e-05 rather than 9.999999747378752e-06, as config.json does.
            value = float(str(np.float32(value)))
        metadata[name] = value
    return metadata


def _check_complete(path: Path, reader: GGUFFile) -> None:
    size = path.stat().st_size
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise AttnlabError(
            f"{path} is truncated: its tensors need {end} bytes but the file has {size} bytes; "
            f"copy or download it again."
        )


def _check_quantisation(path: Path, reader: GGUFFile, gguf: Any) -> None:
    """Fail before any work if a tensor type is one ``gguf.quants.dequantize`` cannot undo."""
    traits = getattr(gguf.quants, "_type_traits", None)  # the package's registry of block formats
    if traits is None:
        return  # an unknown gguf version: _dequantize still names a type it cannot handle
    known = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, *traits}
    unknown = sorted({t.tensor_type.name for t in reader.tensors if t.tensor_type not in known})
    if unknown:
        first = next(t.name for t in reader.tensors if t.tensor_type.name == unknown[0])
        _unsupported(path, ", ".join(unknown), first)


def _unsupported(path: Path, types: str, example: str) -> None:
    raise AttnlabError(
        f"{path} stores tensors as {types} (e.g. {example}), which the installed gguf package cannot "
        f"dequantize; re-quantize the model with a common type (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16)."
    )


def _expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """HF name -> (out_features, in_features) (or (features,) for a norm) for this config."""
    hidden, ffn = config["hidden_size"], config["intermediate_size"]
    q_rows = config["num_attention_heads"] * config["head_dim"]
    kv_rows = config["num_key_value_heads"] * config["head_dim"]
    layer = {
        "input_layernorm.weight": (hidden,),
        "self_attn.q_proj.weight": (q_rows, hidden),
        "self_attn.k_proj.weight": (kv_rows, hidden),
        "self_attn.v_proj.weight": (kv_rows, hidden),
        "self_attn.o_proj.weight": (hidden, q_rows),
        "post_attention_layernorm.weight": (hidden,),
        "mlp.gate_proj.weight": (ffn, hidden),
        "mlp.up_proj.weight": (ffn, hidden),
        "mlp.down_proj.weight": (hidden, ffn),
    }
    shapes = {"model.embed_tokens.weight": (config["vocab_size"], hidden), "model.norm.weight": (hidden,)}
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (config["vocab_size"], hidden)
    for n in range(config["num_hidden_layers"]):
        shapes.update({f"model.layers.{n}.{name}": shape for name, shape in layer.items()})
    return shapes


def _hf_name(name: str) -> str | None:
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    parts = name.split(".", 2)  # blk.N.attn_q.weight -> ["blk", "N", "attn_q.weight"]
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in LAYER_NAMES:
        return f"model.layers.{parts[1]}.{LAYER_NAMES[parts[2]]}"
    return None


def _state_dict(path: Path, config: dict[str, Any], tensors: dict[str, Any], gguf: Any,
                leave_packable: bool = False) -> dict[str, Tensor]:
    """The file's tensors as fp32 under their Hugging Face names, each checked against the shape
    the config implies; with ``leave_packable``, the matrices :func:`packed_layers` packs are
    checked but not dequantized."""
    expected = _expected_shapes(config)
    names = {name: _hf_name(name) for name in tensors}
    unmapped = sorted(name for name, hf in names.items() if hf is None)
    if unmapped:
        raise AttnlabError(
            f"{path} has tensors a Llama does not have ({', '.join(unmapped[:4])}"
            f"{', ...' if len(unmapped) > 4 else ''}); attnlab reads plain llama GGUF files."
        )
    missing = sorted(set(expected) - set(names.values()))
    if missing:
        raise AttnlabError(
            f"{path} lacks {len(missing)} tensor(s) its metadata implies (e.g. {missing[0]}); "
            f"the file is incomplete or not a standard llama conversion."
        )
    state: dict[str, Tensor] = {}
    for name, tensor in tensors.items():
        hf = names[name]
        left = leave_packable and _packable(tensor)
        weight = None if left else _dequantize(path, name, tensor, gguf)
        shape = _torch_shape(tensor) if weight is None else tuple(weight.shape)
        if shape != expected[hf]:
            raise AttnlabError(
                f"{path}: tensor {name} has shape {shape} but the metadata implies "
                f"{expected[hf]} for {hf}; the file is inconsistent."
            )
        if weight is None:
            continue
        if name.endswith("attn_q.weight"):
            weight = unpermute_from_llama_cpp(weight, config["num_attention_heads"])
        elif name.endswith("attn_k.weight"):
            weight = unpermute_from_llama_cpp(weight, config["num_key_value_heads"])
        state[hf] = weight.contiguous()
    return state


def _dequantize(path: Path, name: str, tensor: Any, gguf: Any) -> Tensor:
    """A file tensor as fp32 in torch's dimension order, the values ``gguf.quants.dequantize`` gives.

    Q4_0 / Q4_1 / Q8_0 matrices go through the packed kernels' dequantize (bit for bit the same
    values, tested against transformers' own loader): for SmolLM2 it took 0.03 s where the numpy
    routine took 1.2 s. Other types, or no C kernels, use ``gguf.quants.dequantize``.
    """
    shape = _torch_shape(tensor)
    if tensor.tensor_type.name in BLOCK_BYTES and len(shape) == 2 and packed_kernels.library() is not None:
        return from_gguf_tensor(tensor).weight
    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        _unsupported(path, tensor.tensor_type.name, name)
    if tuple(values.shape) != shape:
        values = values.reshape(shape)
    if not values.flags.writeable or values.dtype != np.float32:
        values = values.astype(np.float32)  # a copy: F32 tensors are views of the read-only map
    return torch.from_numpy(values)


def _torch_shape(tensor: Any) -> tuple[int, ...]:
    """A file tensor's shape in torch's order: GGUF lists dimensions fastest-varying first, so
    (C, out) in the file is numpy/torch's (out, C)."""
    return tuple(int(n) for n in reversed(tensor.shape.tolist()))


def _packable(tensor: Any) -> bool:
    """Whether :func:`packed_layers` keeps this file tensor as blocks: a Q4_0 / Q4_1 / Q8_0 matrix."""
    return tensor.tensor_type.name in BLOCK_BYTES and len(tensor.shape) == 2


def packed_layers(tensors: dict[str, Any], config: dict[str, Any]) -> dict[str, PackedLinear]:
    """The file's packable matrices (GGUF name -> reader tensor) as PackedLinear, keyed by HF name."""
    heads = {"attn_q.weight": config["num_attention_heads"], "attn_k.weight": config["num_key_value_heads"]}
    layers: dict[str, PackedLinear] = {}
    for name, tensor in tensors.items():
        hf = _hf_name(name)
        if hf is None or not _packable(tensor):
            continue
        layer = from_gguf_tensor(tensor)
        suffix = name.split(".", 2)[-1]
        if suffix in heads:  # the row order llama.cpp's converter wrote -> Hugging Face's
            order = unpermute_from_llama_cpp(torch.arange(layer.out_features), heads[suffix])
            layer = layer.take_rows(order)
        layers[hf] = layer
    return layers



# --------------------------------------------------------------------------- writing
def save_hf_checkpoint(contents: GGUFContents, directory: str | os.PathLike[str]) -> Path:
    """Write ``contents`` as a Hugging Face checkpoint directory, each file atomically.

    config.json, generation_config.json, model.safetensors (fp32), tokenizer.json and
    tokenizer_config.json (with the chat template): what ``transformers``'
    ``LlamaForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` read.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / "config.json", json.dumps(contents.config, indent=2) + "\n")
    generation = {
        key: contents.config[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")
        if key in contents.config
    }
    atomic_write_text(directory / "generation_config.json", json.dumps(generation, indent=2) + "\n")
    atomic_write(
        directory / "model.safetensors",
        lambda tmp: save_file(contents.state_dict, tmp, metadata={"format": "pt"}),
    )
    atomic_write(directory / "tokenizer.json", lambda tmp: contents.tokenizer.backend.save(tmp))
    atomic_write_text(
        directory / "tokenizer_config.json", json.dumps(contents.tokenizer_config, indent=2) + "\n"
    )
    return directory
