"""``attnlab finetune gpt``: go on training a saved GPT on new text, or fine-tune it to classify;
``attnlab finetune bert`` (:mod:`attnlab.commands.finetune_bert`): classify, tag or answer questions."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command, add_nproc_argument, launch_if_asked, resume_hint

EXAMPLE = """examples:
  # continued pre-training on new text (the model's own tokenizer; checkpoints, --resume)
  attnlab finetune gpt --model runs/shakespeare --data sonnets.txt --out runs/sonnets --max-iters 300
  attnlab finetune gpt --model runs/shakespeare --data sonnets.txt --out runs/sonnets --max-iters 600 --resume

  # BERT: sequence classification, tagging or extractive QA (see `attnlab finetune bert --help`)
  attnlab finetune bert --task classify --model all-MiniLM-L6-v2 --data sentiment --out runs/sentiment

  # GPT-1-style classification (a head on the last token) from a TSV of text<TAB>label lines
  attnlab finetune gpt --task classify --model runs/shakespeare --data train.tsv --out runs/cls \\
      --labels-file labels.txt --epochs 3 --aux-lm-weight 0.5
"""

# Task-specific options, their defaults, and the task they belong to.
LM_ONLY = {"max_time": None, "warmup_iters": 20, "eval_interval": 100, "eval_iters": 20, "resume": False}
CLASSIFY_ONLY = {"epochs": 3, "labels_file": None, "val_data": None, "val_fraction": 0.1,
                 "aux_lm_weight": 0.5}
TASK_DEFAULTS = {
    "lm": {"lr": 3e-4, "batch_size": 16, "weight_decay": 0.1, "max_iters": 500},
    "classify": {"lr": 2.5e-4, "batch_size": 32, "weight_decay": 0.01, "max_iters": None},
}


def register(subparsers: argparse._SubParsersAction) -> None:
    finetune = add_command(
        subparsers, "finetune", example=EXAMPLE,
        help="fine-tune a saved model",
        description="Fine-tune a saved model of the family.",
    )
    models = finetune.add_subparsers(dest="architecture", metavar="MODEL", required=True)
    gpt = add_command(
        models, "gpt", example=EXAMPLE,
        help="continue pre-training a GPT, or fine-tune it as a classifier",
        description="--task lm (default): continue next-token training of the GPT in --model on the "
                    "text in --data, with the model's own tokenizer; the last 10% of the text is "
                    "the validation split. Writes a checkpoint directory like `attnlab train gpt` "
                    "(Ctrl-C saves; --resume continues exactly). "
                    "--task classify: GPT-1-style fine-tuning (Radford et al. 2018, section 3.2): a "
                    "linear head on the last token's hidden state, trained on the labelled TSV in "
                    "--data (text<TAB>label per line) with an auxiliary language-model loss; reports "
                    "accuracy on a held-out split and saves a GPT2ForSequenceClassification directory.",
    )
    gpt.add_argument("--model", required=True,
                     help="directory of the saved GPT and its tokenizer (not a .gguf file)")
    gpt.add_argument("--data", required=True,
                     help="UTF-8 text (--task lm) or TSV of text<TAB>label lines (--task classify)")
    gpt.add_argument("--out", required=True, help="directory for the fine-tuned model (not --model)")
    gpt.add_argument("--task", choices=["lm", "classify"], default="lm",
                     help="lm: continued pre-training (default); classify: sequence classification")
    optim = gpt.add_argument_group("optimisation (defaults: lm / classify)")
    optim.add_argument("--max-iters", type=int, default=None,
                       help="optimizer steps (default 500 / all of --epochs)")
    optim.add_argument("--lr", type=float, default=None, help="peak learning rate (default 3e-4 / 2.5e-4)")
    optim.add_argument("--batch-size", type=int, default=None, help="sequences per step (default 16 / 32)")
    optim.add_argument("--weight-decay", type=float, default=None, help="AdamW decay (default 0.1 / 0.01)")
    optim.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                       help="auto: bf16 autocast only where the hardware computes it natively")
    optim.add_argument("--device", default="auto", help="auto, cpu or cuda")
    optim.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    add_nproc_argument(optim)
    lm = gpt.add_argument_group("--task lm only")
    lm.add_argument("--max-time", type=float, default=None, help="stop (and save) after this many seconds")
    lm.add_argument("--warmup-iters", type=int, default=None, help="linear warm-up steps (default 20)")
    lm.add_argument("--eval-interval", type=int, default=None, help="steps between checkpoints (default 100)")
    lm.add_argument("--eval-iters", type=int, default=None,
                    help="validation batches per checkpoint (default 20)")
    lm.add_argument("--resume", action="store_true", default=None, help="continue the checkpoint in --out")
    cls = gpt.add_argument_group("--task classify only")
    cls.add_argument("--epochs", type=int, default=None, help="passes over the training examples (default 3)")
    cls.add_argument("--labels-file", default=None,
                     help="label names, one per line, in class order (default: the sorted labels of --data)")
    cls.add_argument("--val-data", default=None, help="held-out TSV (default: a split of --data)")
    cls.add_argument("--val-fraction", type=float, default=None,
                     help="share of --data held out when there is no --val-data (default 0.1)")
    cls.add_argument("--aux-lm-weight", type=float, default=None,
                     help="lambda of GPT-1's L3 = L2 + lambda L1 (default 0.5; 0 = no LM loss)")
    gpt.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gpt.set_defaults(run=run_gpt, parser=gpt)
    from attnlab.commands.finetune_bert import register_bert

    register_bert(models)


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill per-task defaults; options of the other task are an error, not silently ignored."""
    from attnlab.errors import AttnlabError

    other = CLASSIFY_ONLY if args.task == "lm" else LM_ONLY
    given = [name for name in other if getattr(args, name) is not None]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise AttnlabError(f"{flags} cannot be used with --task {args.task}; drop it or change --task.")
    own = LM_ONLY if args.task == "lm" else CLASSIFY_ONLY
    for name, value in {**TASK_DEFAULTS[args.task], **own}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def run_gpt(args: argparse.Namespace) -> int:
    from attnlab.training.distributed import training_device
    from attnlab.training.gpt_finetune import check_model_dir

    launched = launch_if_asked(args, ["finetune", "gpt"])
    if launched is not None:
        return launched
    args = _resolve(args)
    check_model_dir(args.model)  # a .gguf is refused before the data is read
    device = training_device(args.device)
    return _run_lm(args, device) if args.task == "lm" else _run_classify(args, device)


