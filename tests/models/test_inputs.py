"""check_padding_mask: the one check of a padding mask, for plain, cached and must-have-a-token uses."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.models.inputs import check_padding_mask

IDS = torch.zeros(2, 3, dtype=torch.long)  # (B, T)


def test_all_ones_is_none_and_padding_is_bool():
    assert check_padding_mask(None, IDS) is None
    assert check_padding_mask(torch.ones(2, 3), IDS) is None
    padding = check_padding_mask(torch.tensor([[0, 1, 1], [1, 1, 1]]), IDS)
    assert padding.dtype == torch.bool
    assert padding.tolist() == [[False, True, True], [True, True, True]]


def test_cached_positions_widen_the_mask():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert check_padding_mask(mask, IDS, cached=2).shape == (2, 5)
    with pytest.raises(AttnlabError, match=r"must have shape \(2, 5\), one entry per cached \+ new token"):
        check_padding_mask(torch.ones(2, 3), IDS, cached=2)


@pytest.mark.parametrize("mask, message", [
    ([[1, 1, 1]] * 2, "decoder_attention_mask must be a torch.Tensor; got list"),
    (torch.ones(2, 4), r"decoder_attention_mask must have shape \(2, 3\), one entry per token of input_ids"),
    (torch.full((2, 3), 0.5), "whole numbers"),
    (torch.full((2, 3), 2), r"values in \[0, 2\); got 2"),
    (torch.full((2, 3), -1), r"values in \[0, 2\); got -1"),
])
def test_bad_masks_are_named(mask, message):
    with pytest.raises(AttnlabError, match=message):
        check_padding_mask(mask, IDS, name="decoder_attention_mask")


def test_a_row_of_padding_only_is_refused_when_asked():
    empty_row = torch.tensor([[1, 1, 1], [0, 0, 0]])
    assert check_padding_mask(empty_row, IDS) is not None  # allowed by default (BERT batches)
    with pytest.raises(AttnlabError, match="A prompt is all padding in attention_mask; every prompt needs"):
        check_padding_mask(empty_row, IDS, row="prompt")
