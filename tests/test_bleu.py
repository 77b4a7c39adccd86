"""Corpus BLEU and the paired bootstrap comparison of two systems (attnlab/bleu.py)."""

from __future__ import annotations

import pytest

from attnlab.bleu import corpus_bleu, paired_bootstrap
from attnlab.data.parallel import corpus_split
from attnlab.errors import AttnlabError

pytest.importorskip("sacrebleu")


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
