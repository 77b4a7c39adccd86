"""What every attnlab model shares: its config, saving, and a parameter count."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from attnlab.errors import AttnlabError
from attnlab.models.config import ModelConfig

# Python objects of one layer (modules, parameters, hooks), beyond its float32 numbers.
_LAYER_OVERHEAD_BYTES = 50_000

# Some methods of a model do the work of a layer above models/: reading and writing files
# (attnlab.interop) and generating text (attnlab.inference). Those packages register their
# functions here when they are imported, which ``import attnlab`` does before anything else
# runs, so that ``model.save_pretrained`` and ``model.generate`` work without models/
# importing the layers above it.
_IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {}


def register_implementations(**functions: Callable[..., Any]) -> None:
    """Called by :mod:`attnlab.interop` (``save_pretrained=...``) and :mod:`attnlab.inference`
    (``generate=...``) with the functions that models' methods call."""
    _IMPLEMENTATIONS.update(functions)


register_layout_io = register_implementations  # the name attnlab.interop calls


def implementation(name: str) -> Callable[..., Any]:
    """The function a layer above registered as ``name``."""
    try:
        return _IMPLEMENTATIONS[name]
    except KeyError:
        raise AttnlabError(f"No {name} registered; import attnlab first.") from None


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_in_memory(config: ModelConfig) -> None:
    """Refuse, before allocating anything, a model that cannot fit in this machine's memory.

    A lower bound is enough: the embeddings (V x M, and T x M for learned positions)
    plus per layer at least the attention projections (2 M^2) and the feed-forward
    (2 M F). Without it a typo such as ``--n-layer 10000000000`` would build layers
    until the machine runs out of memory.
    """
    memory = physical_memory()
    if memory is None:
        return
    m = config.d_model
    # Rotary positions have no table; learned and sinusoidal ones hold one row per position.
    rows = config.vocab_size + (0 if getattr(config, "position", None) == "rope" else config.max_positions)
    parameters = rows * m + config.n_layers * (2 * m * m + 2 * m * config.d_ff)
    needed = 4 * parameters + config.n_layers * _LAYER_OVERHEAD_BYTES
    if needed > memory:
        raise AttnlabError(
            f"A model of this size (d_model {m}, {config.n_layers} layers, d_ff {config.d_ff}, "
            f"vocabulary {config.vocab_size}, {config.max_positions} positions) needs at least "
            f"{needed / 2**30:,.1f} GiB, more than this machine's {memory / 2**30:,.1f} GiB; "
            f"choose smaller sizes."
        )


class PreTrainedModel(nn.Module):
    """Base of every attnlab network (BERT, GPT, the Transformer): holds ``config``; saves to the
    Hugging Face layout."""

    config_class: type[ModelConfig] = ModelConfig
    # The Hugging Face class whose checkpoint layout this model reads and writes.
    hf_architecture: str = ""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        check_fits_in_memory(config)
        self.config = config

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` that ``transformers`` loads.

        Both files are written atomically (temporary file, then rename).
        """
        return implementation("save_pretrained")(self, directory)

    def num_parameters(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def init_weights(self, std: float = 0.02) -> None:
        """Normal(0, 0.02) weights, zero biases, unit LayerNorms (GPT-2 and BERT)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)
