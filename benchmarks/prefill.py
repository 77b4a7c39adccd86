"""Prefill speed: GPT-2 124M (random init) reading a 512-token prompt, attnlab against transformers.

The task: fill the KV cache and return the next-token logits, batch 1, 512 tokens, same
weights (GPT-2 124M randomly initialised from the `gpt2` preset, loaded by
transformers.GPT2LMHeadModel; the workload's name says "(random init)"). The reference runs
in its fastest dtype on this machine: fp32 and, where the CPU computes bf16 natively, bf16
weights are both timed, the faster is the reference (named with its dtype), the other printed
beside it (transformers is called with use_cache=True and logits_to_keep=1, as its generate
does). attnlab runs CompiledPrefill (the dtype the probe picks, torch.compile with frozen
weights; its compile time reported apart) and GPT.prefill, fp32 eager. Quality is
measured against transformers fp32's logits: max |logit difference| of the next token and
whether its top-1 is the same (and, for bf16, at every position). Goal >= 1.5x.

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
