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
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from attnlab.errors import AttnlabError
    from attnlab.generation import generate
    from attnlab.interop.hf import load_pretrained
    from attnlab.models import GPT
    from attnlab.tokenization import Tokenizer

    model = load_pretrained(args.model)
    if not isinstance(model, GPT):
        raise AttnlabError(f"{args.model} holds a {type(model).__name__}, not a causal LM; "
                           f"generate needs a GPT.")
    tokenizer = Tokenizer.from_dir(args.model)
    prompt = tokenizer.encode(args.prompt)
    if not prompt:
        raise AttnlabError("The prompt encodes to no tokens; give a non-empty --prompt.")
    out = generate(
        model, torch.tensor([prompt]), args.max_new_tokens, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, generator=torch.Generator().manual_seed(args.seed),
    )
    print(tokenizer.decode(out[0].tolist()))
    return 0
