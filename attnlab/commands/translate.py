"""``attnlab translate``: translate sentences with an encoder-decoder Transformer."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import (
    add_command,
    add_dtype_argument,
    add_text_inputs,
    add_weights_argument,
)
from attnlab.commands.loading import load_translator

EXAMPLE = """examples:
  attnlab translate --model runs/en-fr/averaged --text "The weather is nice today."
  attnlab translate --model runs/en-fr/averaged --input sentences.en --beam 4 --length-penalty 0.6
  echo "Where is the station?" | attnlab translate --model runs/en-fr/averaged --input - --beam 1

A source longer than the model's positions is truncated (its first max_positions - 1
tokens and EOS are read) and a warning says how many were.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "translate", example=EXAMPLE, model="model directory",
        help="translate text with a Transformer (beam search)",
        description="Translate sentences with an encoder-decoder (a directory written by "
                    "`attnlab train transformer` or any MarianMTModel directory with a tokenizer.json); "
                    "one translation per line.",
    )
    add_text_inputs(parser, text="a sentence to translate (repeatable)",
                    input="a file with one sentence per line ('-' reads standard input)")
    add_decoding_arguments(parser)
    parser.set_defaults(run=run)


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beam", type=int, default=4, help="beam size; 1 = greedy (default 4, as the paper)")
    parser.add_argument("--length-penalty", type=float, default=0.6,
                        help="alpha: scores are divided by length**alpha (default 0.6, as the paper)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="longest translation (default 2 x source tokens + 10)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences decoded together")
    add_weights_argument(parser)
    add_dtype_argument(parser)


def check_decoding_arguments(args: argparse.Namespace) -> None:
    from attnlab.errors import AttnlabError
    from attnlab.inference.decoding import check_length_penalty

    if args.beam < 1:
        raise AttnlabError(f"--beam must be >= 1 (1 = greedy search). Got {args.beam} instead.")
    if args.batch_size < 1:
        raise AttnlabError(f"--batch-size must be >= 1. Got {args.batch_size} instead.")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise AttnlabError(f"--max-new-tokens must be >= 1. Got {args.max_new_tokens} instead.")
    check_length_penalty(args.length_penalty, "--length-penalty")


def warn_truncated(count: int, max_positions: int) -> None:
    import sys

    if count:
        print(f"attnlab: warning: {count} source sentence(s) longer than the model's {max_positions} "
              f"positions were truncated to fit.", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from attnlab.data import read_input
    from attnlab.errors import AttnlabError
    from attnlab.inference.decoding import translate

    check_decoding_arguments(args)
    if (args.text is None) == (args.input is None):
        raise AttnlabError("Give the sentences with --text TEXT (repeatable) or with --input FILE.")
    sentences = args.text if args.text is not None else read_input(args.input).splitlines()
    source = "--text" if args.text is not None else f"--input {args.input}"
    for number, sentence in enumerate(sentences, start=1):
        if not sentence.strip():
            raise AttnlabError(f"Sentence {number} is empty ({source}); remove empty lines from the input.")
    model, tokenizer = load_translator(args.model, weights=args.weights, dtype=args.dtype)
    translations, truncated = translate(
        model, tokenizer, sentences, beam=args.beam, length_penalty=args.length_penalty,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
    )
    warn_truncated(truncated, model.config.max_positions)
    for line in translations:
        print(line)
    return 0
