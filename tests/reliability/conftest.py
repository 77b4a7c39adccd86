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
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, BertConfig
from attnlab.models.bert import BertModel
from attnlab.models.config import GPTConfig

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


def assert_one_line_error(code: int, err: str, *fragments: str, expected: int = 2) -> str:
    """Exit code ``expected`` (2: bad input, README's promise; 1: the machine failed, e.g. a full
    disk) and exactly one ``attnlab: error:`` line naming ``fragments``."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expected, f"exit code {code}, not {expected}: {err}"
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


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A randomly initialised BERT (64 positions) with a WordPiece vocabulary learnt on CORPUS, saved."""
    torch.manual_seed(0)
    tokenizer = Tokenizer.train_wordpiece(CORPUS, vocab_size=120)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, max_positions=64, n_layers=1, n_heads=2,
                                 d_model=16, d_ff=32))
    directory = tmp_path_factory.mktemp("tiny_bert")
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> Path:
    """150 sentence pairs of the shipped corpus's training split, source<TAB>target."""
    from attnlab.data.parallel import corpus_split

    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    path.write_text("".join(f"{source}\t{target}\n" for source, target in corpus_split("train")[:150]),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_translation_dir(tmp_path_factory, pairs_file) -> Path:
    """A real encoder-decoder from `attnlab train transformer` (2 steps on pairs_file, about a
    second): the model directory that translate and evaluate load, vocabulary and all."""
    out = tmp_path_factory.mktemp("translation") / "run"
    code, _, err = run_cli(["train", "transformer", "--data", str(pairs_file), "--n-layer", "1",
                            "--n-head", "2", "--d-model", "16", "--d-ff", "16", "--max-positions", "40",
                            "--vocab-size", "300",
                            "--max-tokens", "200", "--max-steps", "2", "--warmup-steps", "4",
                            "--eval-interval", "2", "--eval-sentences", "1", "--snapshot-interval", "2",
                            "--average-last", "1", "--threads", "1", "--device", "cpu", "--no-progress",
                            "--out", str(out)])
    assert code == 0, err
    return out / "averaged"


@pytest.fixture(scope="session")
def fuzz_paths(tmp_path_factory, corpus, tiny_gpt_dir, tiny_bert_dir, tiny_translation_dir, pairs_file,
               finetuned_bert):
    """The files flag_table.py's ``{name}`` stand for (the flag fuzz): good inputs, and bad ones of
    every kind; fine-tuned models from tests/conftest.py's ``finetuned_bert``."""
    root = tmp_path_factory.mktemp("flag-fuzz")

    def write(name: str, content: str | bytes) -> str:
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    for name in ("empty-dir", "as-dir.png", "as-dir.svg", "as-dir.html"):
        (root / name).mkdir()
    pairs = pairs_file.read_text(encoding="utf-8").splitlines()
    speeches = "\n\n".join(f"ROMEO: speech {i} of the night.\nJULIET: and {i} more." for i in range(40))
    # Only characters of the tiny GPT's vocabulary (conftest.CORPUS): fewshot encodes them all.
    labelled = "".join(f"a {'good' if i % 2 else 'bad'} day{' Romeo' * (i % 4)}\t{'yes' if i % 2 else 'no'}\n"
                       for i in range(24))
    qa = "".join('{"context": "Ross: the king is dead. Lennox: a good day.", "question": '
                 '"Who says the king is dead?", "answer": "Ross"}\n' for _ in range(12))
    text_file = write("a-file.txt", "not a directory\n")
    return {
        "tmp": str(root), "missing": str(root / "missing" / "nothing.txt"), "dir": str(root / "empty-dir"),
        "empty": write("empty.txt", ""), "binary": write("binary.bin", bytes(range(256)) * 4),
        "file": text_file, "under_file": f"{text_file}/x.png", "corpus": str(corpus),
        "pairs": str(pairs_file), "few_pairs": write("few-pairs.tsv", "\n".join(pairs[:6]) + "\n"),
        "sources": write("sources.txt", "\n".join(line.split("\t")[0] for line in pairs[:6]) + "\n"),
        "speeches": write("speeches.txt", speeches + "\n"), "labelled": write("labelled.tsv", labelled),
        "bert_tsv": write("bert.tsv", labelled), "qa": write("qa.jsonl", qa),
        "csv": write("points.csv", "a,b,label\n0,0,x\n0,1,y\n1,0,y\n1,1,y\n"),
        "gpt": str(tiny_gpt_dir), "bert": str(tiny_bert_dir), "mt": str(tiny_translation_dir),
        "classifier": str(finetuned_bert["classify"]), "qa_model": str(finetuned_bert["qa"]),
    }


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
