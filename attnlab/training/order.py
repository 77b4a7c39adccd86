"""A resumable order of batches: epochs over a fixed set of items, each in a new order.

Epoch-based training (fine-tuning, translation) visits every example once per epoch.
:class:`EpochOrder` hands out the item indices of one batch at a time; an epoch's
permutation is drawn when its first batch is asked for, from the loop's data generator
(or from any ``shuffle(epoch, generator)``), so the draws happen exactly where a plain
``for epoch: order = randperm(n); for batch in order`` loop would make them. Its state
(epoch, position, the current permutation) goes into every checkpoint, beside the
generator's, so a run stopped after any batch resumes with the same batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from attnlab.checks import check_int


def random_permutation(n_items: int) -> Callable[[int, torch.Generator], list[int]]:
    """``shuffle`` for :class:`EpochOrder`: ``torch.randperm`` drawn from the loop's generator."""
    return lambda epoch, generator: torch.randperm(n_items, generator=generator).tolist()


class EpochOrder:
    """Batches of ``batch_size`` indices into ``n_items`` items (the last batch of an epoch may be
    smaller); ``shuffle(epoch, generator)`` gives each epoch's permutation of ``range(n_items)``."""

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        shuffle: Callable[[int, torch.Generator], list[int]] | None = None,
    ) -> None:
        check_int("n_items", n_items)
        check_int("batch_size", batch_size)
        self.n_items, self.batch_size = n_items, batch_size
        self.shuffle = shuffle or random_permutation(n_items)
        self.epoch, self.position = 0, 0
        self.order: list[int] | None = None  # the current epoch's permutation, once drawn

    def next(self, generator: torch.Generator) -> list[int]:
        """The indices of the next batch (drawing a new epoch's order when one is used up)."""
        if self.order is None or self.position >= len(self.order):
            if self.order is not None:
                self.epoch, self.position = self.epoch + 1, 0
            self.order = list(self.shuffle(self.epoch, generator))
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += len(batch)
        return batch

    @property
    def epoch_ended(self) -> bool:
        """Whether the last batch handed out finished an epoch."""
        return self.order is not None and self.position >= len(self.order)

    @property
    def epochs(self) -> float:
        """Epochs done so far, fractional (2.5: half-way through the third)."""
        return self.epoch + (self.position / len(self.order) if self.order else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "order": self.order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position, self.order = state["epoch"], state["position"], state["order"]
