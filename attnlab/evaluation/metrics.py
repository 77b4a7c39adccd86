"""Evaluation metrics for BERT fine-tuning: classification, tagging and extractive QA.

- Classification: accuracy and macro-F1 (the unweighted mean of each class's F1,
  so a classifier that ignores a rare class is penalised for it).
- Tagging: entity-level precision, recall and F1 over BIO spans (Tjong Kim Sang &
  De Meulder 2003, CoNLL-2003): an entity counts only if its type and both of its
  boundaries are exactly right. Spans are read as the CoNLL ``conlleval`` script
  reads them: ``B-X`` starts an entity, ``I-X`` continues an open ``X`` entity, and
  an ``I-X`` that follows anything else starts a new one.
- Extractive QA: exact match and token F1 after SQuAD's answer normalisation
  (Rajpurkar et al. 2016, arXiv:1606.05250): lower case, no punctuation, no
  articles (a, an, the), single spaces.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from attnlab.errors import AttnlabError

Span = tuple[str, int, int]  # (type, first token, last token), both ends inclusive


# --------------------------------------------------------------------------- classification
def _check_pairs(predicted: Sequence, gold: Sequence, what: str) -> None:
    if len(predicted) != len(gold):
        raise AttnlabError(f"{what}: {len(predicted)} predictions for {len(gold)} gold answers.")
    if not gold:
        raise AttnlabError(f"{what} needs at least one example.")


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Fraction of predictions equal to the gold label."""
    _check_pairs(predicted, gold, "accuracy")
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def macro_f1(predicted: Sequence[str], gold: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Mean over classes of F1 = 2PR / (P + R); a class never predicted nor present scores 0.

    ``labels`` (default: every label seen in ``gold`` or ``predicted``) fixes the classes averaged.
    """
    _check_pairs(predicted, gold, "macro_f1")
    classes = list(labels) if labels is not None else sorted(set(gold) | set(predicted))
    scores = []
    for name in classes:
        tp = sum(p == name and g == name for p, g in zip(predicted, gold, strict=True))
        n_predicted = sum(p == name for p in predicted)
        n_gold = sum(g == name for g in gold)
        scores.append(2 * tp / (n_predicted + n_gold) if n_predicted + n_gold else 0.0)
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------- tagging
def bio_spans(tags: Sequence[str]) -> list[Span]:
    """The entities of one BIO-tagged sentence as (type, first, last) token spans."""
    spans: list[Span] = []
    kind, first = None, 0
    for i, tag in enumerate([*tags, "O"]):  # the sentinel closes a span open at the end
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and name == kind
        if kind is not None and not continues:
            spans.append((kind, first, i - 1))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, first = name, i
        elif prefix not in ("B", "I", "O"):
            raise AttnlabError(f"Tag {tag!r} at position {i} is not BIO (O, B-TYPE or I-TYPE).")
    return spans


def entity_scores(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 over sentences, spans matched exactly (type and bounds)."""
    _check_pairs(predicted, gold, "entity_scores")
    tp = n_predicted = n_gold = 0
    for number, (pred, true) in enumerate(zip(predicted, gold, strict=True)):
        if len(pred) != len(true):
            raise AttnlabError(f"Sentence {number}: {len(pred)} predicted tags for {len(true)} tokens.")
        pred_spans, gold_spans = set(bio_spans(pred)), set(bio_spans(true))
        tp += len(pred_spans & gold_spans)
        n_predicted += len(pred_spans)
        n_gold += len(gold_spans)
    precision = tp / n_predicted if n_predicted else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * tp / (n_predicted + n_gold) if n_predicted + n_gold else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "predicted_entities": n_predicted,
        "gold_entities": n_gold,
    }


# --------------------------------------------------------------------------- extractive QA
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, drop punctuation and articles, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(predicted: str, gold: str) -> float:
    """1.0 if the normalised answers are equal, else 0.0."""
    return float(normalize_answer(predicted) == normalize_answer(gold))


def token_f1(predicted: str, gold: str) -> float:
    """F1 of the bags of normalised answer words (both empty: 1.0; one empty: 0.0)."""
    pred, true = normalize_answer(predicted).split(), normalize_answer(gold).split()
    if not pred or not true:
        return float(pred == true)
    common = sum((Counter(pred) & Counter(true)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(true)
    return 2 * precision * recall / (precision + recall)


def qa_scores(predicted: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """Mean exact match and mean token F1 over questions (each in [0, 1])."""
    _check_pairs(predicted, gold, "qa_scores")
    n = len(gold)
    return {
        "exact_match": sum(map(exact_match, predicted, gold)) / n,
        "f1": sum(map(token_f1, predicted, gold)) / n,
    }
