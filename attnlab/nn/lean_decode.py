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
final norm). Same arithmetic as the module path (fp32; sums in another order: a few ulp).

It serves only what it covers: fp32 on the CPU, pre-LN self-attention blocks (RMSNorm or
LayerNorm, SwiGLU or MLP), every row at the same position (no padding), no attention recorder
(a trace sees every intermediate through the module path), eval mode, the C kernels built.
:func:`lean_decode_applies` says whether it does; otherwise the caller runs the module path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

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
        attention, keys = block.attention, cache.keys
        if block.training or not block.norm_first or block.cross_attention is not None \
                or attention.recorder is not None or attention.d_head > MAX_HEAD_WIDTH \
                or not isinstance(block.attention_norm, NORMS) or keys.dtype != torch.float32 \
                or not 0 <= position < cache.max_len or keys.shape[0] != x.shape[0]:
            return False
    return True


def _norm(norm: nn.Module, x: Tensor, delta: Tensor | None) -> Tensor:
    """norm(x += delta) for (B, M) rows; x is updated in place (it is the residual stream)."""
    if isinstance(norm, nn.RMSNorm) and norm.weight is not None:
        out = torch.empty_like(x)
        eps = norm.eps if norm.eps is not None else torch.finfo(x.dtype).eps
        cpu_kernels.library().rms_norm(x.data_ptr(), None if delta is None else delta.data_ptr(),
                                       norm.weight.data_ptr(), x.shape[0], x.shape[1], eps, out.data_ptr())
        return out
    if delta is not None:
        x.add_(delta)
    return norm(x)


def _attend(block: TransformerBlock, h: Tensor, cache: KVCache, position: int,
            rope: tuple[Tensor, Tensor] | None) -> Tensor:
    """Self-attention of one new token per row: (B, M) -> (B, H·D), keys/values cached at ``position``."""
    attention = block.attention
    qkv = attention.qkv(h).contiguous()  # (B, (H + 2 H_kv) D)
    batch = h.shape[0]
    context = h.new_empty(batch, attention.inner_dim)
    cos, sin = (None, None) if rope is None else (rope[0].data_ptr(), rope[1].data_ptr())
    cpu_kernels.library().attend_one(
        qkv.data_ptr(), batch, attention.n_heads, attention.n_kv_heads, attention.d_head, cos, sin,
        cache.keys.data_ptr(), cache.values.data_ptr(), cache.max_len, position, context.data_ptr())
    return attention.out(context)


def _feed_forward(ffn: nn.Module, h: Tensor) -> Tensor:
    if isinstance(ffn, SwiGLUFeedForward):
        gate, up = ffn.gate(h).contiguous(), ffn.up(h).contiguous()
        product = torch.empty_like(gate)
        cpu_kernels.library().silu_mul(gate.data_ptr(), up.data_ptr(), gate.numel(), product.data_ptr())
        return ffn.down(product)
    return ffn(h)


def decode_blocks(blocks: Sequence[TransformerBlock], final_norm: nn.Module, x: Tensor,
                  caches: Sequence[KVCache], position: int, rope: tuple[Tensor, Tensor] | None) -> Tensor:
    """x (B, 1, M), the embedded new tokens at cache slot ``position`` -> final_norm(blocks(x)) (B, M).

    rope: the (cos, sin) of :class:`attnlab.nn.rotary.RotaryEmbedding` for this one position, or
    None. Writes each layer's keys and values at ``position`` of its cache. Check
    :func:`lean_decode_applies` first.
    """
    stream = x.reshape(x.shape[0], x.shape[2]).clone()  # (B, M): the residual stream, updated in place
    if rope is not None:
        rope = (rope[0].reshape(-1).contiguous(), rope[1].reshape(-1).contiguous())  # (D,) each
    y = None
    for block, cache in zip(blocks, caches, strict=True):
        h = _norm(block.attention_norm, stream, y)
        h = _norm(block.ffn_norm, stream, _attend(block, h, cache, position, rope))
        y = _feed_forward(block.ffn, h)
    return _norm(final_norm, stream, y)
