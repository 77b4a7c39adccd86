"""EpochOrder: every item once per epoch, the draws of a plain epoch loop, and exact resume."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.training.order import EpochOrder


def test_each_epoch_visits_every_item_once_in_batches():
    order, generator = EpochOrder(10, 4), torch.Generator().manual_seed(0)
    batches = [order.next(generator) for _ in range(3)]
    assert [len(b) for b in batches] == [4, 4, 2]  # the last batch of an epoch is smaller
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert order.epoch_ended and order.epochs == 1.0 and order.epoch == 0
    order.next(generator)
    assert order.epoch == 1 and not order.epoch_ended and order.epochs == pytest.approx(1.4)


def test_draws_match_a_plain_epoch_loop():
    """The permutations come from the generator exactly where `for epoch: randperm(n)` draws them."""
    generator = torch.Generator().manual_seed(3)
    plain = []
    for _ in range(3):
        permutation = torch.randperm(7, generator=generator).tolist()
        plain += [permutation[i : i + 3] for i in range(0, 7, 3)]
    order, generator = EpochOrder(7, 3), torch.Generator().manual_seed(3)
    assert [order.next(generator) for _ in range(9)] == plain


def test_state_resumes_the_same_batches():
    order, generator = EpochOrder(9, 2), torch.Generator().manual_seed(1)
    for _ in range(7):
        order.next(generator)
    state, rng = order.state_dict(), generator.get_state()
    expected = [order.next(generator) for _ in range(6)]
    resumed, generator = EpochOrder(9, 2), torch.Generator()
    resumed.load_state_dict(state)
    generator.set_state(rng)
    assert [resumed.next(generator) for _ in range(6)] == expected


def test_a_custom_shuffle_and_bad_sizes():
    order = EpochOrder(3, 1, shuffle=lambda epoch, _: [2, 1, 0] if epoch % 2 else [0, 1, 2])
    assert [order.next(torch.Generator())[0] for _ in range(6)] == [0, 1, 2, 2, 1, 0]
    with pytest.raises(AttnlabError, match="batch_size must be an int >= 1"):
        EpochOrder(3, 0)
