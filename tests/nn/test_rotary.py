"""Rotary position embeddings: scores depend on positions only through their difference (RoFormer §3.4)."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.nn.rotary import RotaryEmbedding, apply_rotary


def test_an_odd_head_width_is_refused_with_the_one_error_type():
    with pytest.raises(AttnlabError, match="even head width; got d_head=7"):
        RotaryEmbedding(7)


def test_scores_depend_on_relative_position_and_norms_are_kept():
    rope = RotaryEmbedding(8)
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=generator), torch.randn(1, 1, 1, 8, generator=generator)

    def rotated(x, position):
        return apply_rotary(x, *rope(torch.tensor([position])))

    score = (rotated(q, 5) * rotated(k, 2)).sum()
    shifted = (rotated(q, 13) * rotated(k, 10)).sum()  # both moved by 8: same m - n
    torch.testing.assert_close(score, shifted, rtol=1e-5, atol=1e-5)
    assert abs(float(score - (rotated(q, 5) * rotated(k, 4)).sum())) > 1e-3  # another m - n differs
    torch.testing.assert_close(rotated(q, 9).norm(), q.norm())
