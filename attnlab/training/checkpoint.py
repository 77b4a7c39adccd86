"""Training checkpoints that resume exactly, written so a crash never breaks one.

A checkpoint directory is a Hugging Face-layout model directory (``config.json``,
``model.safetensors``, tokenizer files) plus ``training_state.pt``: the optimizer
state, the random-number states (data sampling and dropout), the step, and the
configs it was trained with. Every file is written atomically, the training
state last; the step is also stored in the safetensors metadata, so a model file
and a state file from different steps are detected instead of silently mixed.
``training_state.pt`` holds only tensors and plain Python values and is read with
``torch.load(weights_only=True)``.

The model file and the training state are one pair, but no rename replaces two
files at once. So before a save replaces them, the previous pair is hard-linked
(copied where links are not supported) into ``.previous-checkpoint/``, and that
folder is removed only once the new pair is whole. A save killed in between (SIGKILL,
power loss) leaves the folder behind; reading the checkpoint then puts the previous
pair back if the pair in place is mixed. A save that fails (a full disk) puts it
back at once.
"""

from __future__ import annotations

import os
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from attnlab.errors import AttnlabError
from attnlab.files import atomic_write, check_parents, write_failure
from attnlab.interop.hf import save_pretrained
from attnlab.interop.weights import SAFETENSORS, refused_global
from attnlab.models.base import PreTrainedModel
from attnlab.training.config_checks import current_names

STATE_FILE = "training_state.pt"
FORMAT_VERSION = 1
PREVIOUS = ".previous-checkpoint"  # the last whole pair, kept while a save replaces it
_PAIR = (SAFETENSORS, STATE_FILE)


def has_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / STATE_FILE).is_file()


def check_checkpoint_dir(out: str | Path, resume: bool) -> None:
    """Refuse, before any work, an ``--out`` that is a file or a ``--resume`` with nothing to resume."""
    out = Path(out)
    _refuse_file_out(out)
    if resume and not has_checkpoint(out):
        raise AttnlabError(
            f"No checkpoint in {out} (no {STATE_FILE} to resume from); check --out, "
            f"or drop --resume to start a new run."
        )


def _refuse_file_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise AttnlabError(f"--out {out} is a file; give a directory (a checkpoint is a folder of files).")
    check_parents(out, "--out")


def save_checkpoint(
    directory: str | Path,
    model: PreTrainedModel,
    state: dict[str, Any],
    tokenizer=None,
) -> Path:
    """Write model, tokenizer and ``state`` (which must hold ``step``) to ``directory``.

    Whatever stops the save, ``directory`` keeps a whole pair of model file and
    training state: the new one, or (after :func:`recover_checkpoint`) the previous one.
    """
    directory = Path(directory)
    recover_checkpoint(directory)  # a save killed earlier: settle it before keeping a new copy
    kept = _keep_previous_pair(directory)
    try:
        save_pretrained(model, directory, metadata={"attnlab_step": str(state["step"])})
        if tokenizer is not None:
            tokenizer.save(directory)
        payload = {"format_version": FORMAT_VERSION, **state}
        atomic_write(directory / STATE_FILE, lambda tmp: torch.save(payload, tmp))
    except BaseException:
        if kept is not None:
            _restore_previous_pair(directory, kept)  # a failed save changes nothing
        raise
    if kept is not None:
        shutil.rmtree(kept, ignore_errors=True)
    return directory


def _keep_previous_pair(directory: Path) -> Path | None:
    """Link the current model file and training state into ``PREVIOUS``; None if there is no pair."""
    if not all((directory / name).is_file() for name in _PAIR):
        return None
    kept = directory / PREVIOUS
    staging = directory / f"{PREVIOUS}.tmp"
    try:
        shutil.rmtree(staging, ignore_errors=True)  # left by a save killed while linking
        staging.mkdir()
        for name in _PAIR:
            try:
                os.link(directory / name, staging / name)  # no second copy on disk
            except OSError:
                shutil.copy2(directory / name, staging / name)  # a file system without hard links
        os.replace(staging, kept)  # only a whole copy of the pair is ever named PREVIOUS
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise write_failure(staging, error) from None
    return kept


def _restore_previous_pair(directory: Path, kept: Path) -> None:
    for name in _PAIR:
        os.replace(kept / name, directory / name)
    shutil.rmtree(kept, ignore_errors=True)


