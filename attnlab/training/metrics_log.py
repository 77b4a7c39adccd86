"""``metrics.jsonl``: one JSON object per line, appended as training goes (the one writer).

A run's records: ``{"event": "start", ...}``, one per optimizer step (``step``,
``train_loss``, ``lr``), one per evaluation, and a last one with ``"event"`` ``"end"``
or ``"interrupted"``. :mod:`attnlab.training.plot` draws the loss curve from them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from attnlab.files import append_jsonl

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Appends each record to ``directory/metrics.jsonl`` (none: no file) and hands it to ``also``.

    ``enabled=False`` (every rank but 0 under torchrun) writes nothing and calls nothing.
    """

    def __init__(
        self,
        directory: str | Path | None,
        *,
        enabled: bool = True,
        also: Callable[[dict], None] | None = None,
    ) -> None:
        self.path = Path(directory) / METRICS_FILE if directory is not None else None
        self.enabled, self.also = enabled, also

    def __call__(self, record: dict) -> None:
        if not self.enabled:
            return
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            append_jsonl(self.path, record)
        if self.also is not None:
            self.also(record)
