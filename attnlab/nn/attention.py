"""Scaled dot-product attention and multi-head attention.

Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, §3.2:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                     (eq. 1)
    MultiHead(X)       = Concat(head_1, ..., head_h) W_O
    head_i             = Attention(X W_Q_i, X W_K_i, X W_V_i)

Dimension legend (used in every shape comment of attnlab):
    B batch, T query positions, S key/value positions, H heads,
    D head width (d_head), M model width (d_model).

One module, two kernels. The fast path hands Q, K, V to PyTorch's fused
``scaled_dot_product_attention``. The explicit path spells out every step of
eq. 1 so that scores and probabilities exist as tensors; it runs when a recorder
is attached (see :mod:`attnlab.inspect.trace`). Both are tested equal.
Bf16 training on short sequences on a CPU takes the explicit path too: there it was
measured faster than every kernel of SDPA (see :data:`EXPLICIT_TRAINING_MAX_KEYS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.checks import check_int, is_int
from attnlab.errors import AttnlabError
from attnlab.nn import fused_attention
from attnlab.nn.kv_cache import KVCache
from attnlab.nn.linear import Linear
from attnlab.nn.rotary import apply_rotary


def causal_mask(q_len: int, k_len: int, device: torch.device | None = None) -> Tensor:
    """Boolean (T, S) mask, True where query i may attend to key j.

    Queries are the *last* ``q_len`` positions of the ``k_len`` keys (bottom-right
    alignment), which is what a KV cache needs: after ``S - T`` cached positions,
    query i sits at absolute position ``S - T + i`` and sees keys ``j <= S - T + i``.
    """
    query_positions = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    key_positions = torch.arange(k_len, device=device)[None, :]
    return key_positions <= query_positions


def broadcast_padding_mask(padding_mask: Tensor | None) -> Tensor | None:
    """A (B, S) padding mask (1 = token, 0 = padding) as a (B, 1, 1, S) boolean mask over the keys.

    Broadcasts over heads and query positions. Returns None when there is no padding
    mask, so the fast path can keep its mask-free kernels.
    """
    if padding_mask is None:
        return None
    return padding_mask.to(torch.bool)[:, None, None, :]


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``target`` (shape comparisons only, no data)."""
    if len(shape) > len(target):
        return False
    return all(have in (1, want) for have, want in zip(shape, target[len(target) - len(shape):], strict=True))


def check_attention_input(x, d_model: int, name: str = "x") -> None:
    """``x`` must be a (B, T, d_model) floating-point tensor; costs shape and dtype lookups only."""
    if not isinstance(x, Tensor):
        raise AttnlabError(f"{name} must be a torch.Tensor (B, T, {d_model}); got {type(x).__name__}.")
    if x.dim() != 3:
        hint = " (add a batch dimension: x[None])" if x.dim() == 2 else ""
        raise AttnlabError(f"{name} must be 3-D (B, T, {d_model}); got shape {tuple(x.shape)}{hint}.")
    if x.shape[-1] != d_model:
        raise AttnlabError(
            f"{name} has width {x.shape[-1]} but this layer's d_model is {d_model}; "
            f"got shape {tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise AttnlabError(
            f"{name} must be a floating-point tensor (hidden states); got {x.dtype}. "
            f"Embed token ids first, or convert with .float()."
        )


# The longest key length at which bf16 training on a CPU takes the explicit kernel. PyTorch picks its CPU
# flash kernel, whose bf16 backward is slow on short sequences. Causal forward + backward, explicit / flash
# time, one thread of a loaded 2-core Zen 5 (AVX512-BF16, torch 2.13): 0.31 at (B, H, T, D) = (12, 4, 64, 32),
# 0.57 at (32, 4, 128, 32), 0.88 at (8, 12, 256, 64), 1.31 at (4, 12, 512, 64). SDPA's math kernel was
# slower than the explicit one (2.0 against 1.4 ms at the first shape: it computes in fp32). Without
# gradients, and in fp32, flash was as fast or faster (fp32 with gradients: explicit 1.44x at T=64).
EXPLICIT_TRAINING_MAX_KEYS = 128


def _explicit_is_faster(query: Tensor, key_len: int) -> bool:
    """Whether :func:`explicit_attention` beats SDPA for this call: bf16 queries (B, H, T, D) on a CPU
    with gradients flowing and at most :data:`EXPLICIT_TRAINING_MAX_KEYS` keys."""
    return (key_len <= EXPLICIT_TRAINING_MAX_KEYS and query.dtype == torch.bfloat16
            and query.device.type == "cpu" and query.requires_grad and torch.is_grad_enabled())


