"""Labelled TSV data: parsing, clear errors on malformed files, a seeded held-out split."""

from __future__ import annotations

import pytest

from attnlab.data.labelled import label_set, read_labelled_tsv, read_labels, split_labelled
from attnlab.errors import AttnlabError


def test_reads_text_tab_label_lines(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("text\tlabel\n# a comment\ngood film\tpos\n\nhas\ta tab\tneg\n  padded  \t pos \n")
    assert read_labelled_tsv(path) == [("good film", "pos"), ("has\ta tab", "neg"), ("padded", "pos")]


@pytest.mark.parametrize(
    "content, message",
    [
        ("good film pos\n", "line 1 has no tab"),
        ("ok\tpos\n\tneg\n", "line 2 has an empty text"),
        ("ok\t\n", "line 1 has an empty label"),
        ("# only a comment\n\n", "holds no labelled examples"),
        ("a\x00b\tpos\n", "looks binary"),
    ],
)
def test_malformed_files_fail_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(AttnlabError, match=message):
        read_labelled_tsv(path)


def test_undecodable_and_missing_files(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("caf\xe9\tpos\n".encode("latin-1"))
    with pytest.raises(AttnlabError, match="not UTF-8"):
        read_labelled_tsv(path)
    with pytest.raises(AttnlabError, match="No labelled data file"):
        read_labelled_tsv(tmp_path / "missing.tsv")


def test_labels_file_and_label_set(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("neg\npos\n\n")
    assert read_labels(path) == ["neg", "pos"]
    examples = [("a", "pos"), ("b", "neg"), ("c", "pos")]
    assert label_set(examples) == ["neg", "pos"]
    assert label_set(examples, ["pos", "neg", "neutral"]) == ["pos", "neg", "neutral"]
    with pytest.raises(AttnlabError, match=r"label\(s\) \['pos'\] that are not in the labels file"):
        label_set(examples, ["neg", "neutral"])
    with pytest.raises(AttnlabError, match="at least 2 classes"):
        label_set([("a", "pos")])
    path.write_text("pos\npos\n")
    with pytest.raises(AttnlabError, match="at least 2 distinct labels"):
        read_labels(path)


def test_split_is_seeded_and_disjoint():
    examples = [(f"text {i}", str(i % 3)) for i in range(50)]
    train, held_out = split_labelled(examples, 0.2, seed=1)
    assert (train, held_out) == split_labelled(examples, 0.2, seed=1)
    assert split_labelled(examples, 0.2, seed=2) != (train, held_out)
    assert len(held_out) == 10 and sorted(train + held_out) == sorted(examples)
    assert len(split_labelled(examples[:2], 0.01)[1]) == 1  # at least one held out
    with pytest.raises(AttnlabError, match=r"val_fraction must be in \(0, 1\)"):
        split_labelled(examples, 1.0)
