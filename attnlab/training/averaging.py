"""Checkpoint averaging, §6.1 of arXiv:1706.03762: "For the base models, we used a single
model obtained by averaging the last 5 checkpoints, which were written at 10-minute
intervals." The average of the weights of nearby points of one training run usually
translates better than any one of them.

Snapshots are the model's tensors under their Hugging Face names (shared matrices once),
one ``.safetensors`` file per step in ``snapshots/``; only the newest ``keep`` are kept.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.files import atomic_write
from attnlab.models.base import PreTrainedModel

SNAPSHOT_DIR = "snapshots"
_STEP = re.compile(r"step-(\d+)\.safetensors$")


def snapshot_paths(directory: str | Path) -> list[Path]:
    """The snapshots in ``directory/snapshots``, oldest first."""
    folder = Path(directory) / SNAPSHOT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP.search(p.name))]
    return [p for _, p in sorted(found)]


def save_snapshot(directory: str | Path, model: PreTrainedModel, step: int, keep: int) -> Path:
    """Write the weights of ``step``; delete all but the newest ``keep`` snapshots."""
    from safetensors.torch import save_file

    from attnlab.interop.hf import hf_state_dict

    path = Path(directory) / SNAPSHOT_DIR / f"step-{step:07d}.safetensors"
    state = {k: v.float().cpu().contiguous() for k, v in hf_state_dict(model).items()}
    header = {"format": "pt", "attnlab_step": str(step)}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=header))
    for old in snapshot_paths(directory)[:-keep]:
        old.unlink()
    return path


def average_weights(paths: list[Path]) -> dict[str, Tensor]:
    """The element-wise mean of the tensors of several snapshots (accumulated in float64)."""
    from safetensors.torch import load_file

    if not paths:
        raise AttnlabError("No snapshots to average; train for at least one save interval.")
    total: dict[str, Tensor] = {}
    for path in paths:
        state = load_file(str(path))
        if total and set(state) != set(total):
            raise AttnlabError(
                f"{path} holds other tensors than the snapshots before it; they cannot be averaged."
            )
        for key, tensor in state.items():
            total[key] = total.get(key, 0) + tensor.double()
    return {key: (tensor / len(paths)).float() for key, tensor in total.items()}


def load_average(model: PreTrainedModel, paths: list[Path]) -> PreTrainedModel:
    """Put the average of ``paths`` into ``model`` (in place); returns it."""
    from attnlab.interop.hf import load_state

    with torch.no_grad():
        load_state(model, average_weights(paths), source="the averaged snapshots")
    return model