def _say(*args, **options) -> None:
    """print, on rank 0 only under torchrun."""
    from attnlab.training.distributed import launched_world

    if launched_world().is_main:
        print(*args, **options)


def _run_lm(args: argparse.Namespace, device) -> int:
    from pathlib import Path

    from attnlab.data import read_text
    from attnlab.training import LMTrainingConfig
    from attnlab.training.distributed import launched_world
    from attnlab.training.gpt_finetune import continue_pretraining
    from attnlab.training.plot import plot_loss_curve

    text = read_text(args.data)
    config = LMTrainingConfig(
        max_iters=args.max_iters, max_time=args.max_time, batch_size=args.batch_size, lr=args.lr,
        min_lr=args.lr / 10, warmup_iters=args.warmup_iters, weight_decay=args.weight_decay,
        eval_interval=args.eval_interval, eval_iters=args.eval_iters, seed=args.seed, dtype=args.dtype,
    )
    summary = continue_pretraining(
        args.model, text, args.out, config, resume=args.resume, device=device,
        progress=not args.no_progress, source=str(args.data),
    )
    out = Path(args.out)
    if launched_world().is_main:
        plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
    if summary["interrupted"]:
        _say(resume_hint(summary["steps"], out))
        return 130
    before = summary["val_loss_before"]
    change = f"{summary['val_loss']:.4f}"
    if before is not None:
        change = f"{before:.4f} (base model) -> {change}"
    _say(
        f"fine-tuned {args.model} to step {summary['steps']} on {summary['train_tokens']:,} tokens in "
        f"{summary['seconds']:.0f} s ({summary['tokens_per_second']:,.0f} tokens/s, {summary['dtype']}); "
        f"validation loss (whole split, {summary['val_tokens']:,} tokens) {change}"
    )
    _say(f"saved to {out}")
    return 0


def _run_classify(args: argparse.Namespace, device) -> int:
    from pathlib import Path

    from attnlab.data.labelled import label_set, read_labelled_tsv, read_labels, split_labelled
    from attnlab.models.gpt_classifier import GPTForSequenceClassification
    from attnlab.training.gpt_classify import ClassifierTrainingConfig, train_classifier
    from attnlab.training.gpt_finetune import check_out_dir, load_gpt_with_tokenizer

    out = Path(args.out).expanduser()
    check_out_dir(out, Path(args.model).expanduser(), resume=False, resumable=False)  # before any work
    examples = read_labelled_tsv(args.data)
    if args.val_data is not None:
        train, held_out = examples, read_labelled_tsv(args.val_data)
    else:
        train, held_out = split_labelled(examples, args.val_fraction, seed=args.seed)
    names = label_set(train + held_out, read_labels(args.labels_file) if args.labels_file else None)
    config = ClassifierTrainingConfig(
        epochs=args.epochs, max_iters=args.max_iters, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, lm_loss_weight=args.aux_lm_weight, seed=args.seed, dtype=args.dtype,
    )
    gpt, tokenizer = load_gpt_with_tokenizer(args.model)
    model = GPTForSequenceClassification.from_gpt(gpt, names).to(device)
    _say(f"classifier: {len(names)} labels ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}); "
          f"{len(train):,} training / {len(held_out):,} held-out examples; device {device}")
    summary = train_classifier(model, tokenizer, train, held_out, config, out_dir=out,
                               progress=not args.no_progress)
    cut = f"; {summary['truncated']} text(s) cut to the last {gpt.config.max_positions} tokens" \
        if summary["truncated"] else ""
    state = "interrupted" if summary["interrupted"] else "fine-tuned"
    _say(
        f"{state} for {summary['steps']} steps in {summary['seconds']:.0f} s; held-out accuracy "
        f"{summary['val_accuracy']:.4f} on {summary['val_examples']} examples (majority-class baseline "
        f"{summary['baseline']:.4f}){cut}"
    )
    _say(f"saved to {out}")
    return 130 if summary["interrupted"] else 0
