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


def settle_auto_weights(loaded: Pretrained, path: str, allowed: tuple[str, ...] = ("int8", "int4")) -> None:
    """``--weights auto`` / ``--dtype auto`` for decoding: a float GPT checkpoint (a directory in fp32) gets
    the weights or dtype its quality probe chose on this CPU among ``allowed`` ("int8", "int4" for
    ``--weights auto``, "bf16" for ``--dtype auto``; :mod:`attnlab.inference.auto_weights`, cached), a
    .gguf keeps its packed blocks. What was chosen, when not float, is said on stderr."""
    import sys
    from pathlib import Path

    import torch

    from attnlab.inference.auto_weights import choose_weights
    from attnlab.inference.weight_quant import quantize_weights
    from attnlab.models import GPT

    model = loaded.model
    if not isinstance(model, GPT) or not Path(path).expanduser().is_dir() or \
            model.embeddings.token.weight.dtype != torch.float32:
        return
    choice, entry = choose_weights(model, loaded.tokenizer, path, allowed=allowed,
                                   on_probe=lambda message: print(f"attnlab: {message}", file=sys.stderr))
    if choice != "float":
        flag = "--dtype" if choice == "bf16" else "--weights"
        if choice == "bf16":
            model.to(torch.bfloat16)
        else:
            quantize_weights(model, choice)
        figures = entry["figures"][choice]
        print(f"attnlab: {flag} auto = {choice} for this model on this CPU (measured: greedy tokens equal "
              f"fp32's for >= {figures['tokens_equal_min']:.0f} of {figures['new_tokens']:.0f}, top-1 "
              f"{100 * figures['top1']:.1f}%); {flag} {'fp32' if choice == 'bf16' else 'float'} for fp32",
              file=sys.stderr)


def load_translator(path: str, *, weights: str = "auto", dtype: str = "auto") -> tuple[Transformer, object]:
    """(model, tokenizer) of an encoder-decoder directory, or a one-line error."""
    from attnlab.models.transformer import Transformer

    loaded = load_kind(path, Transformer, "{path} holds a {found}, not an encoder-decoder; translate needs "
                                          "a Transformer (e.g. from `attnlab train transformer`).",
                       weights=weights, dtype=dtype)
    return loaded.model, loaded.tokenizer
