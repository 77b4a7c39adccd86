"""``attnlab generate``: continue a prompt with a causal language model."""

from __future__ import annotations

import argparse

EXAMPLE = """example:
  attnlab generate --model runs/shakespeare --prompt "ROMEO:" --max-new-tokens 200 \
      --temperature 0.8 --top-k 40
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="continue a prompt with a GPT",
        description="Generate text from a saved GPT (a directory with config.json, "
                    "model.safetensors and a tokenizer) using a KV cache.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--prompt", default="\n")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats")
    parser.add_argument("--stop", action="append", default=None, metavar="TEXT",
                        help="stop before this text (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-stream", action="store_true", help="print the text at the end only")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from attnlab.errors import AttnlabError
    from attnlab.generation import generate_text
    from attnlab.interop.hf import load_pretrained
    from attnlab.models import GPT
    from attnlab.tokenization import Tokenizer

    model = load_pretrained(args.model)
    if not isinstance(model, GPT):
        raise AttnlabError(f"{args.model} holds a {type(model).__name__}, not a causal LM; "
                           f"generate needs a GPT.")
    tokenizer = Tokenizer.from_dir(args.model)

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    show(args.prompt)
    text = generate_text(
        model, tokenizer, args.prompt, args.max_new_tokens, stop=args.stop,
        stream=None if args.no_stream else show,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        repetition_penalty=args.repetition_penalty, generator=torch.Generator().manual_seed(args.seed),
    )
    if args.no_stream:
        show(text)
    show("\n")
    return 0
