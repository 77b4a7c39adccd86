"""The model a command names, loaded with its tokenizer; a model of the wrong kind is refused
in one line that says what the command needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnlab.interop.pretrained import Pretrained
    from attnlab.models.transformer import Transformer


def load_kind(path: str, kind: type, refusal: str, *, weights: str = "auto") -> Pretrained:
    """The model at ``path`` (directory or .gguf) with its tokenizer, if it is a ``kind``;
    else an AttnlabError of ``refusal`` formatted with ``path`` and ``found`` (its class name).
    ``weights``: how a .gguf's quantized matrices are kept (``--weights``)."""
    from attnlab.errors import AttnlabError
    from attnlab.interop.pretrained import load_with_tokenizer

    loaded = load_with_tokenizer(path, weights=weights)
    if not isinstance(loaded.model, kind):
        raise AttnlabError(refusal.format(path=path, found=type(loaded.model).__name__))
    return loaded


def load_translator(path: str) -> tuple[Transformer, object]:
    """(model, tokenizer) of an encoder-decoder directory, or a one-line error."""
    from attnlab.models.transformer import Transformer

    loaded = load_kind(path, Transformer, "{path} holds a {found}, not an encoder-decoder; translate needs "
                                          "a Transformer (e.g. from `attnlab train transformer`).")
    return loaded.model, loaded.tokenizer
