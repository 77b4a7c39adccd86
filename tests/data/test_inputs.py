"""attnlab.data.inputs: predict's input files, one text or one QA JSON object per line."""

from __future__ import annotations

import pytest

from attnlab.data.inputs import Question, parse_inputs
from attnlab.errors import AttnlabError


def test_texts_and_questions_one_per_line():
    assert parse_inputs("one\ntwo\n", "classify") == ["one", "two"]
    assert parse_inputs('{"question": "q", "context": "c\\nd", "id": 3}\n', "qa") == [Question("q", "c\nd")]


@pytest.mark.parametrize("text, task, message", [
    ("", "tag", "is empty"),
    ("one\n\ntwo", "classify", "line 2 is empty"),
    ("a question?", "qa", "line 1 is not a JSON object"),
    ('{"question": "q"}', "qa", "line 1 is not a JSON object"),
    ('{"question": "q", "context": 3}', "qa", "line 1 is not a JSON object"),
    ('{"question": "q", "context": "c"}', "classify", "the input of a QA model; a classifier reads"),
    ('{"question": "q", "context": "c"}', "tag", "a tagger reads one text per line"),
])
def test_bad_files_name_the_line(text, task, message):
    with pytest.raises(AttnlabError, match=message):
        parse_inputs(text, task, "in.txt")
