"""``attnlab compare``: the Transformer, BERT and GPT side by side, with parameter counts,
FLOPs per token and a forward throughput measured here, at equal width and depth."""

from __future__ import annotations

import argparse

EXAMPLE = """examples:
  attnlab compare
  attnlab compare --d-model 512 --n-layers 6 --n-heads 8 --seq-len 256 --format markdown
  attnlab compare --format json --no-measure
  attnlab compare --masks masks.png
  attnlab compare --model path/to/bert-dir --model SmolLM2-135M-Instruct.Q4_1.gguf

Every model is randomly initialised at the same size and timed in the same process,
interleaved (A, B, C, A, B, C, ...); the median of --repeats rounds is reported. The
encoder-decoder reads half the positions as source and half as target, so every position
passes N blocks in all three. --model adds rows for loaded models: their size, the parameter
formula checked against the real count, FLOPs per token and throughput (batch 1).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="Transformer vs BERT vs GPT: architecture, size, FLOPs, measured speed",
        description="Compare the encoder-decoder Transformer, BERT and GPT: blocks, attention masks, "
                    "positions, activation, norm placement, objective, uses, parameter count and forward "
                    "FLOPs per token at one size, and forward throughput measured on this machine.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--d-model", type=int, default=256, help="width M (default 256)")
    parser.add_argument("--n-layers", "--layers", dest="n_layers", type=int, default=4,
                        help="depth N of each stack (default 4)")
    parser.add_argument("--n-heads", "--heads", dest="n_heads", type=int, default=4,
                        help="attention heads (default 4)")
    parser.add_argument("--d-ff", type=int, default=0, help="FFN width F (default 4 x d_model)")
    parser.add_argument("--vocab", type=int, default=8192, help="vocabulary size V (default 8192)")
    parser.add_argument("--seq-len", type=int, default=128, help="positions per sequence T (default 128)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per forward pass (default 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--no-measure", action="store_true", help="skip the timing (formulas only)")
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table",
                        help="table (default), markdown or json")
    parser.add_argument("--masks", help="draw the three attention masks to this .png or .svg")
    parser.add_argument("--model", action="append", default=[],
                        help="a model directory or .gguf to add (repeatable)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from attnlab.compare import Size, compare, describe_loaded, format_comparison
    from attnlab.errors import AttnlabError
    from attnlab.inspect.plots import output_path

    for name in ("batch", "repeats"):
        if getattr(args, name) < 1:
            raise AttnlabError(f"--{name} must be >= 1. Got {getattr(args, name)}.")
    if args.threads is not None:
        if args.threads < 1:
            raise AttnlabError(f"--threads must be >= 1. Got {args.threads}.")
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise AttnlabError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        raise AttnlabError(f"--device must be cpu or cuda[:N]. Got {args.device!r}.")
    masks = output_path(args.masks, flag="--masks") if args.masks is not None else None  # "" is refused
    size = Size(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads, d_ff=args.d_ff,
                vocab_size=args.vocab, seq_len=args.seq_len)

    comparison = compare(size, batch=args.batch, repeats=args.repeats, measure=not args.no_measure,
                         device=args.device)
    if args.model:
        from pathlib import Path

        from attnlab.interop.hf import load_pretrained

        for path in args.model:
            model = load_pretrained(path)
            name = "/".join(Path(path).expanduser().parts[-2:])
            comparison.loaded.append(describe_loaded(model, name, args.seq_len,
                                                     repeats=max(1, min(args.repeats, 3))))
    print(format_comparison(comparison, args.format))
    if masks is not None:
        from attnlab.inspect.plots import attention_masks

        path = attention_masks(masks)
        if args.format != "json":
            print(f"\nwrote {path}")
    return 0
