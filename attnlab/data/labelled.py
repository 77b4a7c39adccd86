"""Labelled text for classification: a TSV file of ``text<TAB>label`` lines.

Format: UTF-8, one example per line, the label after the *last* tab (so a text
may itself hold tabs). Blank lines and lines starting with ``#`` are skipped,
and so is a first line reading exactly ``text<TAB>label`` (a header).

    examples = read_labelled_tsv("reviews.tsv")          # [(text, label), ...]
    train, held_out = split_labelled(examples, 0.1, seed=0)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from attnlab.data import decode_text_file, read_jsonl, split_tab_line
from attnlab.errors import AttnlabError

Example = tuple[str, str]


def read_labelled_tsv(path: str | Path) -> list[Example]:
    """(text, label) pairs from a TSV file; malformed lines are reported by line number."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AttnlabError(f"No labelled data file at {path}; check the path.")
    examples: list[Example] = []
    for number, line in enumerate(decode_text_file(path).splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if number == 1 and line.strip().lower() == "text\tlabel":
            continue
        examples.append(split_tab_line(line, f"{path}, line {number}", ("text", "label")))
    if not examples:
        raise AttnlabError(f"{path} holds no labelled examples; give lines of text<TAB>label.")
    return examples


def read_labels(path: str | Path) -> list[str]:
    """Label names, one per line (blank lines skipped), in the order the classifier should use."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AttnlabError(f"No labels file at {path}; check the --labels-file path.")
    labels = [line.strip() for line in decode_text_file(path).splitlines() if line.strip()]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise AttnlabError(
            f"{path} must list at least 2 distinct labels, one per line. Got {labels[:10]!r}."
        )
    return labels


def label_set(examples: Sequence[Example], labels: Sequence[str] | None = None) -> list[str]:
    """The classes: ``labels`` if given (every example's label must be among them), else sorted."""
    found = sorted({label for _, label in examples})
    if labels is None:
        if len(found) < 2:
            raise AttnlabError(
                f"The data has only the label(s) {found!r}; classification needs at least 2 classes."
            )
        return found
    unknown = [label for label in found if label not in set(labels)]
    if unknown:
        raise AttnlabError(
            f"The data has label(s) {unknown[:5]!r} that are not in the labels file {list(labels)!r}; "
            f"add them or fix the data."
        )
    return list(labels)


def split_labelled(
    examples: Sequence[Example], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """Shuffle with ``seed``, then hold out the last ``val_fraction`` (at least one example)."""
    if isinstance(val_fraction, bool) or not 0 < val_fraction < 1:
        raise AttnlabError(f"val_fraction must be in (0, 1). Got {val_fraction!r} instead.")
    if len(examples) < 2:
        raise AttnlabError(
            f"{len(examples)} labelled example(s) cannot be split into training and held-out sets; "
            f"give at least 2."
        )
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    n_val = min(len(shuffled) - 1, max(1, round(len(shuffled) * val_fraction)))
    return shuffled[:-n_val], shuffled[-n_val:]


def read_labelled(path: str | Path) -> list[Example]:
    """(text, label) pairs from a ``.csv`` or ``.jsonl`` file with ``text`` and ``label`` fields,
    or from a TSV (any other suffix; see :func:`read_labelled_tsv`)."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        return read_labelled_tsv(path)
    records: list[tuple[int, dict]] = []
    if suffix == ".csv":
        import csv
        import io

        if not path.is_file():
            raise AttnlabError(f"No labelled data file at {path}; check the path.")
        content = decode_text_file(path)
        reader = csv.DictReader(io.StringIO(content))
        missing = [name for name in ("text", "label") if name not in (reader.fieldnames or [])]
        if missing:
            raise AttnlabError(
                f"{path} has no {' or '.join(missing)} column (its header is {reader.fieldnames}); "
                f"the first line must name the columns text and label."
            )
        records = [(reader.line_num, row) for row in reader]
    else:
        records = read_jsonl(path, "labelled data", ("text", "label"))
    examples: list[Example] = []
    for number, record in records:
        text, label = str(record.get("text") or "").strip(), str(record.get("label") or "").strip()
        if not text or not label:
            raise AttnlabError(f"{path}, line {number} has an empty {'text' if not text else 'label'}.")
        examples.append((text, label))
    if not examples:
        raise AttnlabError(f"{path} holds no labelled examples.")
    return examples
