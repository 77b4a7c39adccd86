"""Corpus BLEU (Papineni et al. 2002) as the paper reports it, computed by sacreBLEU.

sacreBLEU (Post 2018, arXiv:1804.08771) fixes the tokenisation (``13a``) and the other
choices that made BLEU numbers incomparable, and prints them as a *signature*, e.g.
``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``; report it with every
score. Scores are floats on 0-100 (identical text gives 100.00000000000004).
"""

from __future__ import annotations

from dataclasses import dataclass

from attnlab.errors import AttnlabError


@dataclass(frozen=True)
class BleuResult:
    score: float  # 0-100
    signature: str
    detail: str  # sacreBLEU's one-line summary: n-gram precisions, brevity penalty, lengths

    def __str__(self) -> str:
        return f"BLEU {self.score:.2f}  ({self.signature})"


def corpus_bleu(hypotheses: list[str], references: list[str]) -> BleuResult:
    """BLEU of ``hypotheses`` against one reference each, sacreBLEU's default settings."""
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise AttnlabError(
            "BLEU needs the sacrebleu package: pip install 'attnlab[bleu]' (or sacrebleu)."
        ) from None
    if len(hypotheses) != len(references):
        raise AttnlabError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; "
            f"give one translation per reference."
        )
    if not references:
        raise AttnlabError("BLEU needs at least one sentence pair.")
    metric = BLEU()
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return BleuResult(score=float(result.score), signature=str(metric.get_signature()), detail=str(result))
