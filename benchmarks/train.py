"""Training speed: attnlab against transformers in the same loop (GPT, BERT, the Transformer).

gpt-mini (4 layers, d_model 128, 65-character vocabulary, 32 x 128 tokens) against
GPT2LMHeadModel, and bert-mini (4 layers, d_model 256, 30,522-token vocabulary, 32 x 128
tokens, 15% masked, MLM + NSP) against BertForPreTraining: same initial weights, same
batches, the same AdamW step; fp32, and bf16 autocast where the CPU has native bf16.
The translation Transformer (transformer-tiny, real sentence-pair batches of <= 1,024
tokens a side) against MarianMTModel, with no goal: it also times fused AdamW. The models
are randomly initialised (training starts there). The reference is transformers in the faster
of fp32 and bf16 autocast (bf16 timed only where native), named with its dtype; each variant's
quality is its step-0 loss minus transformers fp32's on the same batch. See
attnlab.speed.training_bench for what each step computes. Goal >= 1.5x for attnlab fp32
against that reference.

    .venv/bin/python benchmarks/train.py                 # all three; prints, records in RESULTS.md
    .venv/bin/python benchmarks/train.py bert --rounds 8 --steps 2 --threads 2 --no-record
"""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
MODELS = ("gpt", "bert", "transformer")  # the keys of attnlab.speed.training_bench.SUITES


def parse_args() -> argparse.Namespace:
    from attnlab.speed.report import script_arguments

    parser = script_arguments(__doc__, rounds=6)
    # No choices=: Python 3.11's argparse checks an empty nargs="*" list against them and fails.
    parser.add_argument("models", nargs="*", metavar="{" + ",".join(MODELS) + "}",
                        help="which models (default: all three)")
    parser.add_argument("--steps", type=int, default=2,
                        help="GPT and BERT training steps per variant per round (the Transformer's round "
                             "is one step on each of its 6 batches)")
    args = parser.parse_args()
    unknown = [name for name in args.models if name not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose among {', '.join(MODELS[:-1])} and {MODELS[-1]}")
    args.models = args.models or list(MODELS)
    return args


def main() -> None:
    args = parse_args()
    from attnlab.speed import suites, training_bench
    from attnlab.speed.report import record_tables, set_threads

    set_threads(args.threads)
    for name in dict.fromkeys(args.models):
        if name == "transformer":
            result = training_bench.train_transformer(rounds=args.rounds)
        else:
            result = training_bench.SUITES[name](rounds=args.rounds, steps=args.steps)
        print(result.text(), "\n", flush=True)
        record_tables(RESULTS, [(training_bench.SECTIONS[name], suites.COLUMNS, result.rows(args.note))],
                      skip=args.no_record)


if __name__ == "__main__":
    main()
