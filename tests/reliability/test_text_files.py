"""Text files as users have them: empty, binary, UTF-16, Latin-1, mixed encodings, a
byte-order mark, NUL bytes, a directory, a large file. Each reader either reads it or
fails in one line that says what to do."""

from __future__ import annotations

import time

import pytest

from attnlab.data import read_text
from attnlab.errors import AttnlabError

UTF8 = "ROMEO: wherefore art thou, café?\n" * 50
FILES = {
    "empty": (b"", "is empty"),
    "blank": (b"  \n\t\n", "is empty"),
    "binary": (bytes(range(256)) * 8, "not UTF-8"),
    "latin-1": (UTF8.encode("latin-1"), "not UTF-8"),
    "mixed": (UTF8.encode("utf-8") + "café".encode("latin-1"), "not UTF-8"),
    "utf-16 with BOM": (UTF8.encode("utf-16"), "not UTF-8"),
    # ASCII in UTF-16 is valid UTF-8, NULs and all: only the NUL check catches it.
    "utf-16 without BOM": ("ROMEO: wherefore art thou?\n".encode("utf-16-le") * 50, "NUL bytes"),
    "NUL bytes": (b"text\x00more text\n" * 20, "NUL bytes"),
}


@pytest.fixture(params=list(FILES), ids=list(FILES))
def bad_file(request, tmp_path):
    content, message = FILES[request.param]
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    return path, message


def test_read_text_refuses_in_one_line(bad_file):
    path, message = bad_file
    with pytest.raises(AttnlabError, match=message) as caught:
        read_text(path)
    assert "\n" not in str(caught.value)


def test_train_refuses_in_one_line(bad_file, tmp_path, cli, one_line_error, train_args):
    path, message = bad_file
    code, _, err = cli(train_args(path, tmp_path / "run", "--max-iters", "1"))
    one_line_error(code, err, message)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_finetune_refuses_in_one_line(bad_file, tmp_path, tiny_gpt_dir, cli, one_line_error):
    path, message = bad_file
    code, _, err = cli(["finetune", "gpt", "--model", str(tiny_gpt_dir), "--data", str(path),
                        "--out", str(tmp_path / "ft"), "--max-iters", "1", "--no-progress"])
    one_line_error(code, err, message)


@pytest.mark.parametrize("name", ["binary", "latin-1", "mixed", "utf-16 with BOM", "empty"])
def test_fewshot_tsv_refuses_in_one_line(name, tmp_path, tiny_gpt_dir, cli, one_line_error):
    path = tmp_path / "data.tsv"
    path.write_bytes(FILES[name][0])
    code, _, err = cli(["fewshot", "--model", str(tiny_gpt_dir), "--data", str(path), "--shots", "0"])
    one_line_error(code, err)


@pytest.mark.parametrize("name", ["binary", "latin-1", "mixed", "utf-16 with BOM", "empty"])
def test_perceptron_csv_refuses_in_one_line(name, tmp_path, cli, one_line_error):
    """Before: a binary or Latin-1 CSV ended in a UnicodeDecodeError traceback."""
    path = tmp_path / "data.csv"
    path.write_bytes(FILES[name][0])
    code, _, err = cli(["perceptron", "--dataset", str(path)])
    one_line_error(code, err)


def test_a_byte_order_mark_is_not_text(tmp_path):
    """Before: the BOM became a character of the vocabulary, and a model without it
    could not be fine-tuned on the same file."""
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff".encode() + UTF8.encode())
    assert read_text(path) == UTF8


def test_a_csv_with_a_byte_order_mark_keeps_its_header(tmp_path, cli):
    """Before: the BOM was glued to the first column's name, so --label label was not found."""
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefflabel,x,y\na,0,0\nb,0,1\nb,1,0\nb,1,1\n".encode())
    code, out, err = cli(["perceptron", "--dataset", str(path), "--label", "label"])
    assert code == 0, err


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_a_path_that_is_not_a_file(where, tmp_path, cli, one_line_error, train_args):
    path = tmp_path / "nothing.txt" if where == "missing" else tmp_path
    code, _, err = cli(train_args(path, tmp_path / "run", "--max-iters", "1"))
    one_line_error(code, err, "No text file")


def test_unicode_and_control_characters_train(tmp_path, cli, train_args):
    """Right-to-left marks, emoji, CJK, a bell character: all just characters."""
    path = tmp_path / "odd.txt"
    path.write_text(("ROMEO \u202edlrow\u202c 🙂 日本語 \x07 tab\there\r\n" * 30), encoding="utf-8")
    code, _, err = cli(train_args(path, tmp_path / "run", "--max-iters", "1"))
    assert code == 0, err


def test_a_large_file_trains(tmp_path, cli, train_args):
    """4 MB of text: read, tokenised and split in seconds (83 MB took 68 s; see docs/reliability.md)."""
    path = tmp_path / "large.txt"
    path.write_text("the quick brown fox jumps over the lazy dog, café 日本\n" * 80_000, encoding="utf-8")
    started = time.perf_counter()
    code, out, err = cli(train_args(path, tmp_path / "run", "--max-iters", "1", "--eval-iters", "1"))
    assert code == 0, err
    assert time.perf_counter() - started < 60
