"""Reading corpora with errors that say what to do, and the train/validation split."""

from __future__ import annotations

import pytest

from attnlab.data import SHAKESPEARE_CHARS, read_text, shakespeare_path, split_train_val
from attnlab.errors import AttnlabError


def test_default_corpus_is_tiny_shakespeare():
    text = read_text()
    assert len(text) == SHAKESPEARE_CHARS
    assert text.startswith("First Citizen:\n")
    assert read_text(shakespeare_path()) == text
    assert read_text(str(shakespeare_path())) == text


def test_reads_utf8(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("naïve café ☃\n", encoding="utf-8")
    assert read_text(path) == "naïve café ☃\n"


def test_missing_file_raises(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(AttnlabError, match=r"No text file at .*nope\.txt; check the --data path"):
        read_text(missing)
    with pytest.raises(AttnlabError, match="No text file at"):
        read_text(tmp_path)  # a directory is not a text file


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"], ids=["empty", "whitespace"])
def test_empty_file_raises(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(AttnlabError, match=r"empty\.txt is empty; give a file with some text"):
        read_text(path)


def test_non_utf8_file_raises(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("abc café".encode("latin-1"))  # é is the single byte 0xe9
    expected = r"latin1\.txt is not UTF-8 text \(byte 7 cannot be decoded\).*iconv"
    with pytest.raises(AttnlabError, match=expected):
        read_text(path)


def test_errors_are_value_errors_without_a_chained_traceback(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ValueError) as info:
        read_text(path)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    "n, fraction, n_train", [(1000, 0.1, 900), (10, 0.1, 9), (7, 0.5, 3), (20, 0.25, 15)]
)
def test_split_proportions(n, fraction, n_train):
    ids = list(range(n))
    train, val = split_train_val(ids, fraction)
    assert len(train) == n_train and len(val) == n - n_train
    assert train + val == ids  # text order, nothing lost or repeated


def test_default_split_is_90_10_on_the_corpus():
    ids = list(range(SHAKESPEARE_CHARS))
    train, val = split_train_val(ids)
    assert len(train) == 1_003_854 and len(val) == 111_540
    assert train[-1] + 1 == val[0]


def test_zero_validation_fraction_keeps_everything_for_training():
    assert split_train_val([1, 2, 3], 0.0) == ([1, 2, 3], [])


def test_split_proportions_survive_float_rounding():
    train, val = split_train_val(list(range(90)), 0.3)
    assert (len(train), len(val)) == (63, 27)


@pytest.mark.parametrize("fraction", [1.5, -0.5])
def test_split_rejects_fraction_outside_0_1(fraction):
    with pytest.raises(AttnlabError):
        split_train_val(list(range(10)), fraction)


def test_split_tab_line_splits_at_the_last_tab_and_names_the_place():
    from attnlab.data import split_tab_line

    assert split_tab_line(" a\tb \t pos ", "f.tsv, line 1") == ("a\tb", "pos")
    with pytest.raises(AttnlabError, match=r"^f\.tsv, line 2 has no tab and no tag column; .*token<TAB>tag"):
        split_tab_line("Empire", "f.tsv, line 2", ("token", "tag"))
    for line, missing in (("\tpos", "text"), ("good\t ", "label")):
        with pytest.raises(AttnlabError, match=f"line 3 has an empty {missing};"):
            split_tab_line(line, "f.tsv, line 3")


def test_installed_package_dir_finds_a_package_folder():
    from pathlib import Path

    from attnlab.data import installed_package_dir, require_package_dir

    assert installed_package_dir("attnlab") == Path(__file__).resolve().parents[2] / "attnlab"
    assert installed_package_dir("no_such_package_attnlab") is None
    assert installed_package_dir("json.decoder") is None  # a module, not a package: no folder
    with pytest.raises(AttnlabError, match=r"no_such_package_attnlab, which ships the tweets, .*`pip x`"):
        require_package_dir("no_such_package_attnlab", "the tweets", "pip x")


def test_read_jsonl_names_the_fields_a_line_lacks(tmp_path):
    from attnlab.data import read_jsonl

    path = tmp_path / "d.jsonl"
    path.write_text('{"context": "c", "question": "q", "answer": "a"}\n\n[1, 2]\n')
    assert read_jsonl(path, "QA data")[0] == (1, {"context": "c", "question": "q", "answer": "a"})
    expected = r'd\.jsonl, line 3 needs the fields "context", "question" and "answer" \(it is not a JSON'
    with pytest.raises(AttnlabError, match=expected):
        read_jsonl(path, "QA data", ("context", "question", "answer"))
    path.write_text('{"text": "t"}\n')
    with pytest.raises(AttnlabError, match='line 1 needs the fields "text" and "label"'):
        read_jsonl(path, "labelled data", ("text", "label"))
    with pytest.raises(AttnlabError, match=r'needs the fields "tokens" \(it lacks "tokens"\)\.$'):
        read_jsonl(path, "tagged data", ("tokens",))
