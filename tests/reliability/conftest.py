"""Tiny models, corpora and checkpoints for the reliability tests: everything built
in a second or two, so each failure mode costs little to try."""

from __future__ import annotations

import io
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from attnlab.cli import main
from attnlab.models import GPT
from attnlab.models.config import GPTConfig
from attnlab.tokenization import Tokenizer

# Hostile characters on purpose: markup, quotes, ampersands, non-ASCII, a control character.
HOSTILE = "</script><script>alert('x')</script><img src=x onerror=alert(1)>&amp;\"'`\u202e\x07 é日本"
CORPUS = ("ROMEO: But soft, what light through yonder window breaks?\n"
          "JULIET: O Romeo, Romeo, wherefore art thou Romeo?\n") * 40 + HOSTILE + "\n"


def tiny_train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    """`attnlab train gpt` at a size that trains in about a second."""
    return ["train", "gpt", "--data", str(corpus), "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--block-size", "8", "--batch-size", "2", "--eval-iters", "1", "--sample-tokens", "3",
            "--dtype", "fp32", "--no-progress", "--out", str(out), *extra]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``attnlab.cli.main(argv)`` in this process: (exit code, stdout, stderr); SystemExit counts."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """A non-zero exit code and exactly one ``attnlab: error:`` line naming ``fragments``."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("attnlab: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_gpt_dir(tmp_path_factory) -> Path:
    """A randomly initialised character-level GPT (16 positions) with its tokenizer, saved."""
    torch.manual_seed(0)
    tokenizer = Tokenizer.char_level(CORPUS)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, max_positions=16, n_layers=1, n_heads=2,
                          d_model=16, d_ff=32, dropout=0.0, attention_dropout=0.0))
    directory = tmp_path_factory.mktemp("tiny_gpt")
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory


@pytest.fixture(scope="session")
def _trained_once(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    code, _, err = run_cli(tiny_train_args(corpus, out, "--max-iters", "4", "--eval-interval", "2"))
    assert code == 0, err
    return out


@pytest.fixture
def trained_run(_trained_once, tmp_path) -> Path:
    """A fresh copy of a 4-step training checkpoint (model, tokenizer, training_state.pt)."""
    return Path(shutil.copytree(_trained_once, tmp_path / "run"))


@pytest.fixture
def python() -> str:
    return sys.executable


# The helpers as fixtures: with --import-mode=importlib a test module cannot import conftest.
@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def one_line_error():
    return assert_one_line_error


@pytest.fixture
def train_args():
    return tiny_train_args
