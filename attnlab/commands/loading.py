"""The model a command names, loaded with its tokenizer; a model of the wrong kind is refused
in one line that says what the command needs. ``--weights`` and ``--dtype`` apply here, the same
on every inference command."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnlab.interop.pretrained import Pretrained
    from attnlab.models.transformer import Transformer


def load_kind(path: str, kind: type, refusal: str, *, weights: str = "auto",
              dtype: str = "auto") -> Pretrained:
    """The model at ``path`` (directory or .gguf) with its tokenizer, if it is a ``kind``;
    else an AttnlabError of ``refusal`` formatted with ``path`` and ``found`` (its class name).
    ``weights``: how its matrices are kept (``--weights``); ``dtype``: its float layers' (``--dtype``)."""
    import torch

    from attnlab.errors import AttnlabError
    from attnlab.inference.probe import resolve_dtype
    from attnlab.interop.pretrained import load_with_tokenizer

    torch_dtype = resolve_dtype(dtype)  # before the load: a refused bf16 costs nothing
    loaded = load_with_tokenizer(path, weights=weights)
    if not isinstance(loaded.model, kind):
        raise AttnlabError(refusal.format(path=path, found=type(loaded.model).__name__))
    if torch_dtype != torch.float32:  # packed blocks stay as they are (uint8), their bias follows
        loaded.model.to(torch_dtype)
    return loaded


def load_translator(path: str, *, weights: str = "auto", dtype: str = "auto") -> tuple[Transformer, object]:
    """(model, tokenizer) of an encoder-decoder directory, or a one-line error."""
    from attnlab.models.transformer import Transformer

    loaded = load_kind(path, Transformer, "{path} holds a {found}, not an encoder-decoder; translate needs "
                                          "a Transformer (e.g. from `attnlab train transformer`).",
                       weights=weights, dtype=dtype)
    return loaded.model, loaded.tokenizer
