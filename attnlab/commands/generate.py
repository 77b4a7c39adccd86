"""``attnlab generate``: continue a prompt with a causal language model."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command, add_dtype_argument, add_weights_argument
from attnlab.commands.loading import load_kind, settle_auto_weights

EXAMPLE = """examples:
  attnlab generate --model runs/shakespeare --prompt "ROMEO:" --max-new-tokens 200 \\
      --temperature 0.8 --top-k 40
  attnlab generate --model path/to/SmolLM2-135M-Instruct.Q4_1.gguf --chat \\
      --prompt "What is attention in a Transformer?" --temperature 0
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "generate", example=EXAMPLE, model="model directory or .gguf file",
        help="continue a prompt with a GPT",
        description="Generate text from a GPT (a directory with config.json, model.safetensors "
                    "and a tokenizer, or a llama .gguf file) using a KV cache; tokens stream as "
                    "they come.",
    )
    parser.add_argument("--chat", action="store_true",
                        help="wrap the prompt as a user message with the model's chat template")
    parser.add_argument("--system", default=None, help="system message for --chat")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate (default 200)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest tokens only")
    parser.add_argument("--top-p", type=float, default=None,
                        help="sample from the likeliest tokens whose probabilities sum to p (nucleus)")
    parser.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats")
    parser.add_argument("--stop", action="append", default=None, metavar="TEXT",
                        help="stop before this text (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampling (default 0)")
    parser.add_argument("--no-stream", action="store_true", help="print the text at the end only")
    add_weights_argument(parser, auto="for a float checkpoint what a one-time probe on this CPU "
                                      "chose: int8/int4 only if they keep fp32's greedy answer on 5 test "
                                      "prompts and decode faster, else float; cached in ~/.cache/attnlab")
    add_dtype_argument(parser, auto="for a float checkpoint bf16 if the same probe passes it and it decodes "
                                    "faster, else fp32")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from attnlab.errors import AttnlabError
    from attnlab.inference.chat import apply_chat_template
    from attnlab.inference.generation import GenerationReport, check_sampling, generate_text
    from attnlab.models import GPT

    # Every argument is checked before the (slow) load and before the prompt is echoed, so that
    # an error leaves stdout empty.
    check_sampling(args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                   args.repetition_penalty, cli=True)
    if args.system is not None and not args.chat:
        raise AttnlabError("--system is the system message of --chat; add --chat or drop --system.")
    loaded = load_kind(args.model, GPT, "{path} holds a {found}, not a causal LM; generate needs a GPT.",
                       weights=args.weights, dtype=args.dtype)
    # What the probe may choose: int8 / int4 weights under --weights auto, bf16 under --dtype auto
    # (float weights only: packed blocks take fp32 activations).
    allowed = (("int8", "int4") if args.weights == "auto" else ()) + (
        ("bf16",) if args.dtype == "auto" and args.weights in ("auto", "float") else ())
    if allowed:
        settle_auto_weights(loaded, args.model, allowed)
    model, tokenizer = loaded.model, loaded.tokenizer
    prompt, eos = args.prompt, None
    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": args.prompt}]
        prompt = apply_chat_template(messages, loaded.chat_template)
        eos = loaded.eos_token_id
    try:  # names characters outside a char-level vocabulary, and the flag that brought them
        ids = tokenizer.encode(prompt)
    except AttnlabError as error:
        where = "--chat (the prompt in the model's chat template)" if args.chat else "--prompt"
        raise AttnlabError(f"{where}: {error}") from None
    if not ids:
        raise AttnlabError("The prompt encodes to no tokens; give a non-empty --prompt.")

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    if not args.chat:
        show(args.prompt)
    report = GenerationReport()
    text = generate_text(
        model, tokenizer, prompt, args.max_new_tokens, stop=args.stop, eos_token_id=eos,
        stream=None if args.no_stream else show, report=report,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        repetition_penalty=args.repetition_penalty, generator=torch.Generator().manual_seed(args.seed),
    )
    if args.no_stream:
        show(text)
    show("\n")
    # On stderr, so that stdout stays the text alone (for pipes and files).
    speed = (f", then {report.tokens_per_s:.1f} tokens/s" if report.new_tokens > 1 else "")
    print(f"[{report.prompt_tokens} prompt tokens, {report.new_tokens} new; first token after "
          f"{report.first_token_s:.2f} s{speed}]", file=sys.stderr)
    if report.stopped_by == "max_new_tokens":
        print(f"[stopped at --max-new-tokens {args.max_new_tokens}: the answer may be cut; raise it to "
              f"read on]", file=sys.stderr)
    return 0
