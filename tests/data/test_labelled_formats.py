"""Labelled text as CSV or JSONL (text, label), beside the TSV format; missing columns fail in one line."""

from __future__ import annotations

import pytest

from attnlab.data.labelled import read_labelled
from attnlab.errors import AttnlabError


def test_csv_jsonl_and_tsv_give_the_same_examples(tmp_path):
    (tmp_path / "a.csv").write_text('id,text,label\n1,"good, very good",pos\n2,bad,neg\n')
    (tmp_path / "a.jsonl").write_text(
        '{"text": "good, very good", "label": "pos"}\n\n{"text": "bad", "label": "neg"}\n'
    )
    (tmp_path / "a.tsv").write_text("good, very good\tpos\nbad\tneg\n")
    expected = [("good, very good", "pos"), ("bad", "neg")]
    for name in ("a.csv", "a.jsonl", "a.tsv"):
        assert read_labelled(tmp_path / name) == expected


def test_missing_label_column_is_one_line(tmp_path):
    (tmp_path / "a.csv").write_text("text,sentiment\ngood,pos\n")
    with pytest.raises(AttnlabError, match="has no label column"):
        read_labelled(tmp_path / "a.csv")
    (tmp_path / "a.jsonl").write_text('{"text": "good"}\n')
    with pytest.raises(AttnlabError, match='line 1 needs the fields "text" and "label"'):
        read_labelled(tmp_path / "a.jsonl")
    (tmp_path / "b.csv").write_text("text,label\ngood,\n")
    with pytest.raises(AttnlabError, match="line 2 has an empty label"):
        read_labelled(tmp_path / "b.csv")
