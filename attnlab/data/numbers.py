"""A synthetic but exact translation task: German number words -> English number words.

    einundzwanzig                           -> twenty-one
    eintausendneunhundertvierundachtzig     -> one thousand, nine hundred and eighty-four

Generated with the PyPI package ``num2words`` (LGPL; not shipped, installed on demand:
``pip install num2words``). German writes a number as one compound word and says the
units before the tens ("one-and-twenty"), so the decoder must reorder pieces of the
source: a clear picture of what cross-attention does, and a task a word-by-word
translation cannot solve. Numbers are drawn log-uniformly from 1 to 999,999 (small
and large ones alike), each at most once, with a fixed seed; the splits are those of
:func:`attnlab.data.parallel.split_pairs` over 20,000 + 500 + 1,000 pairs.
"""

from __future__ import annotations

import math
import random

from attnlab.errors import AttnlabError

N_PAIRS = 21_500
SEED = 0


def number_pairs(n: int = N_PAIRS, seed: int = SEED, largest: int = 999_999) -> list[tuple[str, str]]:
    """``n`` (German, English) pairs of distinct numbers, the same for the same arguments."""
    try:
        from num2words import num2words
    except ImportError:
        raise AttnlabError(
            "The numbers corpus needs the num2words package: pip install num2words."
        ) from None
    if n > largest:
        raise AttnlabError(f"Cannot draw {n} distinct numbers from 1..{largest}.")
    rng = random.Random(seed)
    chosen: dict[int, None] = {}
    while len(chosen) < n:
        number = int(math.exp(rng.uniform(0, math.log(largest + 1))))
        chosen.setdefault(min(max(number, 1), largest))
    return [(num2words(k, lang="de"), num2words(k, lang="en")) for k in chosen]
