"""``attnlab train gpt``: pre-train a GPT on a text file (default: the shipped tiny-shakespeare)."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import (
    SIZE_OPTIONS,
    add_command,
    add_nproc_argument,
    add_size_arguments,
    given,
    launch_if_asked,
    resume_hint,
)

EXAMPLE = """examples:
  attnlab train gpt --max-time 120 --out runs/shakespeare
  attnlab train transformer --out runs/en-fr               # English -> French translation
  attnlab train bert --max-iters 3000 --out runs/bert      # masked LM + next sentence
  attnlab train gpt --n-layers 4 --n-heads 4 --d-model 128 --max-positions 64 --batch-size 12 \\
      --max-iters 2000 --lr 1e-3 --dropout 0 --out runs/nanogpt-cpu
  attnlab train gpt --data my.txt --tokenizer bpe --vocab-size 2048 --out runs/mine
  attnlab train gpt --out runs/shakespeare --resume        # continue after Ctrl-C
  attnlab train gpt --nproc 2 --batch-size 32 --out runs/ddp  # 2 processes (torchrun, DDP), 16 rows each
  torchrun --nproc-per-node 2 -m attnlab train gpt --out runs/ddp  # the same, launched by hand
  torchrun --nproc-per-node 2 -m attnlab train bert --out runs/bert-ddp  # BERT on 2 processes
