"""Rotary position embeddings (RoPE): Su et al. 2021, "RoFormer", arXiv:2104.09864, §3.4.

Instead of adding a position vector to X, RoPE rotates each query and key by an
angle proportional to its position, pair of dimensions by pair of dimensions, so
the score q_m · k_n depends on positions only through m - n:

    theta_i = base^(-2i / D),  i = 0 .. D/2 - 1
    RoPE(x, m) = x * cos(m theta) + rotate_half(x) * sin(m theta)

with the "half" pairing (dimension i with i + D/2) used by Llama-family models.
Values are not rotated: the value vectors stay X W_V.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError


class RotaryEmbedding(nn.Module):
    """cos/sin tables for given positions: positions (T,) or (B, T) -> two (1|B, 1, T, D)."""

    def __init__(self, d_head: int, theta: float = 10000.0) -> None:
        super().__init__()
        if d_head % 2:
            raise AttnlabError(f"RoPE needs an even head width; got d_head={d_head}. Choose an even d_head.")
        exponents = torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head
        self.register_buffer("inv_freq", 1.0 / (theta**exponents), persistent=False)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        if positions.dim() == 1:
            positions = positions[None]
        angles = positions[..., None].float() * self.inv_freq  # (B, T, D/2)
        angles = torch.cat([angles, angles], dim=-1)  # (B, T, D): dims i and i + D/2 share an angle
        return angles.cos()[:, None], angles.sin()[:, None]  # (B, 1, T, D): broadcast over heads


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, T, D) queries or keys by their positions' angles."""
    return (x * cos + rotate_half(x) * sin).to(x.dtype)
