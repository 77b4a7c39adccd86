"""The blocks of a pre-LN decoder for one new token per sequence, with few calls per layer.

A decode step at batch 1 is memory-bound in its matrix products and overhead-bound everywhere
else: the module path (:class:`attnlab.nn.blocks.TransformerBlock`) runs ~25 torch ops and ~12
module calls per layer for norms, rotary positions, the cache write, attention, SiLU and the
residual adds, each a few µs of dispatch. Here a layer is its five projections (the layers
themselves, packed or not) plus four calls into :mod:`attnlab.nn.cpu_kernels`:

    h  = Norm(x += y_prev)              rms_norm (the previous layer's residual add fused in)
    c  = Attend(RoPE(qkv(h)), cache)    attend_one: rotary, cache write at `position`, softmax(qK^T)V
    h  = Norm(x += out(c))              rms_norm
    y  = down(SiLU(gate(h)) * up(h))    silu_mul

so each layer's output ``y`` is added by the next layer's first norm (the last one's by the
final norm). Packed projections write into rows reused layer after layer, and SwiGLU's gate and
up, stored side by side, are one kernel call (four matrix calls a layer instead of five). Same
arithmetic as the module path (fp32; sums in another order: a few ulp).

It serves only what it covers: fp32 on the CPU, pre-LN self-attention blocks (RMSNorm or
LayerNorm, SwiGLU or MLP), every row at the same position (no padding), no attention recorder
(a trace sees every intermediate through the module path), eval mode, the C kernels built.
:func:`lean_decode_applies` says whether it does; otherwise the caller runs the module path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.module import _global_forward_hooks, _global_forward_pre_hooks

from attnlab.nn import cpu_kernels
from attnlab.nn.blocks import TransformerBlock
from attnlab.nn.feedforward import SwiGLUFeedForward
from attnlab.nn.kv_cache import KVCache

NORMS = (nn.RMSNorm, nn.LayerNorm)
MAX_HEAD_WIDTH = 256  # attend_one's accumulators for one head live on the stack


def lean_decode_applies(blocks: Sequence[TransformerBlock], final_norm: nn.Module, x: Tensor,
                        caches: Sequence[KVCache], position: int) -> bool:
    """Whether :func:`decode_blocks` covers this step (x: the (B, 1, M) embedded new tokens; a cache
    too short for ``position``, or of another batch, is left to the module path's error)."""
    if torch.compiler.is_compiling() or x.dtype != torch.float32 or x.device.type != "cpu" \
            or cpu_kernels.library() is None or not isinstance(final_norm, NORMS):
        return False
    for block, cache in zip(blocks, caches, strict=True):
        modules, keys, values = block._modules, cache._buffers["keys"], cache._buffers["values"]
        attention = modules["attention"]  # (dict lookups: see decode_blocks)
        if block.training or not block.norm_first or block.cross_attention is not None \
                or attention.recorder is not None or attention.d_head > MAX_HEAD_WIDTH \
                or not isinstance(modules["attention_norm"], NORMS) or keys.dtype != torch.float32 \
                or not 0 <= position < cache.max_len or keys.shape[0] != x.shape[0] \
                or not (keys.is_contiguous() and values.is_contiguous()):  # the C code's layout
            return False
    return True


def _norm(lib, norm: nn.Module, x: Tensor, delta: Tensor | None, out: Tensor) -> Tensor:
    """norm(x += delta) for (B, M) rows, into ``out`` for RMSNorm; x is updated in place (it is the
    residual stream)."""
    weight = norm._parameters.get("weight")
    if isinstance(norm, nn.RMSNorm) and weight is not None:
        eps = norm.eps if norm.eps is not None else torch.finfo(x.dtype).eps
        lib.rms_norm(x.data_ptr(), None if delta is None else delta.data_ptr(), weight.data_ptr(),
                     x.shape[0], x.shape[1], eps, out.data_ptr())
        return out
    if delta is not None:
        x.add_(delta)
    return norm(x)


class _Rows:
    """The step's intermediate (B, width) rows, one buffer per role reused layer after layer (each
    is consumed before the next layer writes it), and how to call a projection: a PackedLinear
    straight into its buffer (``into`` of :class:`attnlab.inference.packed.PackedLinear`: ~3 µs less a
    call than ``layer(x)``, whose output is a new tensor, ~150 calls a step), any other layer, or a
    hooked one, as a module."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.threads = torch.get_num_threads()
        self.buffers: dict[str, Tensor] = {}
        self.hooked = bool(_global_forward_hooks or _global_forward_pre_hooks)

    def get(self, role: str, width: int) -> Tensor:
        buffer = self.buffers.get(role)
        if buffer is None or buffer.shape[1] != width:
            buffer = self.buffers[role] = torch.empty(self.rows, width, dtype=torch.float32)
        return buffer

    def direct(self, layer: nn.Module) -> bool:
        """A layer with ``into`` (``direct_rows``: below how many rows it serves) and no hooks."""
        return getattr(type(layer), "direct_rows", 0) > self.rows and not (
            self.hooked or layer._forward_hooks or layer._forward_pre_hooks)

    def linear(self, layer: nn.Module, x: Tensor, role: str) -> Tensor:
        if self.direct(layer):
            return layer.into(x, self.get(role, layer.out_features), self.threads)
        return layer(x).contiguous()


def _attend(lib, attention: nn.Module, h: Tensor, cache: KVCache, position: int,
            angles: tuple[int, int] | tuple[None, None], context: Tensor, rows: _Rows) -> Tensor:
    """Self-attention of one new token per row: (B, M) -> (B, M), keys/values cached at ``position``;
    angles: the data pointers of this position's (D,) cos and sin, or None (no rotary positions)."""
    modules, buffers = attention._modules, cache._buffers
    qkv = rows.linear(modules["qkv"], h, "qkv")  # (B, (H + 2 H_kv) D)
    lib.attend_one(qkv.data_ptr(), h.shape[0], attention.n_heads, attention.n_kv_heads, attention.d_head,
                   *angles, buffers["keys"].data_ptr(), buffers["values"].data_ptr(), cache.max_len, position,
                   context.data_ptr())
    return rows.linear(modules["out"], context, "out")


def _feed_forward(lib, ffn: nn.Module, h: Tensor, rows: _Rows) -> Tensor:
    if not isinstance(ffn, SwiGLUFeedForward):
        return ffn(h)
    modules = ffn._modules
    gate, up = modules["gate"], modules["up"]
    width = gate.out_features
    product = rows.get("product", width)
    if rows.direct(gate) and rows.direct(up) and up.out_features == width and gate.followed_by(up):
        both = gate.into(h, rows.get("gate_up", 2 * width), rows.threads, 2 * width)  # (B, gate | up)
        start, step = both.data_ptr(), both.stride(0) * both.element_size()
        for r in range(rows.rows):
            lib.silu_mul(start + r * step, start + r * step + width * 4, width,
                         product.data_ptr() + r * width * 4)
    else:
        gated, upped = rows.linear(gate, h, "gate"), rows.linear(up, h, "up")
        lib.silu_mul(gated.data_ptr(), upped.data_ptr(), gated.numel(), product.data_ptr())
    return rows.linear(modules["down"], product, "down")


def decode_blocks(blocks: Sequence[TransformerBlock], final_norm: nn.Module, x: Tensor,
                  caches: Sequence[KVCache], position: int, rope: tuple[Tensor, Tensor] | None) -> Tensor:
    """x (B, 1, M), the embedded new tokens at cache slot ``position`` -> final_norm(blocks(x)) (B, M).

    rope: the (cos, sin) of :class:`attnlab.nn.rotary.RotaryEmbedding` for this one position, or
    None. Writes each layer's keys and values at ``position`` of its cache. Check
    :func:`lean_decode_applies` first.

    Submodules, parameters and buffers are read from their modules' dicts (``_modules``...):
    ``nn.Module.__getattr__`` costs ~0.3 µs a name and a step reads ~500 of them.
    """
    lib = cpu_kernels.library()
    stream = x.reshape(x.shape[0], x.shape[2]).clone()  # (B, M): the residual stream, updated in place
    h = torch.empty_like(stream)  # each norm's output, consumed before the next norm writes it
    angles = (None, None)
    if rope is not None:
        rope = (rope[0].reshape(-1).contiguous(), rope[1].reshape(-1).contiguous())  # (D,) each
        angles = (rope[0].data_ptr(), rope[1].data_ptr())
    context = None
    y = None
    rows = _Rows(stream.shape[0])
    for block, cache in zip(blocks, caches, strict=True):
        modules = block._modules
        attention = modules["attention"]
        if context is None or context.shape[1] != attention.inner_dim:
            context = stream.new_empty(stream.shape[0], attention.inner_dim)  # (B, H·D)
        normed = _norm(lib, modules["attention_norm"], stream, y, h)
        attended = _attend(lib, attention, normed, cache, position, angles, context, rows)
        normed = _norm(lib, modules["ffn_norm"], stream, attended, h)
        y = _feed_forward(lib, modules["ffn"], normed, rows)
    return _norm(lib, final_norm, stream, y, torch.empty_like(stream))
