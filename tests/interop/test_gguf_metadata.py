"""gguf_metadata refuses what it cannot rebuild, in one line, before reading the vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnlab.errors import AttnlabError
from attnlab.interop.gguf_metadata import PRE_TOKENIZER_SPLITS_DIGITS, tokenizer_from_metadata


def test_unknown_pre_tokenizer_is_refused_with_the_supported_list():
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe"}
    with pytest.raises(AttnlabError) as error:
        tokenizer_from_metadata(Path("x.gguf"), reader=None, meta=meta, config={"vocab_size": 4})
    assert str(error.value) == (
        f"x.gguf uses the pre-tokenizer 'llama-bpe', which attnlab does not implement; "
        f"supported: {sorted(PRE_TOKENIZER_SPLITS_DIGITS)}."
    )


def test_other_tokenizer_models_are_refused():
    meta = {"tokenizer.ggml.model": "llama"}
    with pytest.raises(AttnlabError, match="'llama' tokenizer; attnlab rebuilds byte-level BPE"):
        tokenizer_from_metadata(Path("x.gguf"), reader=None, meta=meta, config={"vocab_size": 4})