"""

# nanoGPT's names of the size options, kept as aliases.
NANOGPT_SPELLINGS = {"n_layers": "--n-layer", "n_heads": "--n-head", "d_model": "--n-embd",
                     "max_positions": "--block-size"}


def register(subparsers: argparse._SubParsersAction) -> None:
    train = add_command(subparsers, "train", example=EXAMPLE, help="pre-train a model on text",
                        description="Pre-train a model of the family on text.")
    models = train.add_subparsers(dest="architecture", metavar="MODEL", required=True)
    gpt = add_command(
        models, "gpt", example=EXAMPLE, help="a decoder-only, causal language model (next-token prediction)",
        description="Next-token pre-training of a GPT. Writes a checkpoint directory in the "
                    "Hugging Face GPT-2 layout (config.json, model.safetensors, tokenizer.json) plus "
                    "training_state.pt, metrics.jsonl and loss_curve.png. Ctrl-C saves and stops; "
                    "--resume continues exactly.",
    )
    data = gpt.add_argument_group("data")
    data.add_argument("--data", default=None, help="UTF-8 text file (default: tiny-shakespeare, shipped)")
    data.add_argument("--tokenizer", choices=["char", "bpe"], default="char",
                      help="char: one token per character; bpe: byte-level BPE learnt on --data")
    data.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary size (default 1024)")
    data.add_argument("--tokenizer-dir", default=None,
                      help="use the tokenizer saved in this directory (e.g. GPT-2's vocab.json + merges.txt)")
    model = gpt.add_argument_group("model")
    model.add_argument("--preset", default="gpt-char",
                       help="size preset (default gpt-char: 4 layers, 4 heads, d_model 128, 64 positions)")
    add_size_arguments(
        model, NANOGPT_SPELLINGS, n_layers="layers (overrides the preset)", n_heads="attention heads",
        d_model="model width d_model", d_ff="feed-forward width (default 4 x d_model)",
        max_positions="context length in tokens")
    model.add_argument("--dropout", type=float, default=0.0, help="dropout rate (default 0)")
    optim = gpt.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=int, default=12,
                       help="sequences per micro-batch, over all processes (default 12)")
    optim.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    optim.add_argument("--max-iters", type=int, default=2000, help="optimizer steps (default 2000)")
    optim.add_argument("--max-time", type=float, default=None,
                       help="stop (and save) after this many seconds; the learning rate cools down to its "
                            "final value by then")
    optim.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    optim.add_argument("--min-lr", type=float, default=None, help="final learning rate (default lr/10)")
    optim.add_argument("--warmup-iters", type=int, default=50, help="linear warm-up steps (default 50)")
    optim.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (default 0.1)")
    optim.add_argument("--beta2", type=float, default=0.99, help="AdamW beta2 (default 0.99)")
    optim.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                       help="auto: bf16 autocast only on CPUs with native bf16 (AMX/AVX512-BF16) or GPUs")
    optim.add_argument("--device", default="auto",
                       help="auto (a CUDA GPU if there is one), cpu or cuda; under torchrun each "
                            "process takes the GPU of its LOCAL_RANK")
    optim.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    run = gpt.add_argument_group("run")
    run.add_argument("--eval-interval", type=int, default=250,
                     help="steps between validation and checkpoint (default 250)")
    run.add_argument("--eval-iters", type=int, default=20,
                     help="validation batches per evaluation (default 20)")
    run.add_argument("--out", default="runs/gpt", help="checkpoint directory (default runs/gpt)")
    run.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    run.add_argument("--sample-tokens", type=int, default=300, help="length of the sample printed at the end")
    run.add_argument("--prompt", default="\n", help="prompt of the final sample")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    scale = gpt.add_argument_group("several processes (see docs/distributed.md)")
    add_nproc_argument(scale)
    scale.add_argument("--fsdp", action="store_true",
                       help="shard parameters, gradients and optimizer state across the processes (FSDP2) "
                            "instead of replicating the model (DDP)")
    scale.add_argument("--dist-timeout", type=float, default=300.0,
                       help="seconds a process waits for the others before stopping with an error "
                            "(default 300)")
    gpt.set_defaults(run=run_gpt, parser=gpt)

    from attnlab.commands.train_bert import add_bert_parser
    from attnlab.commands.train_transformer import add_parser as add_transformer

    add_transformer(models)
    add_bert_parser(models)


def run_gpt(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from attnlab.training import distributed

    world = distributed.launched_world()
    distributed.check_nproc(args.nproc, args.device, world)
    # train gpt splits its rows evenly: say so here, once, not in N processes.
    if args.nproc > 1 and not world.distributed:
        distributed.rows_per_rank(args.batch_size, distributed.World(size=args.nproc))
    launched = launch_if_asked(args, ["train", "gpt"])
    if launched is not None:
        return launched
    if args.fsdp and not world.distributed:
        print("(--fsdp shards across processes; with one process it trains as usual)")
    device = distributed.training_device(args.device)
    world = distributed.join(device, args.dist_timeout)
    say = print if world.is_main else (lambda *_, **__: None)

    from attnlab.data import read_text
    from attnlab.data.lm_corpus import corpus_tokenizer, train_val_tensors
    from attnlab.errors import AttnlabError
    from attnlab.inference.generation import generate
    from attnlab.models import GPT, GPTConfig
    from attnlab.training import LMTrainingConfig, train_language_model
    from attnlab.training.checkpoint import check_checkpoint_dir
    from attnlab.training.plot import plot_loss_curve

    if args.sample_tokens < 0:
        raise AttnlabError(f"--sample-tokens must be an int >= 0 (0: no sample). "
                           f"Got {args.sample_tokens} instead.")
    out = Path(args.out)
    # Rank 0 alone reads and writes --out: other machines need not see it.
    distributed.on_main(world, lambda: check_checkpoint_dir(out, args.resume))
    text = read_text(args.data)

    saved = (args.tokenizer_dir or out) if args.resume or args.tokenizer_dir else None
    # Rank 0 makes it and hands it to the others: a trained vocabulary can break ties differently in
    # each process, and other machines may not see --out.
    tokenizer = distributed.on_main(
        world, lambda: corpus_tokenizer(text, args.tokenizer, args.vocab_size, saved=saved))
    try:  # now, not after the whole run
        prompt = (tokenizer.encode(args.prompt) or [0]) if args.sample_tokens > 0 else [0]
    except AttnlabError as error:
        raise AttnlabError(f"--prompt: {error}") from None
    train_ids, val_ids = train_val_tensors(tokenizer.encode(text))
    overrides = given(args, *SIZE_OPTIONS)
    if args.d_ff is not None and args.d_ff < 1:  # the config reads 0 as "4 x d_model": refuse it here
        raise AttnlabError(f"--d-ff must be an int >= 1. Got {args.d_ff} instead.")
    if "d_model" in overrides and "d_ff" not in overrides:
        overrides["d_ff"] = 4 * overrides["d_model"]
    config = GPTConfig.from_preset(
        args.preset, vocab_size=tokenizer.vocab_size, dropout=args.dropout,
        attention_dropout=args.dropout, **overrides,
    )
    if len(val_ids) < 2:
        raise AttnlabError(f"{args.data or 'the corpus'} is too short for a validation split; use more text.")
    training = LMTrainingConfig(
        max_iters=args.max_iters, max_time=args.max_time, batch_size=args.batch_size,
        grad_accum_steps=args.grad_accum, lr=args.lr,
        min_lr=args.min_lr if args.min_lr is not None else args.lr / 10,
        warmup_iters=args.warmup_iters, weight_decay=args.weight_decay, beta2=args.beta2,
        eval_interval=args.eval_interval, eval_iters=args.eval_iters, seed=args.seed, dtype=args.dtype,
        fsdp=args.fsdp, dist_timeout=args.dist_timeout,
    )
    torch.manual_seed(args.seed)
    model = GPT(config).to(device)
    say(
        f"GPT: {config.n_layers} layers, {config.n_heads} heads, d_model {config.d_model}, "
        f"context {config.max_positions}, {model.num_parameters():,} parameters; "
        f"{tokenizer.kind} vocabulary of {tokenizer.vocab_size}; "
        f"{len(train_ids):,} training / {len(val_ids):,} validation tokens; device {device}"
        + (f"; {world.size} processes, {distributed.rows_per_rank(args.batch_size, world)} rows each"
           + (" (FSDP)" if args.fsdp else " (DDP)") if world.distributed else "")
    )
    summary = train_language_model(
        model, train_ids, val_ids, training, out_dir=out, tokenizer=tokenizer,
        resume=args.resume, progress=not args.no_progress,
    )
    if not world.is_main:
        return 130 if summary["interrupted"] else 0  # rank 0 reports, plots and samples
    if plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png") is None:
        print("(install the 'plot' extra, matplotlib, for loss_curve.png)")
    if summary["interrupted"]:
        print(resume_hint(summary["steps"], out))
        return 130
    print(
        f"trained to step {summary['steps']} in {summary['seconds']:.0f} s "
        f"({summary['tokens_per_second']:,.0f} tokens/s, {summary['dtype']}); final train loss "
        f"{summary['train_loss']:.4f}, validation loss (whole split) {summary['val_loss']:.4f}"
    )
    print(f"saved to {out}")
    if args.sample_tokens > 0:
        if world.distributed and args.fsdp:  # this rank holds only its shards: read the whole model
            from attnlab.interop.hf import load_pretrained

            model = load_pretrained(out).to(device)
        sample = generate(model, torch.tensor([prompt], device=device), args.sample_tokens,
                          temperature=0.8, top_k=40, generator=torch.Generator(device).manual_seed(args.seed))
        print("\n--- sample ---")
        print(tokenizer.decode(sample[0].tolist()))
        print("--------------")
    return 0
