"""The loss curve of a run, drawn from its ``metrics.jsonl`` (needs matplotlib: the ``plot`` extra)."""

from __future__ import annotations

import json
from pathlib import Path

from attnlab.files import atomic_write


def plot_loss_curve(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Write the training (and sampled validation) loss against steps; None if matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no screen needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train, val = [], []
    for line in Path(metrics_path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "train_loss" in record and "event" not in record:
            train.append((record["step"], record["train_loss"]))
        if "val_loss_sample" in record:
            val.append((record["step"], record["val_loss_sample"]))
    figure, axes = plt.subplots(figsize=(7, 4))
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss", linewidth=0.8)
    if val:
        axes.plot(*zip(*val, strict=True), "o-", label="validation loss (sample)")
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy (nats / token)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(png_path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
    return Path(png_path)
