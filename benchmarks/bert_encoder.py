"""Encoder speed: BERT-base on 8 x 128 tokens, attnlab against transformers.BertModel fp32.

Same weights (BERT-base randomly initialised by attnlab, loaded by transformers.BertModel),
same ids, all-ones attention mask. attnlab runs CompiledEncoder: the dtype the probe picks
(bf16 only where native and measured faster) through torch.compile with frozen weights,
compile time reported separately. Its last_hidden_state must stay within the stated
tolerance of the fp32 reference (attnlab.speed.suites.TOLERANCE: bf16 3e-2 relative norm
and 0.25 max abs; fp32 1e-5 and 1e-4). Also timed, for context: attnlab fp32 eager and
transformers with bf16 weights. Goal >= 1.5x against BertModel fp32.

    .venv/bin/python benchmarks/bert_encoder.py                 # prints, records in RESULTS.md
    .venv/bin/python benchmarks/bert_encoder.py --threads 2 --no-record
"""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def parse_args() -> argparse.Namespace:
    from attnlab.speed.report import script_arguments

    parser = script_arguments(__doc__, rounds=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--dtype", default="auto", help="auto, bf16 or fp32 for attnlab")
    parser.add_argument("--no-compile", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from attnlab.speed import suites
    from attnlab.speed.report import record_tables, set_threads

    set_threads(args.threads)
    result = suites.bert_encoder(rounds=args.rounds, batch=args.batch_size, length=args.length,
                                 dtype=args.dtype, compile=not args.no_compile)
    print(result.text(), flush=True)
    record_tables(RESULTS, [(suites.SECTIONS["bert"], suites.COLUMNS, result.rows(args.note))],
                  skip=args.no_record)


if __name__ == "__main__":
    main()
