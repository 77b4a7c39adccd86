"""Linear layers whose weights stay as a .gguf file stores them: ggml's Q4_0 / Q4_1 / Q8_0 blocks.

Decoding one token reads every weight once, so on a CPU its speed is the bytes streamed from
memory. A dequantized fp32 copy of SmolLM2-135M's Q4_1 file is ~540 MB a token; its blocks are
~96 MB. :class:`PackedLinear` keeps the file's bytes (N, K / 32 * block bytes) uint8 unchanged and
multiplies by them with a kernel that dequantizes each block in registers
(:mod:`attnlab.inference.packed_kernels`); the activations stay fp32 and so do the sums, and
every weight it uses is bit for bit ``gguf.quants.dequantize``'s value (see packed_kernels.c), so
the only difference from ``F.linear`` on the dequantized matrix is the order of the fp32 sums.

    Q4_0  w = d * (q - 8)    Q4_1  w = d * q + m    Q8_0  w = d * q    (blocks of 32 along K)

Shapes: x (..., K) -> y (..., N); K = in_features, N = out_features, as ``nn.Linear``.
Inputs of many rows (a prefill of ``PREFILL_ROWS`` tokens or more; ``LARGE_PREFILL_ROWS`` for a layer
whose fp32 copy exceeds ``LARGE_LAYER_BYTES``) are compute-bound, not memory-bound: there the weight
is dequantized once per call and oneDNN's GEMM multiplies.
Without a C compiler (or with ``ATTNLAB_PACKED_KERNEL=torch``) the torch dequantization serves
every shape: same values, slower. ``weight`` gives the dequantized fp32 matrix (inspection, tying).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.inference import packed_kernels
from attnlab.inference.packed_kernels import BLOCK, BLOCK_BYTES
from attnlab.nn.linear import Linear, linear

# From this many rows on, dequantize once and use the GEMM (attnlab.nn.linear). Measured (vectorized
# dequantize, oneDNN's fp32 GEMM), SmolLM2's Q4_1 1536 x 576, kernel vs dequantize + GEMM: 1 thread
# 204 / 447 us against 180 / 231 us at 8 / 16 rows; 2 threads 128 / 227 against 146 / 177 us.
PREFILL_ROWS = 16
# A layer whose fp32 copy would not stay in cache pays for writing it out to memory: SmolLM2's Q8_0
# 49152 x 576 output layer (113 MB in fp32), kernel vs dequantize + GEMM, 1 thread 51 / 121 ms against
# 62 / 76 ms at 64 / 128 rows; 2 threads 24 / 41 against 42 / 52 ms. So such layers switch later.
LARGE_LAYER_BYTES = 16 << 20
LARGE_PREFILL_ROWS = 128


def dequantize(blocks: Tensor, fmt: str, in_features: int) -> Tensor:
    """(N, K / 32 * bytes) uint8 blocks -> (N, K) fp32, the values ``gguf.quants.dequantize`` gives.

    torch ops, so it runs anywhere: d, m fp16 -> fp32 (exact); d * q is exact in fp32, so
    ``d * q + m`` rounds once whether or not it is fused.
    """
    rows = blocks.shape[0]
    b = blocks.reshape(rows, in_features // BLOCK, BLOCK_BYTES[fmt])  # (N, K/32, bytes)
    d = b[..., 0:2].contiguous().view(torch.float16).float()  # (N, K/32, 1)
    if fmt == "Q8_0":
        q = b[..., 2:].contiguous().view(torch.int8).float()  # (N, K/32, 32)
        return (d * q).reshape(rows, in_features)
    codes = b[..., 4:] if fmt == "Q4_1" else b[..., 2:]  # (N, K/32, 16): two 4-bit codes a byte
    q = torch.cat([codes & 15, codes >> 4], dim=-1).float()  # element j | element j + 16
    if fmt == "Q4_0":
        return (d * (q - 8)).reshape(rows, in_features)
    m = b[..., 2:4].contiguous().view(torch.float16).float()
    return (d * q + m).reshape(rows, in_features)


class PackedLinear(nn.Module):
    """``nn.Linear`` over a weight kept in ggml blocks; see the module docstring.

    blocks: (out_features, in_features / 32 * block bytes) uint8, the file's rows unchanged.
    bias: (out_features,) float or None (a .gguf's matrices have none; a quantized GPT-2 layer
    keeps its own, added in fp32 after the product).
    """

    direct_rows = PREFILL_ROWS  # :meth:`into` serves inputs of fewer rows (see attnlab.nn.lean_decode)

    def __init__(self, blocks: Tensor, fmt: str, in_features: int, bias: Tensor | None = None) -> None:
        super().__init__()
        _check_blocks(blocks, fmt, in_features, "PackedLinear")
        self.fmt = fmt
        self.code = packed_kernels.FORMATS[fmt]  # the C code's number for the format
        self.in_features = in_features
        self.out_features = blocks.shape[0]
        # rows from which forward dequantizes and multiplies with the GEMM instead of the kernel
        self.gemm_rows = PREFILL_ROWS if 4 * in_features * self.out_features <= LARGE_LAYER_BYTES \
            else LARGE_PREFILL_ROWS
        if bias is not None and tuple(bias.shape) != (blocks.shape[0],):
            raise AttnlabError(f"The bias of {blocks.shape[0]} outputs must have shape ({blocks.shape[0]},). "
                               f"Got {tuple(bias.shape)} instead.")
        self.register_buffer("blocks", blocks.contiguous())
        # None as for nn.Linear(bias=False): code reading ``layer.bias`` works unchanged.
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        packed_kernels.library()  # build (once per machine) at load, not inside the first token

    @property
    def weight(self) -> Tensor:
        """The dequantized (N, K) fp32 weight (built on each access; by the C code where it is built,
        ~20x faster than the torch ops, which stay the reference and the fallback)."""
        return _dequantize_all(self.blocks, self.fmt, self.in_features)

    def take_rows(self, order: Tensor) -> PackedLinear:
        """The layer with its output rows reordered (e.g. llama.cpp's q/k row order undone)."""
        return PackedLinear(self.blocks[order], self.fmt, self.in_features,
                            None if self.bias is None else self.bias[order])

    def forward(self, x: Tensor) -> Tensor:
        """x (..., K) -> (..., N), fp32 sums; the result has x's dtype."""
        if torch.compiler.is_compiling():
            return self._traced_forward(x)
        lib = packed_kernels.library()
        rows = x.numel() // self.in_features
        if lib is None or rows >= self.gemm_rows or x.device.type != "cpu":
            return linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        # The decode step's path, kept short: it runs ~150 times a token.
        flat = x if x.dtype == torch.float32 and x.is_contiguous() else x.to(torch.float32).contiguous()
        y = flat.new_empty(*x.shape[:-1], self.out_features)
        lib.packed_matmul(self.code, self.blocks.data_ptr(), self.out_features, self.in_features,
                          flat.data_ptr(), rows, y.data_ptr(), torch.get_num_threads())
        if self.bias is not None:
            y += self.bias
        return y if x.dtype == torch.float32 else y.to(x.dtype)

    def into(self, x: Tensor, out: Tensor, threads: int, out_features: int | None = None) -> Tensor:
        """out (B, N) = x (B, K) @ weight.T (+ bias) by the C kernel, with no checks: the lean decode
        step's call (:mod:`attnlab.nn.lean_decode`), which reuses its output rows layer after layer.

        x: fp32, contiguous, on the CPU, B < PREFILL_ROWS, the kernels built (the caller checks).
        out_features: more rows than this layer's, those of the layers whose blocks follow its own
        in memory (:meth:`followed_by`): one call computes their outputs side by side.
        """
        n = self.out_features if out_features is None else out_features
        packed_kernels.library().packed_matmul(self.code, self._buffers["blocks"].data_ptr(), n,
                                               self.in_features, x.data_ptr(), x.shape[0], out.data_ptr(),
                                               threads)
        bias = self._buffers["bias"]
        if bias is not None:
            out += bias
        return out

    def followed_by(self, other: nn.Module) -> bool:
        """Whether ``other``'s blocks start where this layer's end in memory, of the same format and
        width, neither with a bias: then ``self.into(x, out, threads, N1 + N2)`` computes both
        layers' outputs at once, (B, N1 | N2). :func:`attnlab.interop.gguf_packed.pack_gpt` stores
        SwiGLU's gate and up so (two views of one tensor); a copy (``.to()``) does not keep it."""
        if type(other) is not PackedLinear:
            return False
        a, b = self._buffers["blocks"], other._buffers["blocks"]
        return self.fmt == other.fmt and self.in_features == other.in_features \
            and self._buffers["bias"] is None and other._buffers["bias"] is None \
            and a.device.type == b.device.type == "cpu" and b.data_ptr() == a.data_ptr() + a.nbytes

    def _traced_forward(self, x: Tensor) -> Tensor:
        """Under torch.compile: the custom op (opaque to the compiler) or the torch fallback."""
        flat = x.reshape(-1, self.in_features)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if not packed_kernels.available() or flat.shape[0] >= self.gemm_rows or x.device.type != "cpu":
            return F.linear(x, self.weight.to(x.dtype), bias)
        y = packed_kernels.packed_matmul(flat.to(torch.float32), self.blocks, self.fmt, self.out_features)
        y = y if self.bias is None else y + self.bias
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, format={self.fmt}")


def _check_blocks(blocks: Tensor, fmt: str, in_features: int, holder: str) -> None:
    if fmt not in BLOCK_BYTES:
        raise AttnlabError(f"{holder} holds {sorted(BLOCK_BYTES)} blocks. Got {fmt!r} instead.")
    if in_features % BLOCK or blocks.dtype != torch.uint8 or blocks.dim() != 2 or \
            blocks.shape[1] != in_features // BLOCK * BLOCK_BYTES[fmt]:
        raise AttnlabError(
            f"{fmt} blocks for {in_features} inputs must be a (N, {in_features // BLOCK} * "
            f"{BLOCK_BYTES[fmt]}) uint8 tensor with in_features a multiple of {BLOCK}. "
            f"Got {blocks.dtype} {tuple(blocks.shape)} instead."
        )


def _dequantize_all(blocks: Tensor, fmt: str, in_features: int) -> Tensor:
    """Every row of ``blocks`` as fp32: the C code where it is built, else :func:`dequantize`."""
    lib = None if torch.compiler.is_compiling() else packed_kernels.library()
    if lib is None or blocks.device.type != "cpu":
        return dequantize(blocks, fmt, in_features)
    out = torch.empty(blocks.shape[0], in_features)
    lib.dequantize_rows(packed_kernels.FORMATS[fmt], blocks.data_ptr(), blocks.shape[0], in_features,
                        out.data_ptr(), torch.get_num_threads())
    return out


class PackedEmbedding(nn.Module):
    """``nn.Embedding`` over a table kept in ggml blocks (a .gguf's token embeddings): a lookup
    dequantizes only the rows it reads, so the fp32 table (SmolLM2-135M: 113 MB) is never built.

    blocks: (num_embeddings, embedding_dim / 32 * block bytes) uint8, the file's rows (the same
    tensor as the tied output layer's, where there is one). Rows are the values of
    :func:`dequantize`, returned in the floating dtype the module was last cast to (fp32 until
    ``model.to(torch.bfloat16)``), as ``nn.Embedding``'s rows would be after the same cast.
    """

    def __init__(self, blocks: Tensor, fmt: str, embedding_dim: int) -> None:
        super().__init__()
        _check_blocks(blocks, fmt, embedding_dim, "PackedEmbedding")
        self.fmt = fmt
        self.num_embeddings, self.embedding_dim = blocks.shape[0], embedding_dim
        self.register_buffer("blocks", blocks)
        # follows .to(dtype) as a weight would: the dtype the rows are returned in
        self.register_buffer("dtype_marker", torch.zeros(()), persistent=False)

    @property
    def weight(self) -> Tensor:
        """The whole (num_embeddings, embedding_dim) table, dequantized on each access (inspection)."""
        return _dequantize_all(self.blocks, self.fmt, self.embedding_dim).to(self.dtype_marker.dtype)

    def forward(self, input_ids: Tensor) -> Tensor:
        """input_ids (...) -> (..., embedding_dim)."""
        rows = _dequantize_all(self.blocks[input_ids.reshape(-1)], self.fmt, self.embedding_dim)
        return rows.reshape(*input_ids.shape, self.embedding_dim).to(self.dtype_marker.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, format={self.fmt}"


def from_gguf_tensor(tensor: Any) -> nn.Module:
    """A ``gguf.GGUFReader`` tensor -> PackedLinear (Q4_0/Q4_1/Q8_0) or a bias-free fp32 nn.Linear (F32/F16).

    The file's dimensions are listed fastest first, so its (K, N) is torch's (N, K).
    """
    kind = tensor.tensor_type.name
    dims = [int(n) for n in tensor.shape.tolist()]
    if len(dims) != 2:
        raise AttnlabError(f"Tensor {tensor.name} has shape {dims}, not a matrix; only matrices are layers.")
    in_features, out_features = dims
    data = np.asarray(tensor.data)
    if kind in BLOCK_BYTES:
        blocks = torch.from_numpy(np.array(data, dtype=np.uint8).reshape(out_features, -1))  # a copy
        return PackedLinear(blocks, kind, in_features)
    if kind in ("F32", "F16"):
        layer = Linear(in_features, out_features, bias=False)
        weight = torch.from_numpy(np.array(data, dtype=np.float32).reshape(out_features, in_features))
        layer.weight = nn.Parameter(weight, requires_grad=False)
        return layer
    raise AttnlabError(
        f"Tensor {tensor.name} is {kind}; packed weights exist for Q4_0, Q4_1, Q8_0, F16 and F32. "
        f"Load the model with weights='float' to dequantize it instead."
    )
