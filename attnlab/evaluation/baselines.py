"""Two translation baselines that a trained Transformer must beat by far.

- copy: the source sentence itself (names, numbers and cognates score a little BLEU).
- word by word: every source word replaced by the target word it is most often
  aligned to in the training pairs, in source order. The alignments are the Viterbi
  alignments of IBM Model 1 (Brown et al. 1993, "The Mathematics of Statistical
  Machine Translation", §4), whose word-translation table t(target | source) is learnt
  by expectation-maximisation on the training pairs, with a NULL source word that
  absorbs target words with no counterpart. A source word never seen in training is
  copied.

Words are what a whitespace split gives after separating punctuation, the
granularity that BLEU's ``13a`` tokeniser scores.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from attnlab.errors import AttnlabError

NULL = "<null>"
_TOKEN = re.compile(r"\w+(?:[’'-]\w+)*|[^\w\s]")


def words(sentence: str) -> list[str]:
    """Words and punctuation marks, in order."""
    return _TOKEN.findall(sentence)


def detokenize(tokens: list[str]) -> str:
    """Join words with spaces, without a space before closing punctuation."""
    text = " ".join(tokens)
    return re.sub(r" ([.,!?;:)\]])", r"\1", text)


def copy_baseline(sources: list[str]) -> list[str]:
    """The 'translation' that copies the source."""
    return list(sources)


class WordByWordTranslator:
    """Most frequent aligned target word per source word, from IBM Model 1 alignments.

    ``fit(pairs)`` learns; ``translate(sentence)`` applies. Fitted attributes end in ``_``.
    """

    def __init__(self, *, iterations: int = 5, lowercase: bool = True) -> None:
        self.iterations = iterations
        self.lowercase = lowercase

    def _norm(self, word: str) -> str:
        return word.lower() if self.lowercase else word

    def fit(self, pairs: list[tuple[str, str]]) -> WordByWordTranslator:
        if not pairs:
            raise AttnlabError("The word-by-word baseline needs training pairs.")
        corpus = [([NULL] + [self._norm(w) for w in words(s)], words(t)) for s, t in pairs]
        target_vocab = {w for _, target in corpus for w in target}
        uniform = 1.0 / max(1, len(target_vocab))
        table: dict[tuple[str, str], float] = defaultdict(lambda: uniform)  # t(target | source)
        for _ in range(self.iterations):  # EM, Brown et al. 1993 eq. (29)-(31)
            counts: dict[tuple[str, str], float] = defaultdict(float)
            totals: dict[str, float] = defaultdict(float)
            for source, target in corpus:
                for t_word in target:
                    norm = sum(table[(s_word, t_word)] for s_word in source)
                    for s_word in source:
                        share = table[(s_word, t_word)] / norm
                        counts[(s_word, t_word)] += share
                        totals[s_word] += share
            table = defaultdict(float, {key: c / totals[key[0]] for key, c in counts.items()})
        aligned: dict[str, Counter] = defaultdict(Counter)
        for source, target in corpus:
            for t_word in target:  # Viterbi: each target word to its most probable source word
                best = max(source, key=lambda s_word, t_word=t_word: table[(s_word, t_word)])
                if best != NULL:
                    aligned[best][t_word] += 1
        self.dictionary_ = {s_word: c.most_common(1)[0][0] for s_word, c in aligned.items()}
        return self

    def translate(self, sentence: str) -> str:
        """Each word looked up (unknown words copied); a capital first letter is kept."""
        if not hasattr(self, "dictionary_"):
            raise AttnlabError("Call fit(pairs) before translate().")
        output = [self.dictionary_.get(self._norm(w), w) for w in words(sentence)]
        if output and sentence[:1].isupper():
            output[0] = output[0][:1].upper() + output[0][1:]
        return detokenize(output)
