"""Fine-tuning metrics on hand-checked cases: macro-F1, BIO entity spans and F1, SQuAD EM/F1."""

from __future__ import annotations

import pytest

from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import (
    accuracy,
    bio_spans,
    entity_scores,
    exact_match,
    macro_f1,
    normalize_answer,
    qa_scores,
    token_f1,
)


def test_accuracy_and_macro_f1_by_hand():
    gold = ["a", "a", "a", "b", "c"]
    predicted = ["a", "a", "b", "b", "b"]
    assert accuracy(predicted, gold) == pytest.approx(3 / 5)
    # a: tp 2, pred 2, gold 3 -> 4/5; b: tp 1, pred 3, gold 1 -> 2/4; c: 0 -> mean 0.4333...
    assert macro_f1(predicted, gold) == pytest.approx((0.8 + 0.5 + 0.0) / 3)
    # A class in the label list that nobody predicts or has counts as 0 in the mean.
    assert macro_f1(predicted, gold, ["a", "b", "c", "d"]) == pytest.approx((0.8 + 0.5) / 4)
    assert macro_f1(gold, gold) == 1.0


def test_majority_answer_has_low_macro_f1():
    gold = ["neg"] * 8 + ["pos"] * 2
    assert accuracy(["neg"] * 10, gold) == 0.8
    assert macro_f1(["neg"] * 10, gold) == pytest.approx((2 * 8 / 18 + 0) / 2)


def test_bio_spans_read_like_conlleval():
    tags = ["B-per", "I-per", "O", "I-loc", "I-loc", "B-loc", "B-loc", "I-per", "O", "B-org"]
    assert bio_spans(tags) == [
        ("per", 0, 1),
        ("loc", 3, 4),
        ("loc", 5, 5),
        ("loc", 6, 6),
        ("per", 7, 7),
        ("org", 9, 9),
    ]
    assert bio_spans(["O", "O"]) == []
    with pytest.raises(AttnlabError, match="not BIO"):
        bio_spans(["O", "X-per"])


def test_entity_scores_need_exact_type_and_bounds():
    gold = [["B-per", "I-per", "O", "B-loc"], ["B-org", "O"]]
    predicted = [["B-per", "O", "O", "B-loc"], ["B-per", "O"]]  # wrong end, right, wrong type
    scores = entity_scores(predicted, gold)
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)
    assert entity_scores(gold, gold)["f1"] == 1.0
    assert entity_scores([["O"] * 4, ["O"] * 2], gold)["f1"] == 0.0
    with pytest.raises(AttnlabError, match="3 predicted tags for 4 tokens"):
        entity_scores([["O"] * 3, ["O"] * 2], gold)


def test_squad_normalisation_exact_match_and_token_f1():
    assert normalize_answer("The  Duke of York!") == "duke of york"
    assert exact_match("the Duke of York", "Duke of York.") == 1.0
    assert exact_match("Duke", "Duke of York") == 0.0
    # pred {duke}, gold {duke, of, york}: P 1, R 1/3 -> F1 0.5
    assert token_f1("Duke", "Duke of York") == pytest.approx(0.5)
    assert token_f1("Lady Macbeth", "Macbeth") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("Ross", "Lennox") == 0.0
    scores = qa_scores(["Ross", "Old Man"], ["Ross", "Man"])
    assert scores["exact_match"] == 0.5
    assert scores["f1"] == pytest.approx((1 + 2 / 3) / 2)
