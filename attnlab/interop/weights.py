"""Reading weight files safely: safetensors first, a ``.bin`` only through
``torch.load(weights_only=True)``, never by plain unpickling."""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from attnlab.errors import AttnlabError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLED = "pytorch_model.bin"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises several types for broken files
        raise AttnlabError(
            f"{path} is truncated or corrupt ({_first_line(error)}); save the model again."
        ) from None


def refused_global(error: BaseException) -> str | None:
    """The Python object a refused pickle asked for (e.g. ``posix.system``), from torch's message."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return found.group(1) if found else None


def safe_torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain Python values, never code.

    A pickle that asks for any other object (a function such as ``os.system``, a
    class) is refused with a one-line error; torch's own message, which suggests
    ``weights_only=False``, is not passed on.
    """
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it may not read; the outcome is reported below.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        wanted = refused_global(error)
        asks = f" (it asks for {wanted})" if wanted else ""
        raise AttnlabError(
            f"{path} was refused: it holds Python objects besides tensors{asks}, and attnlab "
            f"never runs code from a file. Use a file saved from a state dict, or model.safetensors."
        ) from None
    except Exception as error:
        raise AttnlabError(
            f"{path} is truncated or corrupt ({_first_line(error)}); save it again."
        ) from None


def read_pickled_state_dict(path: Path) -> dict[str, Tensor]:
    """A ``pytorch_model.bin``, loaded with ``weights_only=True``: no code can run."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise AttnlabError(
            f"{path} is not a plain state dict (a mapping of names to tensors); "
            f"save one with torch.save(model.state_dict(), path)."
        )
    return state


def read_weights(directory: Path) -> tuple[dict[str, Tensor], Path]:
    """The state dict in ``directory``: model.safetensors (or its shards), else pytorch_model.bin."""
    single = directory / SAFETENSORS
    if single.is_file():
        return read_safetensors(single), single
    index = directory / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError) as error:
            raise AttnlabError(f"{index} is not a valid shard index ({_first_line(error)}).") from None
        state: dict[str, Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            state.update(read_safetensors(directory / shard))
        return state, index
    pickled = directory / PICKLED
    if pickled.is_file():
        return read_pickled_state_dict(pickled), pickled
    raise AttnlabError(
        f"No weights in {directory}: expected {SAFETENSORS} (or {PICKLED}); "
        f"point to the directory that save_pretrained wrote."
    )
