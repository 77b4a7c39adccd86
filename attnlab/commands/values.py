"""``attnlab values``: the value vectors of one attention head for a text, and how
they are computed from the input (V = X W_V + b_V), with the check."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command

EXAMPLE = """examples:
  attnlab values --model runs/shakespeare --text "ROMEO:" --layer 0 --head 0
  attnlab values --model path/to/bert-dir --text "A man is eating food." --layer 5 --head 3 --dims 6
  attnlab values --model path/to/bert-dir --text "$(cat long.txt)" --truncate

A text longer than the model's positions is refused; --truncate keeps its first tokens
and says on stderr how many were dropped.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "values", example=EXAMPLE, model="model directory (BERT or GPT) or .gguf file",
        help="show the value vectors and attention weights of one head",
        description="Run a model on a text with tracing on; print the tokens, one head's "
                    "value vectors, its attention weights, and the check V == X W_V^T + b_V.",
    )
    parser.add_argument("--text", required=True, help="the text to run through the model")
    parser.add_argument("--layer", type=int, default=0, help="attention layer, from 0 (default 0)")
    parser.add_argument("--head", type=int, default=0, help="head within the layer, from 0 (default 0)")
    parser.add_argument("--dims", type=int, default=8, help="value dimensions to print")
    parser.add_argument("--max-tokens", type=int, default=16, help="tokens to show in the tables")
    parser.add_argument("--truncate", action="store_true",
                        help="keep the first tokens of a text longer than the model's positions")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from attnlab.errors import AttnlabError
    from attnlab.inspect.report import check_text, display_tokens, encode_checked
    from attnlab.inspect.values import format_report, value_report
    from attnlab.interop.pretrained import load_with_tokenizer
    from attnlab.models.transformer import Transformer

    if args.dims < 1 or args.max_tokens < 1:
        raise AttnlabError("--dims and --max-tokens must be >= 1.")
    check_text(args.text)  # before the (slow) load
    # The numbers shown are the model's own: a .gguf's matrices dequantized to fp32, not the
    # packed kernels of generation (equal only to ~1e-7).
    loaded = load_with_tokenizer(args.model, weights="float")
    model, tokenizer = loaded.model, loaded.tokenizer
    if isinstance(model, Transformer):  # its decoder needs a second text
        raise AttnlabError(f"--model {args.model} is an encoder-decoder; values reads one text through a "
                           f"BERT or GPT. Use attnlab inspect --text SOURCE --target TRANSLATION for it.")
    limit = model.config.max_positions
    ids, dropped = encode_checked(tokenizer, args.text, limit, truncate=args.truncate, cli=True)
    if dropped:
        print(f"attnlab: --truncate: the text is {limit + dropped} tokens; kept the first {limit} "
              f"(the model's positions) and dropped the last {dropped}.", file=sys.stderr)
    # byte-level BPE symbols shown as their text ("Ġcat" -> " cat"), as inspect shows them
    report = value_report(model, ids, display_tokens(tokenizer, ids), args.layer, args.head)
    print(format_report(report, dims=args.dims, max_tokens=args.max_tokens))
    return 0
