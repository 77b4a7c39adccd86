"""A ``.gguf``'s quantized matrices kept as the file stores them, inside an attnlab GPT.

:func:`attnlab.interop.gguf.read_gguf` (``weights="packed"``) turns each Q4_0 / Q4_1 / Q8_0
matrix of the file into a :class:`attnlab.inference.packed.PackedLinear` (the file's bytes; q/k
rows put back in Hugging Face order, as ``unpermute_from_llama_cpp`` does for fp32 weights),
named as in ``LlamaForCausalLM``. :func:`pack_gpt` puts them into a GPT that holds the same
weights dequantized: per layer the fused q|k|v projection, the output projection, SwiGLU's gate
and up (two layers over one block tensor, so one kernel call computes both) and down, and the LM
head (the tied embedding table when there is no ``output.weight``), and the token embeddings
(:class:`attnlab.inference.packed.PackedEmbedding`: a lookup dequantizes the rows it reads, from
the same blocks as a tied head). A projection stays fp32 where its parts are
missing or of different formats (per layer fallback). The values the model multiplies by do
not change (``PackedLinear.weight`` is bit for bit the fp32 weight it replaces), only the bytes a
decode step reads: SmolLM2-135M's Q4_1 file ~96 MB a token instead of ~540 MB.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.inference.packed import PackedEmbedding, PackedLinear


def _stacked(parts: list[PackedLinear | None]) -> PackedLinear | None:
    """One layer whose rows are the parts' rows in order (q|k|v), if they share format and width."""
    if any(p is None for p in parts) or len({(p.fmt, p.in_features) for p in parts}) != 1:
        return None
    return PackedLinear(torch.cat([p.blocks for p in parts]), parts[0].fmt, parts[0].in_features)


def _side_by_side(parts: list[PackedLinear | None]) -> list[PackedLinear | None]:
    """The parts as views of one (N1 + N2 + ..., K) block tensor, if they share format and width
    (see ``PackedLinear.followed_by``: one kernel call then serves them all);
    else unchanged. Each stays its own layer, with its own name and weight."""
    stacked = _stacked(parts)
    if stacked is None:
        return parts
    views, start = [], 0
    for part in parts:
        end = start + part.out_features
        views.append(PackedLinear(stacked.blocks[start:end], part.fmt, part.in_features))
        start = end
    return views


def _swap(owner: nn.Module, attribute: str, packed: PackedLinear | None, names: list[str],
          used: set[str]) -> None:
    old = getattr(owner, attribute)
    if packed is None or getattr(old, "bias", None) is not None or \
            tuple(old.weight.shape) != (packed.out_features, packed.in_features):
        return
    setattr(owner, attribute, packed)
    used.update(names)


def pack_gpt(model: nn.Module, layers: dict[str, PackedLinear]) -> set[str]:
    """Replace the GPT's fp32 projections by the packed ``layers`` (HF names); returns the names
    of the layers put in. Works on a model built on the meta device too (only shapes are read)."""
    used: set[str] = set()
    for i, block in enumerate(model.blocks):
        prefix = f"model.layers.{i}."
        attention, ffn = block.attention, block.ffn
        names = [f"{prefix}self_attn.{p}_proj.weight" for p in "qkv"]
        if hasattr(attention, "qkv"):
            _swap(attention, "qkv", _stacked([layers.get(name) for name in names]), names, used)
        name = f"{prefix}self_attn.o_proj.weight"
        _swap(attention, "out", layers.get(name), [name], used)
        names = [f"{prefix}mlp.{part}_proj.weight" for part in ("gate", "up", "down")]
        found = [layers.get(name) for name in names]
        for part, name, packed in zip(("gate", "up", "down"), names, [*_side_by_side(found[:2]), found[2]],
                                      strict=True):
            if hasattr(ffn, part):
                _swap(ffn, part, packed, [name], used)
    name = "lm_head.weight" if "lm_head.weight" in layers else "model.embed_tokens.weight"
    head = layers.get(name)
    if head is not None and tuple(model.lm_head.weight.shape) == (head.out_features, head.in_features):
        model.lm_head = head
        used.add(name)
    table, token = layers.get("model.embed_tokens.weight"), model.embeddings.token
    if table is not None and tuple(token.weight.shape) == (table.out_features, table.in_features):
        # the lookup reads its rows from the same blocks as a tied head: no fp32 table at all
        model.embeddings.token = PackedEmbedding(table.blocks, table.fmt, table.in_features)
        used.add("model.embed_tokens.weight")
    return used


def packed_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{"<module>.weight": dequantized fp32}`` for every PackedLinear and PackedEmbedding: what
    ``state_dict`` would hold for the fp32 layer it replaced (so saving a packed model writes the
    file's values)."""
    return {f"{name}.weight": module.weight for name, module in model.named_modules()
            if isinstance(module, (PackedLinear, PackedEmbedding))}
