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


References = list[str] | list[list[str]]


def reference_streams(references: References) -> list[list[str | None]]:
    """sacreBLEU's layout of references: one stream per reference number, each as long as the
    test set. ``references`` holds one string per sentence, or a list of them per sentence
    (any number, at least one); a sentence with fewer than the most gets None in the later
    streams, which sacreBLEU skips (its signature then says ``nrefs:var``)."""
    per_sentence = [[r] if isinstance(r, str) else list(r) for r in references]
    if any(not refs for refs in per_sentence):
        raise AttnlabError("Every sentence needs at least one reference translation.")
    most = max((len(refs) for refs in per_sentence), default=1)
    return [[refs[k] if k < len(refs) else None for refs in per_sentence] for k in range(most)]


def _check_lengths(hypotheses: list[str], references: References) -> None:
    if len(hypotheses) != len(references):
        raise AttnlabError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; "
            f"give one translation per reference."
        )
    if not references:
        raise AttnlabError("BLEU needs at least one sentence pair.")


def corpus_bleu(hypotheses: list[str], references: References) -> BleuResult:
    """BLEU of ``hypotheses`` against their references (one string per sentence, or a list of
    several: multi-reference BLEU counts an n-gram found in any of them and takes the closest
    reference length), sacreBLEU's default settings."""
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise AttnlabError(
            "BLEU needs the sacrebleu package: pip install 'attnlab[bleu]' (or sacrebleu)."
        ) from None
    _check_lengths(hypotheses, references)
    metric = BLEU()
    result = metric.corpus_score(list(hypotheses), reference_streams(references))
    return BleuResult(score=float(result.score), signature=str(metric.get_signature()), detail=str(result))


@dataclass(frozen=True)
class PairedComparison:
    """Paired bootstrap resampling (Koehn 2004, "Statistical Significance Tests for Machine
    Translation Evaluation"): the test sentences are drawn with replacement ``samples`` times
    and both systems are scored on each draw. ``*_ci`` is the half-width of the 95% interval
    of each system's BLEU over the draws; ``p_value`` is the chance of the observed gap if
    the two systems were equally good (sacreBLEU's implementation, fixed seed)."""

    system_score: float
    system_ci: float
    other_score: float
    other_ci: float
    p_value: float
    samples: int


def paired_bootstrap(system: list[str], other: list[str], references: References,
                     samples: int = 1000) -> PairedComparison:
    """Compare two systems' translations of the same sentences (see :class:`PairedComparison`);
    ``references`` as for :func:`corpus_bleu`."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    if not len(system) == len(other) == len(references):
        raise AttnlabError(
            f"Paired comparison needs one translation per reference from each system; got "
            f"{len(system)}, {len(other)} and {len(references)}."
        )
    if not references:
        raise AttnlabError("A paired comparison needs at least one sentence pair.")
    # sacreBLEU tests every system against the first one named.
    _, results = PairedTest([("other", list(other)), ("system", list(system))], {"BLEU": BLEU()},
                            reference_streams(references), test_type="bs", n_samples=samples)()
    other_result, system_result = results["BLEU"]
    return PairedComparison(
        system_score=float(system_result.score), system_ci=float(system_result.ci),
        other_score=float(other_result.score), other_ci=float(other_result.ci),
        p_value=float(system_result.p_value), samples=samples,
    )