def recover_checkpoint(directory: str | Path) -> None:
    """Settle a save that was killed between the model file and the training state.

    If ``.previous-checkpoint/`` is left in ``directory`` and the model file and the
    training state in place are from different steps, the previous pair is put back;
    if they match, the save had finished and the copy is removed.
    """
    directory = Path(directory)
    shutil.rmtree(directory / f"{PREVIOUS}.tmp", ignore_errors=True)
    kept = directory / PREVIOUS
    if not kept.is_dir():
        return
    if _pair_matches(directory) or not all((kept / name).is_file() for name in _PAIR):
        shutil.rmtree(kept, ignore_errors=True)
    else:
        _restore_previous_pair(directory, kept)


def _pair_matches(directory: Path) -> bool:
    """Whether the model file and the training state in ``directory`` are from the same step."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(str(directory / STATE_FILE), map_location="cpu", weights_only=True)
        step = state["step"]
    except Exception:
        return False
    model_step = _model_step(directory / SAFETENSORS)
    return model_step is None or model_step == step


def load_training_state(directory: str | Path) -> dict[str, Any]:
    """Read and check ``training_state.pt`` against the model file beside it."""
    directory = Path(directory)
    path = directory / STATE_FILE
    recover_checkpoint(directory)
    if not path.is_file():
        raise AttnlabError(
            f"No checkpoint in {directory} (no {STATE_FILE} to resume from); check the path, "
            f"or drop --resume to start a new run."
        )
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it may not read; the outcome is reported below.
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message advises weights_only=False, i.e. running the file's code: not passed on.
        wanted = refused_global(error)
        if wanted is None:
            raise AttnlabError(
                f"{path} is truncated, corrupt or not a plain training state (it is not a pickle of "
                f"tensors and plain values); start a new run in another --out directory."
            ) from None
        raise AttnlabError(
            f"{path} was refused: it holds Python objects besides tensors (it asks for {wanted}), and "
            f"attnlab never runs code from a file; start a new run in another --out directory."
        ) from None
    except Exception as error:
        raise AttnlabError(
            f"{path} is truncated, corrupt or not a plain training state "
            f"({str(error).splitlines()[0][:160]}); start a new run in another --out directory."
        ) from None
    if not isinstance(state, dict) or "step" not in state:
        raise AttnlabError(f"{path} is not an attnlab training state; start a new run.")
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise AttnlabError(
            f"{path} has format version {version!r}; this attnlab reads version {FORMAT_VERSION}. "
            f"Resume it with the attnlab version that wrote it."
        )
    model_step = _model_step(directory / SAFETENSORS)
    if model_step is not None and model_step != state["step"]:
        raise AttnlabError(
            f"{directory}: the model file is from step {model_step} but the training state is from "
            f"step {state['step']} (an interrupted save?); resume is not exact, start a new run."
        )
    return state


def _model_step(path: Path) -> int | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception:
        return None  # load_pretrained reports a broken model file with its own message
    step = metadata.get("attnlab_step")
    return int(step) if step is not None and step.isdigit() else None


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'name: saved -> current' for every field that differs."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def begin_run(
    out: Path | None,
    resume: bool,
    model: PreTrainedModel,
    training_config: dict[str, Any],
    resumable: set[str],
) -> dict[str, Any] | None:
    """Start or resume a run in ``out``; shared by every training loop.

    With ``resume``: read and check the training state (the model config and every
    training field outside ``resumable`` must be unchanged), load the saved weights
    into ``model`` and return the state for the loop to restore the rest. Without it:
    refuse to overwrite a checkpoint already in ``out``, and return None.
    """
    if out is not None:
        _refuse_file_out(out)
    if resume:
        if out is None:
            raise AttnlabError("resume needs the checkpoint directory (--out).")
        state = load_training_state(out)
        changed = config_differences(state["model_config"], model.config.to_dict())
        changed += [
            c for c in config_differences(current_names(state["training_config"]), training_config)
            if c.split(":")[0] not in resumable
        ]
        if changed:
            raise AttnlabError(
                f"--resume with a changed config ({'; '.join(changed[:4])}); "
                f"use the settings of the saved run or a new --out directory."
            )
        from attnlab.interop.hf import load_state
        from attnlab.interop.weights import read_weights

        load_state(model, read_weights(out)[0], source=str(out))
        return state
    if out is not None and has_checkpoint(out):
        raise AttnlabError(
            f"{out} already holds a training checkpoint; pass --resume to continue it, "
            f"or choose another --out so nothing saved is overwritten."
        )
    return None
