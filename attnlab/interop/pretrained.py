"""A model together with its tokenizer and chat template, from one path.

The CLI and the examples need all three: a Hugging Face-layout directory keeps
them in separate files (``config.json`` + weights, ``tokenizer.json`` /
``vocab.txt`` / ``vocab.json`` + ``merges.txt``, ``tokenizer_config.json``); a
``.gguf`` file holds them all and is read once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.interop.hf import gguf_weights, gpt_from_gguf, load_pretrained
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models.base import PreTrainedModel


@dataclass
class Pretrained:
    """``model`` (eval mode), its ``tokenizer``, and what chatting with it needs."""

    model: PreTrainedModel
    tokenizer: Tokenizer
    chat_template: str | None = None
    eos_token_id: int | None = None
    bos_token_id: int | None = None


def load_with_tokenizer(path: str | Path, *, weights: str = "auto") -> Pretrained:
    """Load the model at ``path`` (directory or ``.gguf``) with its tokenizer; ``weights``: how its
    matrices are kept (:func:`attnlab.interop.hf.load_pretrained`: a .gguf's blocks packed or
    dequantized; "int8" / "int4" quantize the linear layers of any model)."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        from attnlab.inference.weight_quant import quantize_if_asked
        from attnlab.interop.gguf import read_gguf

        contents = read_gguf(path, weights=gguf_weights(weights))  # once: weights, tokenizer, chat
        model = quantize_if_asked(gpt_from_gguf(contents, str(path)), weights)
        return Pretrained(model, contents.tokenizer, contents.chat_template,
                          contents.eos_token_id, contents.bos_token_id)
    model = load_pretrained(path, weights=weights)
    tokenizer = Tokenizer.from_dir(path)
    template, eos, bos = None, None, None
    config_path = path / "tokenizer_config.json"
    if config_path.is_file():
        try:
            settings = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise AttnlabError(f"{config_path} is not valid JSON ({error}).") from None
        template = settings.get("chat_template")
        eos = _token_id(tokenizer, settings.get("eos_token"))
        bos = _token_id(tokenizer, settings.get("bos_token"))
    model_config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if eos is None and isinstance(model_config.get("eos_token_id"), int):
        eos = model_config["eos_token_id"]
    return Pretrained(model, tokenizer, template, eos, bos)


def _token_id(tokenizer: Tokenizer, token) -> int | None:
    if isinstance(token, dict):  # {"content": "<|im_end|>", ...} in older files
        token = token.get("content")
    return tokenizer.backend.token_to_id(token) if isinstance(token, str) else None
