"""The synthetic number-words corpus: exact, seeded, distinct numbers, both sizes of number."""

from __future__ import annotations

import pytest

from attnlab.data.numbers import number_pairs
from attnlab.data.parallel import corpus_pairs
from attnlab.errors import AttnlabError


def test_pairs_are_seeded_distinct_and_span_small_and_large_numbers():
    pairs = number_pairs(300, seed=1)
    assert pairs == number_pairs(300, seed=1) and pairs != number_pairs(300, seed=2)
    assert len(set(pairs)) == 300
    lengths = [len(en.split()) for _, en in pairs]
    assert min(lengths) == 1 and max(lengths) >= 8  # "seven" ... "one hundred and ... thousand, ..."
    assert all(" " not in de for de, _ in pairs)  # German writes one compound word


def test_german_puts_units_before_tens():
    from num2words import num2words

    assert (num2words(21, lang="de"), num2words(21, lang="en")) == ("einundzwanzig", "twenty-one")


def test_bad_requests():
    with pytest.raises(AttnlabError, match="distinct numbers"):
        number_pairs(20, largest=10)
    with pytest.raises(AttnlabError, match="Unknown corpus"):
        corpus_pairs("klingon")
