"""Corpus BLEU and the paired bootstrap comparison of two systems (attnlab/evaluation/bleu.py)."""

from __future__ import annotations

import pytest

from attnlab.data.parallel import corpus_split, group_references
from attnlab.errors import AttnlabError
from attnlab.evaluation.bleu import corpus_bleu, paired_bootstrap


@pytest.fixture(scope="module")
def test_pairs():
    return corpus_split("test")[:300]


def test_a_better_system_wins_the_paired_bootstrap(test_pairs):
    references = [t for _, t in test_pairs]
    copies = [s for s, _ in test_pairs]
    every_third_right = [t if i % 3 == 0 else s for i, (s, t) in enumerate(test_pairs)]
    result = paired_bootstrap(every_third_right, copies, references, samples=200)
    assert result.system_score == pytest.approx(corpus_bleu(every_third_right, references).score)
    assert result.other_score == pytest.approx(corpus_bleu(copies, references).score)
    assert result.system_score > result.other_score + 10 and result.p_value < 0.05
    assert 0 < result.system_ci < 10 and 0 <= result.other_ci < result.system_ci and result.samples == 200


def test_two_close_systems_are_not_told_apart(test_pairs):
    references = [t for _, t in test_pairs]
    one = [t if i % 3 == 0 else s for i, (s, t) in enumerate(test_pairs)]
    other = [t if i % 3 == 1 else s for i, (s, t) in enumerate(test_pairs)]  # as many right, others
    result = paired_bootstrap(one, other, references, samples=200)
    assert abs(result.system_score - result.other_score) < result.system_ci + result.other_ci
    assert result.p_value > 0.05


def test_paired_bootstrap_needs_aligned_non_empty_input():
    with pytest.raises(AttnlabError, match="one translation per reference"):
        paired_bootstrap(["a"], ["a", "b"], ["a"])
    with pytest.raises(AttnlabError, match="at least one sentence pair"):
        paired_bootstrap([], [], [])


def test_multi_reference_bleu_matches_sacrebleu_and_credits_any_reference():
    from sacrebleu.metrics import BLEU

    sources, references = group_references(corpus_split("test", "tatoeba")[:400])
    several = [i for i, refs in enumerate(references) if len(refs) > 1]
    assert several  # Tatoeba gives many English sentences two or more French translations
    # A system that always gives the *last* reference: perfect against all references,
    # imperfect against the first one alone wherever the two differ.
    last = [refs[-1] for refs in references]
    assert corpus_bleu(last, references).score == pytest.approx(100.0)
    single = corpus_bleu(last, [refs[0] for refs in references])
    assert single.score < 95 and single.signature.startswith("nrefs:1|")
    # The same number sacreBLEU gives with the reference streams written out by hand.
    hypotheses = [refs[0].split(" ")[0] + " " + refs[-1] for refs in references]
    most = max(len(refs) for refs in references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(most)]
    expected = BLEU().corpus_score(hypotheses, streams).score
    result = corpus_bleu(hypotheses, references)
    assert result.score == pytest.approx(expected) and result.signature.startswith("nrefs:var|")
    assert result.score > corpus_bleu(hypotheses, [refs[0] for refs in references]).score
    comparison = paired_bootstrap(last, hypotheses, references, samples=50)
    assert comparison.system_score == pytest.approx(100.0)
    assert comparison.other_score == pytest.approx(expected)


def test_every_sentence_needs_a_reference():
    with pytest.raises(AttnlabError, match="at least one reference"):
        corpus_bleu(["a", "b"], [["a"], []])
