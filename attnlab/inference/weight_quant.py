"""Weight-only int8 / int4 for fp32 and bf16 checkpoints, in ggml's block formats.

Decoding one token on a CPU streams every weight from memory once, so its speed is the bytes
read (see :mod:`attnlab.inference.packed`). :func:`quantize_weights` rewrites a model's
``nn.Linear`` layers into :class:`attnlab.inference.packed.PackedLinear` blocks, the formats
a .gguf stores and the same C kernel multiplies, with fp32 activations and fp32 sums (no
activation quantization: the only error is the weights' rounding):

    int8  Q8_0  blocks of 32 along K, w = d * q,  q in [-127, 127], d = max|w| / 127 (fp16)
    int4  Q4_0  blocks of 32 along K, w = d * (q - 8), q in [0, 15], d = -(w of largest |w|) / 8

Q4_1 (w = d * q + m: a scale and a minimum per block, 20 bytes a block instead of 18) is there
too (:func:`quantize_blocks`). Which 4-bit format ``int4`` means is :data:`INT4_FORMAT`,
chosen by measurement (its comment gives the figures). :func:`quantize_blocks` is ggml's
reference quantizer (``quantize_row_q*_ref``, as the ``gguf`` package's ``quantize``
implements it) in torch ops: its bytes are bit for bit ``gguf.quants.quantize``'s
(tests/inference/test_weight_quant.py), so a model quantized here holds the values a .gguf
written by llama.cpp's tools would.

A layer stays as it is where it cannot be packed: in_features not a multiple of 32, not on
the CPU, or applied by its ``weight`` rather than by calling it (the encoder-decoder's output
layer, :meth:`attnlab.models.transformer.Transformer.logits`). A tied output layer (GPT's
``lm_head`` sharing the token embeddings, SmolLM2's largest matrix) gets its own packed copy;
the embedding lookup keeps the float table.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.inference.packed import PackedLinear
from attnlab.inference.packed_kernels import BLOCK, BLOCK_BYTES
from attnlab.nn.linear import Linear

# Measured (benchmarks/weight_quant.py): MiniLM's real fp32 weights, relative error Q4_1 0.081, Q4_0 0.090
# (mean-pooled sentence embedding cosine 0.9716 vs 0.9692); SmolLM2-135M loaded float, teacher-forced
# top-1 vs fp32 over 5 prompts x 64 tokens 89.1% vs 71.2% (its file is mostly Q4_1, which favours
# Q4_1 there). Decoding speed is the same (~50 tokens/s each, 1 thread, loaded machine).
INT4_FORMAT = "Q4_1"
FORMAT_OF = {"int8": "Q8_0", "int4": INT4_FORMAT}

# Layers a model applies through their ``weight`` (F.linear(hidden, layer.weight, bias)) rather
# than by calling them: packed, they would be dequantized on every call, slower than float.
APPLIED_BY_WEIGHT = {"Transformer": ("lm_head",)}


CHUNK_ELEMENTS = 1 << 20  # weights quantized per step (4 MB of fp32)


def _round_half_away(x: Tensor) -> Tensor:
    """ggml's ``roundf`` as the ``gguf`` package writes it (``np_roundf``), op for op: halves go away
    from zero, and ``floor(a) + floor(2 (a - floor a))`` never rounds ``a + 0.5`` up by accident."""
    a = x.abs()
    floored = torch.floor(a)
    return torch.sign(x) * (floored + torch.floor(2 * (a - floored)))


def _reciprocal(d: Tensor) -> Tensor:
    """1 / d, and 0 where d is 0 (an all-zero block quantizes to zero codes)."""
    return torch.where(d == 0, torch.zeros_like(d), 1 / torch.where(d == 0, torch.ones_like(d), d))


def _fp16_bytes(values: Tensor) -> Tensor:
    """(n, 1) fp32 -> (n, 2) uint8: the little-endian fp16 a block header stores."""
    return values.to(torch.float16).view(torch.uint8).reshape(-1, 2)


def _pack_nibbles(codes: Tensor) -> Tensor:
    """(n, 32) codes in [0, 15] -> (n, 16) bytes: element j in the low nibble, j + 16 in the high."""
    return codes[:, :16] | (codes[:, 16:] << 4)


def quantize_blocks(weight: Tensor, fmt: str) -> Tensor:
    """(N, K) float -> (N, K / 32 * bytes) uint8 blocks of ``fmt`` (Q8_0, Q4_0 or Q4_1); K % 32 == 0.

    The arithmetic is the reference quantizer's, in fp32 (bf16 / fp16 weights are widened first,
    exactly): the codes come from the fp32 scale, the header stores it rounded to fp16.
    """
    if fmt not in BLOCK_BYTES:
        raise AttnlabError(f"quantize_blocks writes {sorted(BLOCK_BYTES)}. Got {fmt!r} instead.")
    if weight.dim() != 2 or not weight.is_floating_point() or weight.shape[1] % BLOCK:
        raise AttnlabError(f"quantize_blocks needs a 2-D float weight whose rows are a multiple of {BLOCK} "
                           f"long. Got {weight.dtype} {tuple(weight.shape)} instead.")
    # A few rows at a time: the whole of GPT-2's tied LM head at once (154 MB in fp32) made ~5
    # temporaries its size, and quantizing GPT-2 peaked at 1.48 GB where the fp32 model ran in 0.92
    step = max(1, CHUNK_ELEMENTS // weight.shape[1])
    rows = range(0, weight.shape[0], step)
    return torch.cat([_quantize_rows(weight[start:start + step], fmt) for start in rows])


def _quantize_rows(weight: Tensor, fmt: str) -> Tensor:
    rows = weight.shape[0]
    blocks = weight.detach().to("cpu", torch.float32).reshape(-1, BLOCK)  # (n, 32)
    if fmt == "Q8_0":
        d = blocks.abs().amax(dim=1, keepdim=True) / 127
        codes = _round_half_away(blocks * _reciprocal(d)).to(torch.int8).view(torch.uint8)
        packed = torch.cat([_fp16_bytes(d), codes], dim=1)
    elif fmt == "Q4_0":
        largest = blocks.gather(1, blocks.abs().argmax(dim=1, keepdim=True))  # signed, first of ties
        d = largest / -8
        codes = torch.trunc(blocks * _reciprocal(d) + 8.5).clamp(0, 15).to(torch.uint8)
        packed = torch.cat([_fp16_bytes(d), _pack_nibbles(codes)], dim=1)
    else:
        low = blocks.amin(dim=1, keepdim=True)
        d = (blocks.amax(dim=1, keepdim=True) - low) / 15
        codes = torch.trunc((blocks - low) * _reciprocal(d) + 0.5).clamp(0, 15).to(torch.uint8)
        packed = torch.cat([_fp16_bytes(d), _fp16_bytes(low), _pack_nibbles(codes)], dim=1)
    return packed.reshape(rows, -1).contiguous()


def packable(layer: nn.Module) -> bool:
    """Whether ``layer`` is a plain float ``nn.Linear`` (or attnlab's) on the CPU whose rows split into
    blocks of 32."""
    return (type(layer) in (nn.Linear, Linear) and layer.in_features % BLOCK == 0
            and layer.weight.is_floating_point() and layer.weight.device.type == "cpu")


def pack_linear(layer: nn.Linear, fmt: str) -> PackedLinear:
    """``layer`` as a PackedLinear of ``fmt`` blocks (its bias, if any, kept in fp32)."""
    return PackedLinear(quantize_blocks(layer.weight, fmt), fmt, layer.in_features, layer.bias)


def quantize_weights(model: nn.Module, weights: str, *, skip: tuple[str, ...] = (),
                     fmt: str | None = None) -> int:
    """Replace ``model``'s packable ``nn.Linear`` layers by PackedLinear, in place; returns how many.

    Args:
        weights: "int8" (Q8_0) or "int4" (:data:`INT4_FORMAT`).
        skip: module names (as in ``named_modules``) to leave float, beside those the module
            docstring lists.
        fmt: the block format, in place of ``weights``' (e.g. "Q4_0" to compare it with Q4_1).

    A layer tied to an embedding table (a shared ``weight`` Parameter) is replaced by its own
    packed copy, which unties it; the table keeps its float values. Gradients are off afterwards
    (the model is for inference).
    """
    if weights not in FORMAT_OF:
        raise AttnlabError(f"Weight-only quantization is 'int8' or 'int4'. Got {weights!r} instead.")
    fmt = fmt or FORMAT_OF[weights]
    skip = (*skip, *APPLIED_BY_WEIGHT.get(type(model).__name__, ()))
    names = [name for name, module in model.named_modules() if name not in skip and packable(module)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, pack_linear(getattr(parent, child), fmt))
    model.requires_grad_(False)
    return len(names)


def weights_kind(model: nn.Module) -> str:
    """What a model's linear layers hold, for messages: e.g. "Q8_0 x 31, float x 2"."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, (nn.Linear, PackedLinear)):
            key = module.fmt if isinstance(module, PackedLinear) else "float"
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{key} x {count}" for key, count in sorted(counts.items()))


WEIGHTS = ("auto", "float", "packed", "int8", "int4")  # what load_pretrained's ``weights`` accepts


def check_weights(weights: str) -> None:
    """A one-line error unless ``weights`` is one of :data:`WEIGHTS` (before a slow load)."""
    if weights not in WEIGHTS:
        raise AttnlabError(f"weights must be one of {list(WEIGHTS)}. Got {weights!r} instead.")


def quantize_if_asked(model: nn.Module, weights: str) -> nn.Module:
    """``model`` with its linears quantized when ``weights`` is "int8" or "int4" (in place), else as it is.

    The other values say how a .gguf is read ("auto", "packed": its blocks; "float": dequantized),
    which the loader has already done; a float checkpoint loads as saved for all three.
    """
    check_weights(weights)
    if weights in FORMAT_OF:
        quantize_weights(model, weights)
    return model
