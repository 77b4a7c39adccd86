"""The key/value cache of one self-attention layer, and the one factory that makes them.

Generation (prefill, then one position per decode step; gpt-fast's split) writes each new
position's keys and values once and attends over all that is cached, instead of re-running
the whole prefix. The caches are pre-allocated (static shapes, so a decode step compiles to
one graph) and written in place at ``start_pos``.

Dimension legend: B batch, H key/value heads, D head width (see :mod:`attnlab.nn.attention`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from attnlab.checks import check_int
from attnlab.errors import AttnlabError

if TYPE_CHECKING:
    from attnlab.nn.attention import MultiHeadAttention


class KVCache(nn.Module):
    """A pre-allocated key/value cache for one attention layer.

    Generation writes the keys and values of new positions at ``start_pos`` and
    attends over everything written so far, so each new token costs one forward
    over one position instead of the whole prefix.

    Buffers ``keys`` and ``values``: (B, H, max_len, D).
    """

    def __init__(
        self,
        batch_size: int,
        n_heads: int,
        max_len: int,
        d_head: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("n_heads", n_heads), ("max_len", max_len),
                            ("d_head", d_head)):
            check_int(name, value)
        shape = (batch_size, n_heads, max_len, d_head)
        self.max_len = max_len
        self.register_buffer("keys", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("values", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, start_pos: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Write (B, H, T, D) keys/values at ``start_pos``; return all (B, H, start_pos+T, D)."""
        batch, n_heads, _, d_head = self.keys.shape
        if keys.dim() != 4 or keys.shape != values.shape:
            raise AttnlabError(
                f"KVCache.update takes keys and values of one shape (B, H, T, D); got "
                f"{tuple(keys.shape)} and {tuple(values.shape)}."
            )
        if keys.shape[0] != batch:
            raise AttnlabError(
                f"The KV cache was made for batch size {batch} but got {keys.shape[0]} sequences; "
                f"make new caches for this batch (e.g. model.new_kv_caches({keys.shape[0]}))."
            )
        if keys.shape[1] != n_heads or keys.shape[3] != d_head:
            raise AttnlabError(
                f"The KV cache holds {n_heads} heads of width {d_head} but got keys of shape "
                f"{tuple(keys.shape)} (B, H, T, D); make the cache for this layer's heads."
            )
        if start_pos < 0:
            raise AttnlabError(f"start_pos must be >= 0. Got {start_pos} instead.")
        end = start_pos + keys.shape[2]
        if end > self.max_len:
            raise AttnlabError(
                f"The KV cache holds {self.max_len} positions but position {end} was asked for; "
                f"create the cache with a larger max_len or generate fewer tokens."
            )
        self.keys[:, :, start_pos:end] = keys
        self.values[:, :, start_pos:end] = values
        return self.keys[:, :, :end], self.values[:, :, :end]


def new_kv_caches(
    attentions: Iterable[MultiHeadAttention],
    batch_size: int,
    max_len: int,
    *,
    like: Tensor,
    dtype: torch.dtype | None = None,
) -> list[KVCache]:
    """The one KV-cache factory: a (B, H_kv, max_len, D) cache for each self-attention layer given.

    Every model that decodes (GPT, the Transformer's decoder) makes its caches here, each
    shaped by its layer's own key/value heads and head width, on ``like``'s device and in its
    dtype (or ``dtype``).
    """
    return [KVCache(batch_size, attention.n_kv_heads, max_len, attention.d_head, dtype=dtype or like.dtype,
                    device=like.device) for attention in attentions]
