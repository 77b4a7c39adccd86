"""What every benchmark suite reports: a :class:`Comparison` of attnlab's variants with the reference.

The reference is ``transformers`` in its fastest dtype on this CPU: fp32, and bf16 where
the CPU computes bf16 natively (AMX / AVX512-BF16; elsewhere PyTorch emulates bf16 matmuls
hundreds of times slower, so bf16 is not even timed there). Both are timed in the same
interleaved rounds as attnlab's variants; the faster is the reference every ratio (and
every goal) is taken against, and its dtype is in its name; the other is reported on a
line of its own.

Quality is measured, never a fixed label: each variant's answer is compared with the fp32
answer of the same run (:func:`logit_figures`, :func:`first_difference`,
:func:`encoder_agreement`); the figures go to :attr:`Variant.metrics` and, as text, to
:attr:`Variant.quality`, which RESULTS.md records.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import dataclass, field

from torch import Tensor

from attnlab.device import cpu_has_native_bf16
from attnlab.speed.report import MACHINE_COLUMNS, Machine, Timings, utc_now

# The RESULTS.md section of each benchmark (benchmarks/*.py and ``attnlab bench --record``).
# Sections whose reference became "transformers at its fastest dtype" got new titles: their
# rows start a new table rather than join one measured against fp32 only.
_DECODE = "decode.py: greedy decoding tokens/s, attnlab vs transformers generate (same weights)"
_ENCODER = ("bert_encoder.py: BERT encoder tokens/s (all-MiniLM-L6-v2, BERT-base), attnlab vs "
            "transformers BertModel at its fastest dtype")
SECTIONS = {
    "smollm2": _DECODE,
    "decode": _DECODE,
    "prefill": "prefill.py: prefill tokens/s, attnlab vs transformers in its fastest dtype (same weights)",
    "minilm": _ENCODER,
    "bert": _ENCODER,
    "memory": "memory.py: RSS of each workload in a fresh process",
    "kv": "memory.py: KV-cache size, formula vs allocated buffers",
}

COLUMNS = ["date (UTC)", "workload", "attnlab variant", "reference", "attnlab tok/s", "reference tok/s",
           "ratio", "goal", "quality vs fp32", "one-off s", *MACHINE_COLUMNS, "notes"]


@dataclass
class Variant:
    name: str
    tokens_per_s: float
    ratio: float = float("nan")  # vs the reference
    quality: str = ""  # the measured figures of ``metrics``, as text
    one_off: str = ""  # e.g. "compile 21.3"
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"top1": 0.97, "max_dlogit": 0.09}


@dataclass
class Comparison:
    """One benchmark's figures: the reference first, then attnlab's variants."""

    workload: str
    reference: Variant
    variants: list[Variant]
    machine: Machine
    goal: float | None = None
    goal_variant: str | None = None  # the variant the goal is judged on
    lines: list[str] = field(default_factory=list)  # extra findings to print

    def variant(self, prefix: str) -> Variant:
        """The first variant whose name starts with ``prefix``."""
        return next(v for v in self.variants if v.name.startswith(prefix))

    def goal_ratio(self) -> float:
        """The ratio of the variant the goal is judged on (named exactly by ``goal_variant``)."""
        return next(v.ratio for v in self.variants if v.name == self.goal_variant)

    def goal_met(self) -> bool | None:
        if self.goal is None or self.goal_variant is None:
            return None
        return self.goal_ratio() >= self.goal

    def text(self) -> str:
        width = max(len(v.name) for v in [self.reference, *self.variants])
        out = [self.workload, self.machine.line()]
        out.append(f"  {self.reference.name:<{width}}  {self.reference.tokens_per_s:10,.1f} tokens/s   "
                   f"(reference)  {self.reference.quality}")
        for v in self.variants:
            extra = f"  [{v.one_off}]" if v.one_off else ""
            out.append(f"  {v.name:<{width}}  {v.tokens_per_s:10,.1f} tokens/s   x{v.ratio:5.2f}       "
                       f"{v.quality}{extra}")
        out.extend(f"  {line}" for line in self.lines)
        met = self.goal_met()
        if met is not None:
            ratio = self.goal_ratio()
            out.append(f"  goal >= {self.goal:g}x for {self.goal_variant!r} against "
                       f"{self.reference.name!r}: measured {ratio:.2f}x -> {'met' if met else 'NOT met'}")
        return "\n".join(out)

    def rows(self, note: str = "") -> list[list[str]]:
        date = utc_now()
        rows = []
        for v in self.variants:
            goal = f">= {self.goal:g}x ({'met' if v.ratio >= self.goal else 'not met'})" if (
                self.goal is not None and v.name == self.goal_variant) else ""
            rows.append([date, self.workload, v.name, self.reference.name, f"{v.tokens_per_s:,.1f}",
                         f"{self.reference.tokens_per_s:,.1f}", f"{v.ratio:.2f}x", goal, v.quality,
                         v.one_off, *self.machine.cells(), note])
        return rows


def finish(workload: str, reference: str, names: dict[str, str], timings: Timings, units: float,
           machine: Machine, **kwargs) -> Comparison:
    """Build a Comparison from interleaved timings; ``names`` maps the timing keys of the reference
    and of attnlab's variants to display names (keys not in it, e.g. the slower reference dtype,
    are left out)."""
    ref = Variant(names[reference], timings.rate(reference, units), 1.0)
    variants = [Variant(names[key], timings.rate(key, units), timings.ratio(key, reference))
                for key in names if key != reference]
    return Comparison(workload, ref, variants, machine.finish(), **kwargs)


# --- the reference at its fastest dtype --------------------------------------------------------------


def reference_dtypes() -> tuple[str, ...]:
    """The dtypes the reference is timed in here: fp32, and bf16 only where it is native."""
    return ("fp32", "bf16") if cpu_has_native_bf16() else ("fp32",)


def pick_reference(timings: Timings, units: float, label: str, keys: dict[str, str]
                   ) -> tuple[str, str, list[str]]:
    """The fastest of the reference's timed dtypes: (its timing key, its display name, lines).

    ``keys`` maps dtype -> timing key (e.g. {"fp32": "hf_fp32", "bf16": "hf_bf16"}); ``label``
    is the reference without its dtype (e.g. "transformers BertModel"). The lines give the
    other dtype's figure, or say why bf16 was not timed.
    """
    best = max(keys, key=lambda dtype: timings.rate(keys[dtype], units))
    if len(keys) == 1:
        return keys[best], f"{label} {best} (bf16 not native here)", [
            f"{label} bf16: not timed (no native bf16 on this CPU: emulated, it is far slower)"]
    lines = []
    for dtype, key in keys.items():
        if dtype != best:
            answer = "; its output is the fp32 answer" if dtype == "fp32" else ""
            lines.append(f"{label} {dtype}: {timings.rate(key, units):,.1f} tokens/s, "
                         f"x{timings.ratio(key, keys[best]):.2f} of its {best} (not the reference{answer})")
    return keys[best], f"{label} {best} (its fastest of {'/'.join(keys)} here)", lines


# --- quality, measured --------------------------------------------------------------------------------


def logit_figures(fast: Tensor, exact: Tensor) -> dict[str, float]:
    """max |dlogit|, top-1 agreement (fraction) and the number of positions of (..., V) logits."""
    fast, exact = fast.float().reshape(-1, fast.shape[-1]), exact.float().reshape(-1, exact.shape[-1])
    return {"max_dlogit": (fast - exact).abs().max().item(),
            "top1": (fast.argmax(-1) == exact.argmax(-1)).float().mean().item(),
            "positions": float(fast.shape[0])}


def logit_agreement(fast: Tensor, exact: Tensor) -> str:
    """'max |dlogit| 0.031, top-1 98.4% of 64': (..., V) logits of a fast path vs fp32."""
    figures = logit_figures(fast, exact)
    if figures["positions"] == 1:  # one position: say how close fp32's top two were
        top2 = exact.float().reshape(-1).topk(2).values
        return (f"max |dlogit| {figures['max_dlogit']:.3g}, top-1 "
                f"{'same' if figures['top1'] == 1 else 'differs'} "
                f"(fp32's top-2 margin {float(top2[0] - top2[1]):.3g})")
    return (f"max |dlogit| {figures['max_dlogit']:.3g}, top-1 {100 * figures['top1']:.1f}% of "
            f"{figures['positions']:.0f}")


def first_difference(tokens: Tensor, expected: Tensor, prompt_length: int) -> int:
    """How many of the new tokens of (1, T + new) ``tokens`` equal ``expected``'s before the first
    that differs (all of them when none does)."""
    new, want = tokens[0, prompt_length:], expected[0, prompt_length:]
    if new.shape != want.shape:  # e.g. one run stopped early: compare what both have
        length = min(len(new), len(want))
        new, want = new[:length], want[:length]
    same = (new == want).long()
    return len(same) if bool(same.all()) else int(same.argmin())


# bf16 keeps 8 significant bits: BERT's LayerNorm-ed outputs (unit scale) then differ from
# fp32 by about 1e-2 relative. The fp32 paths must agree to float rounding.
TOLERANCE = {"bf16": dict(relative=3e-2, max_abs=0.25), "fp32": dict(relative=1e-5, max_abs=1e-4)}


def encoder_figures(fast: Tensor, exact: Tensor) -> dict[str, float]:
    """Relative (norm) and max |difference| of (B, T, M) outputs."""
    diff = fast.float() - exact.float()
    return {"relative": float(diff.norm() / exact.float().norm()), "max_abs": float(diff.abs().max())}


def encoder_agreement(fast: Tensor, exact: Tensor, dtype: str) -> tuple[str, bool]:
    """Relative (norm) and max |difference| of (B, T, M) outputs, against the dtype's tolerance."""
    figures = encoder_figures(fast, exact)
    bound = TOLERANCE[dtype]
    ok = figures["relative"] <= bound["relative"] and figures["max_abs"] <= bound["max_abs"]
    if not (math.isfinite(figures["relative"]) and math.isfinite(figures["max_abs"])):
        ok = False
    return (f"rel {figures['relative']:.2e}, max |d| {figures['max_abs']:.3g} (tolerance "
            f"{bound['relative']:g} rel, {bound['max_abs']:g} abs: {'within' if ok else 'EXCEEDED'})", ok)


# --- transformers, quietly ----------------------------------------------------------------------------


def quiet_transformers():
    """``transformers``, with its info logging and progress bars off."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def hf_copy(ours, hf_class):
    """The transformers model with attnlab's weights (saved in the HF layout, loaded back)."""
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.save_pretrained(directory)
        return hf_class.from_pretrained(directory).eval()
