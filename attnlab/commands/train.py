"""``attnlab train gpt``: pre-train a GPT on a text file (default: the shipped tiny-shakespeare)."""

from __future__ import annotations

import argparse

EXAMPLE = """example:
  attnlab train gpt --max-time 120 --out runs/shakespeare
  attnlab train gpt --data my.txt --n-layer 6 --n-head 6 --n-embd 192 --block-size 256 --max-iters 5000
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="pre-train a model on text",
        description="Pre-train a model of the family on text.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    models = train.add_subparsers(dest="architecture", metavar="MODEL", required=True)
    gpt = models.add_parser(
        "gpt", help="a decoder-only, causal language model (next-token prediction)",
        description="Next-token pre-training of a GPT; saves a Hugging Face-layout directory "
                    "(config.json, model.safetensors, tokenizer.json, metrics.jsonl).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gpt.add_argument("--data", default=None, help="UTF-8 text file (default: tiny-shakespeare, shipped)")
    gpt.add_argument("--tokenizer", choices=["char"], default="char", help="character-level vocabulary")
    gpt.add_argument("--preset", default="gpt-mini", help="model size preset (default: gpt-mini)")
    gpt.add_argument("--n-layer", type=int, help="layers (overrides the preset)")
    gpt.add_argument("--n-head", type=int, help="attention heads")
    gpt.add_argument("--n-embd", type=int, help="model width d_model")
    gpt.add_argument("--block-size", type=int, help="context length in tokens")
    gpt.add_argument("--dropout", type=float, default=0.0)
    gpt.add_argument("--batch-size", type=int, default=32)
    gpt.add_argument("--max-iters", type=int, default=2000)
    gpt.add_argument("--max-time", type=float, default=None, help="stop after this many seconds")
    gpt.add_argument("--lr", type=float, default=2e-3)
    gpt.add_argument("--min-lr", type=float, default=2e-4)
    gpt.add_argument("--warmup-iters", type=int, default=50)
    gpt.add_argument("--eval-interval", type=int, default=250)
    gpt.add_argument("--eval-iters", type=int, default=20)
    gpt.add_argument("--seed", type=int, default=1337)
    gpt.add_argument("--out", default="runs/gpt", help="output directory (default: runs/gpt)")
    gpt.add_argument("--sample-tokens", type=int, default=300, help="length of the sample printed at the end")
    gpt.add_argument("--prompt", default="\n", help="prompt of the final sample")
    gpt.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gpt.set_defaults(run=run_gpt)


def run_gpt(args: argparse.Namespace) -> int:
    import torch

    from attnlab.data import read_text, split_train_val
    from attnlab.generation import generate
    from attnlab.models import GPT, GPTConfig
    from attnlab.tokenization import Tokenizer
    from attnlab.training import LMTrainingConfig, train_language_model

    text = read_text(args.data)
    tokenizer = Tokenizer.char_level(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, val_ids = (torch.tensor(part) for part in split_train_val(ids.tolist()))
    overrides = {
        key: value for key, value in {
            "n_layers": args.n_layer, "n_heads": args.n_head,
            "d_model": args.n_embd, "max_positions": args.block_size,
        }.items() if value is not None
    }
    if "d_model" in overrides:
        overrides["d_ff"] = 4 * overrides["d_model"]
    config = GPTConfig.from_preset(
        args.preset, vocab_size=tokenizer.vocab_size, dropout=args.dropout,
        attention_dropout=args.dropout, **overrides,
    )
    training = LMTrainingConfig(
        max_iters=args.max_iters, max_time=args.max_time, batch_size=args.batch_size,
        lr=args.lr, min_lr=args.min_lr, warmup_iters=args.warmup_iters,
        eval_interval=args.eval_interval, eval_iters=args.eval_iters, seed=args.seed,
    )
    torch.manual_seed(args.seed)
    model = GPT(config)
    print(
        f"GPT: {config.n_layers} layers, {config.n_heads} heads, d_model {config.d_model}, "
        f"context {config.max_positions}, {model.num_parameters():,} parameters; "
        f"vocabulary {tokenizer.vocab_size} characters; "
        f"{len(train_ids):,} training / {len(val_ids):,} validation tokens"
    )
    summary = train_language_model(
        model, train_ids, val_ids, training, out_dir=args.out,
        on_save=tokenizer.save, progress=not args.no_progress,
    )
    print(
        f"trained {summary['steps']} steps in {summary['seconds']:.0f} s "
        f"({summary['tokens_per_second']:,.0f} tokens/s); final train loss "
        f"{summary['train_loss']:.4f}, validation loss (whole split) {summary['val_loss']:.4f}"
    )
    print(f"saved to {args.out}")
    prompt = tokenizer.encode(args.prompt)
    out = generate(model, torch.tensor([prompt]), args.sample_tokens, temperature=0.8, top_k=40,
                   generator=torch.Generator().manual_seed(args.seed))
    print("\n--- sample ---")
    print(tokenizer.decode(out[0].tolist()))
    print("--------------")
    return 0
