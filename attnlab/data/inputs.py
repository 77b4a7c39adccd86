"""The inputs of ``attnlab predict`` and ``attnlab embed``: texts, one per line, or QA questions as
JSON lines.

A classifier or tagger reads one text per line; a QA model one JSON object
``{"question": ..., "context": ...}`` per line (a context may hold newlines and tabs,
which JSON escapes). A blank line is an error: skipping it would shift every later
result off its line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from attnlab.errors import AttnlabError


@dataclass(frozen=True)
class Question:
    """One QA input: the answer is looked for in ``context``."""

    question: str
    context: str


def input_lines(text: str, source: str = "the input") -> list[str]:
    """The lines of ``text`` (a file's contents), each one input. An empty file or a blank line is an
    error: skipping a blank line would shift every later result off its line."""
    lines = text.splitlines()
    if not lines:
        raise AttnlabError(f"{source} is empty; give one input per line.")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise AttnlabError(f"{source}, line {number} is empty; remove it (each line is one input).")
    return lines


def parse_inputs(text: str, task: str, source: str = "the input") -> list[str] | list[Question]:
    """The inputs in ``text`` (a file's contents), one per line (:func:`input_lines`): a text for
    classify and tag, a JSON object ``{"question": ..., "context": ...}`` for qa."""
    lines = input_lines(text, source)
    records = [_question_record(line) for line in lines]
    if task != "qa":
        if all(records):
            raise AttnlabError(
                f'{source} holds {{"question", "context"}} JSON lines, the input of a QA model; '
                f"a {'tagger' if task == 'tag' else 'classifier'} reads one text per line."
            )
        return lines
    questions = []
    for number, record in enumerate(records, start=1):
        if record is None:
            raise AttnlabError(
                f'{source}, line {number} is not a JSON object {{"question": ..., "context": ...}}; '
                f"a QA model reads one such object per line."
            )
        questions.append(Question(record["question"], record["context"]))
    return questions


def _question_record(line: str) -> dict | None:
    """The line's JSON object if it has string fields question and context, else None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    fields = ("question", "context")
    ok = isinstance(record, dict) and all(isinstance(record.get(k), str) for k in fields)
    return record if ok else None
