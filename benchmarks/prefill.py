"""Prefill speed: GPT-2 124M reading a 512-token prompt, attnlab against transformers.

The task: fill the KV cache and return the next-token logits, batch 1, 512 tokens, same
weights (GPT-2 124M randomly initialised from the `gpt2` preset, loaded by
transformers.GPT2LMHeadModel). The reference runs in its fastest dtype on this machine:
both fp32 and bf16 weights are timed and the faster is the reference (transformers is
called with use_cache=True and logits_to_keep=1, as its generate does). attnlab runs
CompiledPrefill: the dtype the probe picks (bf16 only where native and measured faster),
torch.compile with frozen weights; its compile time is reported separately. Goal >= 1.5x.

    .venv/bin/python benchmarks/prefill.py                      # prints, records in RESULTS.md
    .venv/bin/python benchmarks/prefill.py --threads 2 --no-compile --no-record
"""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def parse_args() -> argparse.Namespace:
    from attnlab.speed.report import script_arguments

    parser = script_arguments(__doc__, rounds=5)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--dtype", default="auto", help="auto, bf16 or fp32 for attnlab")
    parser.add_argument("--no-compile", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from attnlab.speed import suites
    from attnlab.speed.report import record_tables, set_threads

    set_threads(args.threads)
    result = suites.prefill_gpt2(rounds=args.rounds, length=args.length, dtype=args.dtype,
                                 compile=not args.no_compile)
    print(result.text(), flush=True)
    record_tables(RESULTS, [(suites.SECTIONS["prefill"], suites.COLUMNS, result.rows(args.note))],
                  skip=args.no_record)


if __name__ == "__main__":
    main()
