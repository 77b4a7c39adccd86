"""Extractive question answering examples: a context, a question, and an answer span in the context.

File format (UTF-8 JSONL, one object per line)::

    {"context": "...", "question": "...", "answer": "...", "answer_start": 123}

``answer`` must occur in ``context``. ``answer_start`` (optional) is the character
offset of the answer in the context; without it the first occurrence is used. A
line whose answer is not where it says (or nowhere in the context) is an error
that names the line.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from attnlab.data import read_jsonl
from attnlab.errors import AttnlabError


@dataclass(frozen=True)
class QAExample:
    """The answer is ``context[answer_start : answer_start + len(answer)]``."""

    context: str
    question: str
    answer: str
    answer_start: int

    @property
    def answer_end(self) -> int:
        """One past the answer's last character."""
        return self.answer_start + len(self.answer)


def make_example(
    context: str, question: str, answer: str, answer_start: int | None = None, where: str = "the example"
) -> QAExample:
    """Check the fields and locate the answer; errors name ``where``."""
    for name, value in (("context", context), ("question", question), ("answer", answer)):
        if not isinstance(value, str) or not value.strip():
            raise AttnlabError(f'{where}: "{name}" must be a non-empty string.')
    if answer_start is None:
        answer_start = context.find(answer)
        if answer_start < 0:
            raise AttnlabError(
                f"{where}: the answer {answer[:40]!r} is not in the context; give an answer copied from it."
            )
    elif (
        isinstance(answer_start, bool)
        or not isinstance(answer_start, int)
        or (context[answer_start : answer_start + len(answer)] != answer)
    ):
        raise AttnlabError(
            f"{where}: the answer {answer[:40]!r} is not at answer_start={answer_start!r} in the context; "
            f"fix answer_start or drop it to use the first occurrence."
        )
    return QAExample(context, question, answer, answer_start)


def read_qa_jsonl(path: str | Path) -> list[QAExample]:
    """Examples from a JSONL file of context / question / answer (/ answer_start) objects."""
    path = Path(path).expanduser()
    examples = []
    for number, record in read_jsonl(path, "QA data", ("context", "question", "answer")):
        where = f"{path}, line {number}"
        examples.append(
            make_example(
                record["context"], record["question"], record["answer"], record.get("answer_start"), where
            )
        )
    if not examples:
        raise AttnlabError(f"{path} holds no QA examples.")
    return examples


def split_examples(
    examples: Sequence, val_fraction: float, test_fraction: float, seed: int = 0
) -> tuple[list, list, list]:
    """Seeded shuffle, then (train, validation, test)."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    n_test, n_val = round(len(shuffled) * test_fraction), round(len(shuffled) * val_fraction)
    if len(shuffled) - n_test - n_val < 1:
        raise AttnlabError(f"{len(shuffled)} examples leave none for training after the held-out splits.")
    return shuffled[n_test + n_val :], shuffled[n_test : n_test + n_val], shuffled[:n_test]


_CAPITALISED = re.compile(r"\b[A-Z][\w'-]*")


def first_capitalised_baseline(examples: Sequence[QAExample]) -> list[str]:
    """Answer every question with the context's first capitalised word (a trivial baseline)."""
    answers = []
    for example in examples:
        match = _CAPITALISED.search(example.context)
        answers.append(match.group(0) if match else example.context.split()[0])
    return answers
