"""Checks on what users pass to a model, so a mistake is a one-line error
that names the fix instead of an index error deep inside torch."""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.models.config import GPTConfig


def check_input_ids(input_ids: object, vocab_size: int, max_positions: int, start_pos: int = 0) -> Tensor:
    """input_ids must be an integer (B, T) tensor of ids in [0, vocab_size) that fits the positions."""
    if not isinstance(input_ids, Tensor):
        raise AttnlabError(
            f"input_ids must be a torch.Tensor of token ids; got {type(input_ids).__name__}. "
            f"Convert with torch.tensor(ids)."
        )
    if input_ids.dim() != 2:
        hint = " Add a batch dimension with input_ids.unsqueeze(0)." if input_ids.dim() == 1 else ""
        raise AttnlabError(
            f"input_ids must have shape (batch, seq); got {tuple(input_ids.shape)}.{hint}"
        )
    if input_ids.dtype not in (torch.int64, torch.int32):
        # Embedding lookups take int64 or int32 only; int8/uint8/int16 would fail deep in torch.
        raise AttnlabError(
            f"input_ids must hold integer token ids (int64 or int32); got dtype {input_ids.dtype}. "
            f"Use .long()."
        )
    if input_ids.shape[1] == 0:
        raise AttnlabError("input_ids is empty (sequence length 0); pass at least one token.")
    end = start_pos + input_ids.shape[1]
    if end > max_positions:
        raise AttnlabError(
            f"The sequence needs {end} positions but the model has {max_positions}; "
            f"truncate input_ids to at most {max_positions - start_pos} tokens."
        )
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise AttnlabError(
            f"Token id {bad} is outside the vocabulary [0, {vocab_size}); "
            f"encode the text with this model's tokenizer."
        )
    return input_ids


def check_companion(name: str, tensor: Tensor | None, input_ids: Tensor, upper: int | None = None):
    """attention_mask / token_type_ids must match input_ids' shape (and range, if given)."""
    if tensor is None:
        return None
    if not isinstance(tensor, Tensor):
        raise AttnlabError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}.")
    if tensor.shape != input_ids.shape:
        raise AttnlabError(
            f"{name} has shape {tuple(tensor.shape)} but input_ids has {tuple(input_ids.shape)}; "
            f"give one entry per token."
        )
    if upper is not None and tensor.numel():
        if tensor.dtype.is_floating_point and not bool((tensor == tensor.round()).all()):
            raise AttnlabError(f"{name} must hold whole numbers in [0, {upper}); got fractions.")
        low, high = int(tensor.min()), int(tensor.max())
        if low < 0 or high >= upper:
            raise AttnlabError(
                f"{name} must hold values in [0, {upper}); got {low if low < 0 else high}."
            )
    return tensor


def check_padding_mask(attention_mask: Tensor | None, input_ids: Tensor) -> Tensor | None:
    """A (B, T) mask of 1 (token) / 0 (padding); returned as bool, or None if all ones."""
    check_companion("attention_mask", attention_mask, input_ids, upper=2)
    if attention_mask is None:
        return None
    mask = attention_mask.to(torch.bool)
    return None if bool(mask.all()) else mask


def check_cached_padding_mask(name: str, mask: object, batch: int, total: int) -> Tensor | None:
    """A (B, cached + new) mask of 1 (token) / 0 (padding) for a decoder that may hold a KV cache;
    returned as bool, or None if all ones (the mask-free kernels then apply)."""
    if mask is None:
        return None
    expected = (batch, total)
    if not isinstance(mask, Tensor) or tuple(mask.shape) != expected:
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise AttnlabError(f"{name} must have shape {expected} (batch, cached + new tokens); got {got}.")
    padding = mask.to(torch.bool)
    return None if bool(padding.all()) else padding


def check_class_labels(name: str, labels: object, shape: tuple[int, ...], n_classes: int,
                       ignore_index: int | None = -100) -> Tensor:
    """Class-index targets of ``shape`` in [0, n_classes) (``ignore_index`` allowed), as integers.

    cross_entropy would otherwise fail with an index error (or, on some devices, an
    assertion) for a target outside the classes.
    """
    if not isinstance(labels, Tensor) or tuple(labels.shape) != tuple(shape):
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise AttnlabError(f"{name} must have shape {tuple(shape)}; got {got}.")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise AttnlabError(f"{name} must hold integer class indices; got dtype {labels.dtype}. Use .long().")
    kept = labels if ignore_index is None else labels[labels != ignore_index]
    if kept.numel():
        low, high = int(kept.min()), int(kept.max())
        if low < 0 or high >= n_classes:
            ignored = f" (or {ignore_index} to ignore a position)" if ignore_index is not None else ""
            raise AttnlabError(
                f"{name} must be class indices in [0, {n_classes}){ignored}; got {low if low < 0 else high}."
            )
    return labels.long()


def check_gpt_inputs(
    config: GPTConfig,
    input_ids: object,
    attention_mask: object = None,
    labels: object = None,
    *,
    kv_caches: list | None = None,
    start_pos: int = 0,
    position_ids: object = None,
    only_last_logits: bool = False,
) -> Tensor | None:
    """Every check on what a user passes to a causal LM's forward (``config``: a GPTConfig), in one call.

    Returns the (B, start_pos + T) padding mask as bool, or None when there is no padding.
    """
    check_input_ids(input_ids, config.vocab_size, config.max_positions, start_pos)
    batch, length = input_ids.shape
    padding = check_cached_padding_mask("attention_mask", attention_mask, batch, start_pos + length)
    if position_ids is not None:
        if not isinstance(position_ids, Tensor) or position_ids.shape != input_ids.shape:
            raise AttnlabError(f"position_ids must have the shape of input_ids {tuple(input_ids.shape)}.")
        if int(position_ids.min()) < 0 or int(position_ids.max()) >= config.max_positions:
            raise AttnlabError(f"position_ids must lie in [0, {config.max_positions}); shorten the sequence.")
    if kv_caches is not None and len(kv_caches) != config.n_layers:
        raise AttnlabError(f"Pass one KV cache per layer ({config.n_layers}); got {len(kv_caches)}.")
    if labels is not None:
        if not isinstance(labels, Tensor) or labels.shape != input_ids.shape:
            raise AttnlabError(
                f"labels must have the shape of input_ids {tuple(input_ids.shape)}; "
                f"got {tuple(labels.shape) if isinstance(labels, Tensor) else labels!r}."
            )
        if only_last_logits:
            raise AttnlabError("labels need logits at every position; drop only_last_logits.")
        check_class_labels("labels", labels, tuple(input_ids.shape), config.vocab_size)
    return padding