def explicit_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 1 step by step, keeping every intermediate.

    Args:
        query: (B, H, T, D); key, value: (B, H, S, D).
        mask: boolean, broadcastable to (B, H, T, S); True = may attend.
        is_causal: add the causal mask (bottom-right aligned, see :func:`causal_mask`).

    Returns:
        context (B, H, T, D) = probs @ value, the weighted sums of value vectors;
        scores (B, H, T, S) = Q K^T / sqrt(D) after masking;
        probs (B, H, T, S) = softmax(scores), rows sum to 1 (0 on fully masked rows).
    """
    q_len, k_len = query.shape[-2], key.shape[-2]
    # Only a given mask (or more queries than keys) can hide every key from a query.
    rows_may_be_empty = mask is not None or (is_causal and q_len > k_len)
    if is_causal:
        causal = causal_mask(q_len, k_len, query.device)
        mask = causal if mask is None else mask & causal
    scores = (query @ key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    if mask is not None:
        # The most negative finite number rather than -inf: a row with every key
        # masked then stays finite; it is zeroed below, as the fused kernel does.
        # Added, not filled in: no score comes near its size, so the sum is that number
        # exactly, and the backward of an addition costs nothing (of masked_fill, a pass).
        hidden = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
        scores = scores + hidden.masked_fill_(~mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    if rows_may_be_empty:  # elsewhere a masked key's probability is exp(min - max) = 0 already
        probs = probs.masked_fill(~mask, 0.0)
    weights = F.dropout(probs, p=dropout_p) if dropout_p > 0 else probs
    context = weights @ value
    return context, scores, probs


# --- bf16 inference under torch.compile where the fused C kernel does not run (a measured rule) ----------
#
# On CPUs with AVX512-BF16 the fused kernel (uses_fused_inference_attention, below) takes bf16 inference
# first; these figures chose between flash SDPA and the torch form before it existed, and still decide
# elsewhere (a head width the kernel does not serve, a mask per query, no C compiler).
# Measured on a 2-core Zen 5 (AVX512-BF16, no AMX), 1 thread, no grad, both kernels compiled by inductor
# and timed in turns (an earlier benchmarks/inference_attention.py; medians; the machine shared, load
# average ~6 on 2 cores, so single figures move by tens of percent between runs, the ordering did not up
# to 512 keys),
# q, k, v views of the fused qkv output:
#   (B, H, T=S, D)           flash SDPA   compiled_inference_attention
#   (8, 12, 128, 32)           8.1 ms         6.5 ms       MiniLM's layer (1.16x-1.24x in two runs)
#   (8, 12, 128, 64)          14.6 ms         8.1 ms       BERT-base's layer
#   (1, 12, 256, 64) causal    6.8 ms         2.0 ms
#   (1, 12, 512, 64) causal   22.3 ms        10.3 ms       GPT-2 prefill's layer (one run of three had
#                                                          explicit slower: 42.6 vs 25.6 ms, under load)
#   (1, 12, 1024, 64) causal  61.9 ms       132.5 ms       the (T, S) fp32 scores outgrow the caches
# The flash kernel converts bf16 blocks to fp32 on CPUs without AMX; up to 512 keys that costs more than
# the score matrix it avoids. Eager, the explicit form is slower than flash (11.8 vs 7.7 ms at MiniLM's
# layer): only inductor's fusion of scale, mask, softmax and casts into one pass pays. End to end
# (attnlab bench minilm prefill --rounds 3, against transformers bf16): MiniLM 1.19x -> 1.31x,
# GPT-2 prefill 512 1.23x -> 1.50x (separate runs, load average 6-8).
COMPILED_EXPLICIT_MAX_KEYS = 512


def uses_compiled_explicit_attention(
    query: Tensor, key_len: int, mask: Tensor | None, dropout_p: float
) -> bool:
    """Whether :class:`MultiHeadAttention` runs :func:`compiled_inference_attention` instead of fused SDPA:
    bf16 on the CPU, no gradients, no dropout, a boolean mask or none, inside ``torch.compile``, at most
    :data:`COMPILED_EXPLICIT_MAX_KEYS` keys (the figures above)."""
    return (
        query.dtype == torch.bfloat16
        and query.device.type == "cpu"
        and not torch.is_grad_enabled()
        and dropout_p == 0.0
        and (mask is None or mask.dtype == torch.bool)
        and key_len <= COMPILED_EXPLICIT_MAX_KEYS
        and torch.compiler.is_compiling()
    )


def compiled_inference_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None, is_causal: bool = False
) -> Tensor:
    """Eq. 1 for bf16 inference under ``torch.compile`` where the fused kernel does not serve (a CPU
    without AVX512-BF16, an odd head width, a mask per query): bf16 matmuls, softmax in fp32.

    Args: as :func:`explicit_attention` (query (B, H, T, D); key, value (B, H, S, D); boolean mask).
    Returns the context (B, H, T, D) in the query's dtype. The scores are upcast before scaling and
    softmax (which also keeps inductor from matching the pattern back into fused SDPA); the
    probabilities are rounded to the value's dtype for the second matmul. Fully masked rows give 0.
    """
    q_len, k_len = query.shape[-2], key.shape[-2]
    if is_causal:
        causal = causal_mask(q_len, k_len, query.device)
        mask = causal if mask is None else mask & causal
    scores = (query @ key.transpose(-2, -1)).float() * (1.0 / math.sqrt(query.shape[-1]))  # (B, H, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, dim=-1)
    if mask is not None:
        probs = probs.masked_fill(~mask, 0.0)
    return probs.to(value.dtype) @ value


def uses_fused_inference_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, dropout_p: float
) -> bool:
    """Whether :class:`MultiHeadAttention` runs :func:`attnlab.nn.fused_attention.attend`: bf16 on a
    CPU with AVX512-BF16 or fp32 prompts on one with AVX-512 (see that module), nothing to
    differentiate, no dropout, and no mask or one row of visible keys per sequence; eager or compiled,
    any length. Against fused SDPA in bf16 (what transformers runs) it
    measured 3.2-6.0x faster at every shape tried, with the same max error against float64
    (benchmarks/inference_attention.py, 2-core Zen 5, 1 thread): MiniLM's layer (8, 12, 128, 32)
    0.93 vs 3.54 ms, a 512-token causal GPT-2 layer 1.60 vs 9.55 ms, 2048 tokens 18.7 vs 87.8 ms,
    one decoding query over 300 keys 0.09 vs 0.27 ms; and 1.9-3.1x faster than the compiled torch
    form below up to 512 keys, 12x at 1024."""
    needs_grad = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)
    return not needs_grad and dropout_p == 0.0 and fused_attention.serves(query, key, value, mask)


@dataclass(frozen=True)
class ProjectedMemory:
    """Cross-attention keys and values of the encoder output, projected once.

    The encoder output does not change while the decoder generates, so each
    decoder layer computes K = memory W_K and V = memory W_V once (see
    :meth:`MultiHeadAttention.project_memory`) and every decoding step reuses them.
    Pass it as ``memory=`` wherever the (B, S, M) encoder output is accepted.

    key, value: (B, H_kv, S, D).
    """

    key: Tensor
    value: Tensor

    def repeat_interleave(self, repeats: int) -> ProjectedMemory:
        """Each row repeated ``repeats`` times along the batch: (B·repeats, H_kv, S, D) (beam search)."""
        return ProjectedMemory(
            self.key.repeat_interleave(repeats, dim=0), self.value.repeat_interleave(repeats, dim=0)
        )


Recorder = Callable[..., None]


class MultiHeadAttention(nn.Module):
    """Multi-head attention, §3.2.2 of arXiv:1706.03762.

    Self-attention uses one fused projection ``qkv`` whose rows are [W_Q; W_K; W_V];
    cross-attention projects queries from ``x`` (``query``) and keys/values from the
    encoder memory (``key_value``, rows [W_K; W_V]). ``out`` is W_O (H·D -> M),
    applied to the concatenated heads.

    Grouped-query attention (Ainslie et al. 2023, arXiv:2305.13245): with
    ``n_kv_heads`` < ``n_heads``, K and V have only ``n_kv_heads`` heads and each
    serves ``n_heads / n_kv_heads`` query heads, which share its value vectors.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        d_head: int | None = None,
        n_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        cross_attention: bool = False,
    ) -> None:
        super().__init__()
        check_int("d_model", d_model)
        check_int("n_heads", n_heads)
        if d_head is not None:
            check_int("d_head", d_head)
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if not is_int(n_kv_heads) or n_kv_heads < 1 \
                or n_heads % n_kv_heads:
            raise AttnlabError(
                f"n_kv_heads must be an int >= 1 that divides n_heads ({n_heads}), so that each "
                f"key/value head serves a whole group of query heads. Got {n_kv_heads!r} instead."
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise AttnlabError(f"dropout must be a probability in [0, 1]. Got {dropout!r} instead.")
        if d_head is None:
            if d_model % n_heads != 0:
                raise AttnlabError(
                    f"d_model ({d_model}) must be divisible by n_heads ({n_heads}); "
                    f"choose another head count or pass d_head explicitly."
                )
            d_head = d_model // n_heads
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_head
        self.n_kv_heads = n_kv_heads
        self.inner_dim = n_heads * d_head  # width of Q (and of the concatenated heads)
        self.kv_dim = n_kv_heads * d_head  # width of K and of V
        self.dropout = dropout
        self.cross_attention = cross_attention
        if cross_attention:
            self.query = Linear(d_model, self.inner_dim, bias=bias)
            self.key_value = Linear(d_model, 2 * self.kv_dim, bias=bias)
        else:
            self.qkv = Linear(d_model, self.inner_dim + 2 * self.kv_dim, bias=bias)
        self.out = Linear(self.inner_dim, d_model, bias=bias)
        # Set by attnlab.inspect.trace while a trace is active; None costs one `if`.
        self.recorder: Recorder | None = None

    # The projections as the paper names them: views into the fused weights.
    def _rows(self, which: int) -> tuple[Tensor, Tensor | None]:
        """Rows of W_Q (which=0), W_K (1) or W_V (2) inside the fused weights."""
        if self.cross_attention:
            layer = self.query if which == 0 else self.key_value
            start = 0 if which < 2 else self.kv_dim
        else:
            layer = self.qkv
            start = 0 if which == 0 else self.inner_dim + (which - 1) * self.kv_dim
        width = self.inner_dim if which == 0 else self.kv_dim
        rows = slice(start, start + width)
        bias = None if layer.bias is None else layer.bias[rows]
        return layer.weight[rows], bias

    @property
    def query_weight(self) -> Tensor:
        """W_Q as (H·D, M): Q = X W_Q^T + b_Q."""
        return self._rows(0)[0]

    @property
    def key_weight(self) -> Tensor:
        """W_K as (H_kv·D, M)."""
        return self._rows(1)[0]

    @property
    def value_weight(self) -> Tensor:
        """W_V as (H_kv·D, M): the value vectors are V = X W_V^T + b_V."""
        return self._rows(2)[0]

    @property
    def query_bias(self) -> Tensor | None:
        return self._rows(0)[1]

    @property
    def key_bias(self) -> Tensor | None:
        return self._rows(1)[1]

    @property
    def value_bias(self) -> Tensor | None:
        return self._rows(2)[1]

    def _split_heads(self, x: Tensor) -> Tensor:
        """(B, T, n·D) -> (B, n, T, D), n = H for queries, H_kv for keys and values."""
        batch, length, width = x.shape
        return x.view(batch, length, width // self.d_head, self.d_head).transpose(1, 2)

    @staticmethod
    def _check_mask(mask, target: tuple[int, int, int, int]) -> None:
        """A boolean (or additive float) mask broadcastable to (B, H, T, S)."""
        if not isinstance(mask, Tensor):
            raise AttnlabError(f"mask must be a torch.Tensor broadcastable to {target} (B, H, T, S); "
                               f"got {type(mask).__name__}.")
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise AttnlabError(f"mask must be boolean (True = may attend); got {mask.dtype}. "
                               f"Convert a 0/1 padding mask with .bool().")
        if not _broadcasts(tuple(mask.shape), target):
            raise AttnlabError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to {target} (B, H, T, S); "
                f"a (B, S) padding mask becomes (B, 1, 1, S) with broadcast_padding_mask()."
            )

    def expand_kv(self, x: Tensor) -> Tensor:
        """(B, H_kv, S, D) -> (B, H, S, D): each key/value head repeated for its query heads."""
        group = self.n_heads // self.n_kv_heads
        return x if group == 1 else x.repeat_interleave(group, dim=1)

    def project_memory(self, memory: Tensor) -> ProjectedMemory:
        """Cross-attention only: the (B, H_kv, S, D) keys and values of the encoder output (B, S, M)."""
        if not self.cross_attention:
            raise AttnlabError("project_memory is for cross-attention layers; this one is self-attention.")
        check_attention_input(memory, self.d_model, "memory")
        key, value = self.key_value(memory).split(self.kv_dim, dim=-1)
        return ProjectedMemory(self._split_heads(key), self._split_heads(value))

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        memory: Tensor | ProjectedMemory | None = None,
        kv_cache: KVCache | None = None,
        start_pos: int = 0,
        rope: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Attend from ``x`` (B, T, M) to itself, or to ``memory`` (B, S, M) when cross.

        ``memory`` may also be a :class:`ProjectedMemory` (keys and values projected
        beforehand by :meth:`project_memory`), which skips their projection.

        Args:
            mask: boolean, broadcastable to (B, H, T, S); True = may attend.
            is_causal: each query sees only keys at or before its own position.
            kv_cache: write this call's keys/values at ``start_pos`` and attend over
                all cached positions (self-attention only).
            rope: (cos, sin) of :class:`attnlab.nn.rotary.RotaryEmbedding` for this
                call's positions; rotates queries and keys (not values).

        Returns: (B, T, M).

        Wrong inputs (not a (B, T, M) float tensor, a mask that does not broadcast, memory
        of another batch) raise a one-line AttnlabError; the checks compare shapes and
        dtypes only, so they cost no tensor work and keep ``torch.compile`` graphs whole.
        """
        check_attention_input(x, self.d_model)
        batch, length, _ = x.shape
        if self.cross_attention:
            if memory is None:
                raise AttnlabError("Cross-attention needs the encoder output; pass memory=(B, S, M).")
            query = self._split_heads(self.query(x))  # (B, H, T, D)
            projected = memory if isinstance(memory, ProjectedMemory) else self.project_memory(memory)
            key, value = projected.key, projected.value  # (B, H_kv, S, D)
            if key.shape[0] != batch:
                raise AttnlabError(f"memory holds {key.shape[0]} sequences but x holds {batch}; "
                                   f"give one encoder output per sequence.")
        else:
            query, key, value = self.qkv(x).split([self.inner_dim, self.kv_dim, self.kv_dim], dim=-1)
            query = self._split_heads(query)  # (B, H, T, D)
            key, value = self._split_heads(key), self._split_heads(value)  # (B, H_kv, T, D)
        if rope is not None:
            query, key = apply_rotary(query, *rope), apply_rotary(key, *rope)
        if kv_cache is not None:
            key, value = kv_cache.update(start_pos, key, value)

        k_len = key.shape[2]
        if mask is not None:
            self._check_mask(mask, (batch, self.n_heads, length, k_len))
        if is_causal and length == 1 and mask is None:
            is_causal = False  # one new query is the last position: it may see every cached key
        dropout_p = self.dropout if self.training else 0.0

        recorder = self.recorder
        grouped = self.n_kv_heads != self.n_heads
        fused = recorder is None and uses_fused_inference_attention(query, key, value, mask, dropout_p)
        compiled = (not fused and recorder is None
                    and uses_compiled_explicit_attention(query, k_len, mask, dropout_p))
        if is_causal and not (fused or compiled) and (mask is not None or length != k_len):
            # SDPA's is_causal aligns top-left; fold a bottom-right mask in.
            causal = causal_mask(length, k_len, x.device)
            mask = causal if mask is None else mask & causal
            is_causal = False
        # The first two align causal masks bottom-right themselves and keep a padding mask apart.
        if fused:
            context = fused_attention.attend(query, key, value, mask=mask, is_causal=is_causal)
        elif compiled:
            context = compiled_inference_attention(
                query, self.expand_kv(key), self.expand_kv(value), mask=mask, is_causal=is_causal
            )
        elif recorder is None and not _explicit_is_faster(query, k_len):
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal,
                enable_gqa=grouped,
            )
        else:
            # Traced, or bf16 training on short sequences (faster so): every query head gets its
            # group's keys and values, explicitly.
            key, value = self.expand_kv(key), self.expand_kv(value)
            context, scores, probs = explicit_attention(
                query, key, value, mask=mask, is_causal=is_causal, dropout_p=dropout_p
            )
        # Concat(head_1, ..., head_h): (B, H, T, D) -> (B, T, H·D), then W_O.
        output = self.out(context.transpose(1, 2).reshape(batch, length, self.inner_dim))
        if recorder is not None:
            recorder(
                self,
                input=x,
                query=query,
                key=key,
                value=value,
                scores=scores,
                probs=probs,
                context=context,
                output=output,
            )
        return output
