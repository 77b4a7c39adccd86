"""Memory: peak RSS of each benchmark workload, and the KV-cache size formula checked.

Every workload (GPT-2 decode with transformers fp32 / attnlab fp32 / attnlab int8, GPT-2
prefill with transformers bf16 / attnlab compiled, BERT-base with transformers fp32 /
attnlab compiled) runs in a fresh Python process that reports its RSS after imports,
after building the model, after the run, and its peak (VmHWM); freed heap pages are
handed back to the OS before each reading (malloc_trim), so the figures show memory in use.

The KV cache of a model holds 2 x n_layers x n_kv_heads x max_len x d_head elements
(x batch); for GPT-2 (12 x 12 x 64) and SmolLM2-135M (30 layers, 3 key/value heads of 64)
the formula is compared with the allocated buffers and with the RSS growth.

    .venv/bin/python benchmarks/memory.py                       # prints, records in RESULTS.md
    .venv/bin/python benchmarks/memory.py --workloads gpt2-decode-attnlab-int8 --no-record
    .venv/bin/python benchmarks/memory.py --tiny          # every workload on tiny models, in seconds
"""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def parse_args() -> argparse.Namespace:
    from attnlab.speed.memory import WORKLOADS
    from attnlab.speed.report import script_arguments

    parser = script_arguments(__doc__, rounds=None)
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--tiny", action="store_true",
                        help="small models and lengths: a check that every workload runs (never recorded)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from attnlab.speed.memory import KV_COLUMNS, RSS_COLUMNS, memory_suite
    from attnlab.speed.report import Machine, record_tables, set_threads
    from attnlab.speed.suites import SECTIONS

    set_threads(args.threads)
    machine = Machine.now()
    report = memory_suite(args.threads, tuple(args.workloads), tiny=args.tiny)
    machine.finish()
    print(machine.line())
    print(report.text(), flush=True)
    record_tables(RESULTS, [(SECTIONS["memory"], RSS_COLUMNS, report.rss_rows(machine.cells(), args.note)),
                            (SECTIONS["kv"], KV_COLUMNS, report.kv_rows(args.note))],
                  skip=args.no_record or args.tiny)


if __name__ == "__main__":
    main()
