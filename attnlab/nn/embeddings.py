"""Input embeddings: what turns token ids into the X that attention reads.

    X = TokenEmbedding(ids) [· sqrt(M)] + Position(pos) [+ Segment(segment ids)]
    X = Dropout(LayerNorm(X))          (LayerNorm only in BERT)

- token embeddings, scaled by sqrt(d_model) in the Transformer (§3.4 of arXiv:1706.03762);
- sinusoidal positions (§3.5):  PE(pos, 2i) = sin(pos / 10000^(2i/M)),
                                PE(pos, 2i+1) = cos(pos / 10000^(2i/M));
  laid out as the paper writes it ("interleaved": sin, cos, sin, cos, ...) or with all
  sines first and all cosines after ("halves", the layout of Marian / Hugging Face's
  ``MarianSinusoidalPositionalEmbedding``): the same numbers, the dimensions permuted;
- learned positions (BERT, GPT);
- segment ("token type") embeddings, sentence A / B (BERT, arXiv:1810.04805 §3).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError

SINUSOIDAL_LAYOUTS = ("interleaved", "halves")


def sinusoidal_table(n_positions: int, d_model: int, layout: str = "interleaved") -> Tensor:
    """The (n_positions, d_model) table of §3.5.

    layout "interleaved": sines on even dims, cosines on odd (the paper's indexing);
    "halves": the ceil(M/2) sines first, then the floor(M/2) cosines (Marian's).
    """
    if layout not in SINUSOIDAL_LAYOUTS:
        raise AttnlabError(f"Unknown sinusoidal layout {layout!r}; choose one of {SINUSOIDAL_LAYOUTS}.")
    positions = torch.arange(n_positions, dtype=torch.float64)[:, None]
    frequencies = torch.exp(
        -math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model
    )
    table = torch.zeros(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies[: d_model // 2])
    if layout == "halves":
        table = torch.cat([table[:, 0::2], table[:, 1::2]], dim=1)
    return table.float()


class SinusoidalPositionEncoding(nn.Module):
    """Fixed sinusoidal positions; no parameters. positions (T,) -> (T, M)."""

    def __init__(self, n_positions: int, d_model: int, layout: str = "interleaved") -> None:
        super().__init__()
        self.layout = layout
        self.register_buffer("table", sinusoidal_table(n_positions, d_model, layout), persistent=False)

    @property
    def num_embeddings(self) -> int:
        return self.table.shape[0]

    def forward(self, positions: Tensor) -> Tensor:
        return self.table[positions]


class InputEmbedding(nn.Module):
    """Token + position (+ segment) embeddings, optional LayerNorm, dropout.

    Args:
        position: "learned" (an nn.Embedding), "sinusoidal" (fixed table) or "none".
        n_segments: number of segment types; 0 for none.
        norm: apply LayerNorm after the sum (BERT).
        scale: multiply token embeddings by sqrt(d_model) (the Transformer).
        sinusoidal_layout: "interleaved" (the paper) or "halves" (Marian); see
            :func:`sinusoidal_table`.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_positions: int,
        *,
        position: str = "learned",
        n_segments: int = 0,
        norm: bool = False,
        layer_norm_eps: float = 1e-5,
        dropout: float = 0.0,
        scale: bool = False,
        padding_idx: int | None = None,
        sinusoidal_layout: str = "interleaved",
    ) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        if position == "learned":
            self.position: nn.Module | None = nn.Embedding(max_positions, d_model)
        elif position == "sinusoidal":
            self.position = SinusoidalPositionEncoding(max_positions, d_model, sinusoidal_layout)
        else:
            self.position = None
        self.segment = nn.Embedding(n_segments, d_model) if n_segments else None
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if norm else None
        self.dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(d_model) if scale else 1.0

    def forward(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        start_pos: int = 0,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """input_ids (B, T) -> X (B, T, M).

        Positions run from ``start_pos``, or are given per token as ``position_ids``
        (B, T) (left-padded batches start each row's count at its first real token).
        """
        x = self.token(input_ids)
        if self.scale != 1.0:
            x = x * self.scale
        if self.position is not None:
            if position_ids is None:
                position_ids = torch.arange(
                    start_pos, start_pos + input_ids.shape[1], device=input_ids.device
                )
            x = x + self.position(position_ids)
        if self.segment is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.segment(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)
