"""``attnlab train transformer``: train the encoder-decoder for translation.

Default data: the shipped English-French corpus (178k Tatoeba sentence pairs, CC-BY 2.0
FR; see :mod:`attnlab.data.parallel`), translated English -> French (``--reverse`` or
``--corpus fr-en`` for the other way; ``--corpus ding-en-de`` / ``ding-de-en`` for the
German-English Ding sentences).
"""

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
from attnlab.data.parallel import COMMAND_CORPORA, CORPUS_ALIASES

DEFAULT_CORPUS = "en-fr"

EXAMPLE = """examples:
  attnlab train transformer --out runs/en-fr                   # shipped EN-FR corpus, CPU, < 30 min
  attnlab evaluate --model runs/en-fr/averaged --baselines     # test BLEU and the two baselines
  attnlab translate --model runs/en-fr/averaged --text "The weather is nice today."
  attnlab train transformer --reverse --out runs/fr-en         # the same sentences, French -> English
  attnlab train transformer --corpus ding-en-de --out runs/en-de # the German-English Ding sentences
  attnlab train transformer --data deu.txt --out runs/en-de    # a Tatoeba export: EN<TAB>XX<TAB>credit
  attnlab train transformer --data pairs.tsv --vocab wordpiece --vocab-size 8000 --out runs/mine
  attnlab train transformer --data train.de --target train.en --preset transformer-small --out runs/mine
  attnlab train transformer --data pairs.tsv --reverse --out runs/back  # second column -> first
  attnlab train transformer --out runs/en-fr --resume          # continue after Ctrl-C
  attnlab train transformer --corpus numbers --out runs/numbers # einundzwanzig -> twenty-one
"""

# A laptop-CPU recipe for the shipped corpus: the paper's optimiser, schedule shape, dropout,
# label smoothing and checkpoint averaging; a smaller model, vocabulary, batches and warm-up,
# which suit 25 minutes of a CPU. The 14k training sentences (read 6 times an epoch) come with
# 254k dictionary words and phrases, which teach the vocabulary 14k sentences lack. Half the
# paper's learning rate (peak 1.4e-3 at d_model 128) gave a slightly lower validation loss per
# step; 3, 6 and 10 reads per sentence could not be told apart (docs/translation.md).
DEFAULTS = dict(preset="transformer-mini", sentence_repeats=6, vocab_size=4000, max_tokens=1024,
                warmup_steps=1000, lr_scale=0.5, dropout=0.1, max_steps=100_000, max_time=1500.0,
                eval_interval=1000, snapshot_interval=250, average_last=4)


def add_parser(models: argparse._SubParsersAction) -> None:
    parser = add_command(
        models, "transformer", example=EXAMPLE,
        help="an encoder-decoder for translation (Vaswani et al. 2017)",
        description="Train the Transformer of 'Attention Is All You Need' on sentence pairs: a joint "
                    "subword vocabulary, length-bucketed batches, label smoothing 0.1, Adam(0.9, 0.98, 1e-9) "
                    "with the warm-up / inverse-square-root schedule, and the average of the last N "
                    "checkpoints. Writes a MarianMTModel-layout directory (config.json, model.safetensors, "
                    "tokenizer.json) plus training_state.pt, metrics.jsonl, snapshots/ and averaged/. "
                    "Ctrl-C saves and stops; --resume continues exactly.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=None,
                      help="TSV of source<TAB>target lines (a third column, such as Tatoeba's attribution, "
                           "is ignored), or a source file with --target; split by source sentence like the "
                           "shipped corpus (default: the shipped English-French corpus)")
    data.add_argument("--target", default=None,
                      help="target file, one sentence per line, aligned with --data")
    data.add_argument("--corpus", choices=[*COMMAND_CORPORA, *CORPUS_ALIASES], default=DEFAULT_CORPUS,
                      help="the corpus used without --data: en-fr (default) or fr-en, 178k Tatoeba "
                           "sentence pairs, shipped (CC-BY 2.0 FR); ding-en-de (the paper's direction; old "
                           "name en-de) or ding-de-en (de-en), 15.7k sentence pairs of the Ding dictionary, "
                           "shipped; or numbers (German -> English number words, synthetic, needs "
                           "`pip install num2words`)")
    data.add_argument("--no-dictionary", action="store_true",
                      help="with the Ding corpus, train on its sentence pairs only, without the "
                           "254k words and phrases of the same dictionary that join them by default")
    data.add_argument("--sentence-repeats", type=int, default=DEFAULTS["sentence_repeats"],
                      help="with the dictionary, how often each training sentence pair is read per epoch "
                           "(default %(default)s), so the sentences keep their share beside the short pairs")
    data.add_argument("--reverse", action="store_true",
                      help="translate the other way round: the second column (or --target) into the first "
                           "(with the default corpus: French -> English); the held-out sentences stay "
                           "the same")
    data.add_argument("--vocab", choices=["bpe", "wordpiece"], default="bpe",
                      help="joint subword vocabulary learnt on both languages (default bpe)")
    data.add_argument("--vocab-size", type=int, default=DEFAULTS["vocab_size"],
                      help=f"joint source-target vocabulary size (default {DEFAULTS['vocab_size']})")
    model = parser.add_argument_group("model")
    model.add_argument("--preset", default=DEFAULTS["preset"],
                       help="transformer-mini (default: 2 + 2 layers, d_model 256), transformer-tiny, "
                            "transformer-small, transformer-base (the paper's), transformer-big")
    add_size_arguments(model, {"n_layers": "--n-layer", "n_heads": "--n-head"},
                       n_layers="encoder and decoder layers N", n_heads="attention heads h",
                       d_model="model width", d_ff="feed-forward width",
                       max_positions="longest sentence in tokens (longer training pairs are skipped)")
    model.add_argument("--dropout", type=float, default=DEFAULTS["dropout"],
                       help="P_drop (default 0.1, the paper's)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--max-tokens", type=int, default=DEFAULTS["max_tokens"],
                       help="padded tokens per batch and side (the paper: ~25000)")
    optim.add_argument("--max-steps", type=int, default=DEFAULTS["max_steps"],
                       help=f"optimizer steps (default {DEFAULTS['max_steps']})")
    optim.add_argument("--max-time", type=float, default=DEFAULTS["max_time"],
                       help="stop (and save) after this many seconds (default 1500)")
    optim.add_argument("--warmup-steps", type=int, default=DEFAULTS["warmup_steps"],
                       help="warm-up of eq. (3) (the paper: 4000)")
    optim.add_argument("--lr-scale", type=float, default=DEFAULTS["lr_scale"],
                       help="multiplies the eq. (3) learning rate (default %(default)s; the paper: 1)")
    optim.add_argument("--label-smoothing", type=float, default=0.1,
                       help="epsilon_ls of the paper's label smoothing (default 0.1)")
    optim.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm (default: no)")
    optim.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="fp32",
                       help="fp32 (default); bf16 autocast trained the small presets slower even on a CPU "
                            "with AMX (docs/translation.md), so try it only for large models or on a GPU")
    optim.add_argument("--device", default="auto", help="auto, cpu or cuda")
    optim.add_argument("--threads", default="auto",
                       help="CPU threads for torch; auto (default): the usable cores that other programs "
                            "leave idle right now (at least 1), since threads that wait for a busy core "
                            "slow small models down several times")
    optim.add_argument("--seed", type=int, default=1234, help="random seed (default 1234)")
    add_nproc_argument(optim, batch="--max-tokens")
    run = parser.add_argument_group("run")
    run.add_argument("--eval-interval", type=int, default=DEFAULTS["eval_interval"],
                     help="steps between evaluations and checkpoints")
    run.add_argument("--eval-sentences", type=int, default=200,
                     help="validation sentences translated for the BLEU shown at each evaluation")
    run.add_argument("--snapshot-interval", type=int, default=DEFAULTS["snapshot_interval"],
                     help="steps between the weight snapshots averaged into averaged/")
    run.add_argument("--average-last", type=int, default=DEFAULTS["average_last"],
                     help="snapshots averaged into averaged/")
    run.add_argument("--out", default="runs/transformer", help="checkpoint directory")
    run.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run_transformer, parser=parser)


def run_transformer(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from attnlab.data.joint_vocab import EOS_ID, PAD_ID, START_ID, train_joint_tokenizer
    from attnlab.data.parallel import command_data, corpus_name, save_direction
    from attnlab.errors import AttnlabError
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models.config import TransformerConfig
    from attnlab.models.transformer import Transformer
    from attnlab.training import distributed
    from attnlab.training.checkpoint import check_checkpoint_dir
    from attnlab.training.threads import resolve_threads
    from attnlab.training.translation import TranslationTrainingConfig, train_translation

    launched = launch_if_asked(args, ["train", "transformer"])
    if launched is not None:
        return launched
    device = distributed.training_device(args.device)
    world = distributed.join(device, timeout=300.0)
    say = print if world.is_main else (lambda *_, **__: None)
    if not (world.distributed and args.threads == "auto"):  # torchrun's OMP_NUM_THREADS shares the cores
        torch.set_num_threads(resolve_threads(args.threads))
    out = Path(args.out)
    # Before reading the corpus, which takes seconds; rank 0 alone reads and writes --out.
    distributed.on_main(world, lambda: check_checkpoint_dir(out, args.resume))
    data = command_data(args.data, args.target, args.corpus, args.reverse, not args.no_dictionary,
                        args.sentence_repeats)
    splits, train_pairs = data.splits, data.training
    valid_pairs = splits["valid"]
    if len(splits["train"]) < 10 or not valid_pairs:
        raise AttnlabError(
            f"{args.data} has {len(data.all_pairs)} pairs; training needs at least 100 (10% are held out "
            f"for validation and 10% for test)."
        )

    def vocabulary() -> Tokenizer:
        if args.resume:
            return Tokenizer.from_dir(out)  # the vocabulary the model was trained with
        return train_joint_tokenizer([sentence for pair in train_pairs for sentence in pair], args.vocab,
                                     args.vocab_size)

    # Rank 0 makes it and hands it to the others (a trained vocabulary can break ties differently).
    tokenizer = distributed.on_main(world, vocabulary)
    overrides = given(args, *SIZE_OPTIONS, "dropout")
    config = TransformerConfig.from_preset(
        args.preset, vocab_size=tokenizer.vocab_size, pad_token_id=PAD_ID, eos_token_id=EOS_ID,
        decoder_start_token_id=START_ID, **overrides,
    )
    training = TranslationTrainingConfig(
        max_steps=args.max_steps, max_time=args.max_time, max_tokens=args.max_tokens,
        warmup_steps=args.warmup_steps, lr_scale=args.lr_scale, label_smoothing=args.label_smoothing,
        grad_clip=args.grad_clip, eval_interval=args.eval_interval, eval_sentences=args.eval_sentences,
        snapshot_interval=args.snapshot_interval, average_last=args.average_last, seed=args.seed,
        dtype=args.dtype,
    )
    torch.manual_seed(args.seed)
    model = Transformer(config).to(device)
    corpus = data.name
    if len(train_pairs) > len(splits["train"]):
        repeats = f" x {args.sentence_repeats}" if args.sentence_repeats > 1 else ""
        corpus += (f"; training on {len(splits['train']):,} sentence pairs{repeats} + "
                   f"{len(train_pairs) - len(splits['train']) * args.sentence_repeats:,} dictionary pairs")
    say(
        f"Transformer: {config.n_layers}+{config.n_decoder_layers} layers, {config.n_heads} heads, "
        f"d_model {config.d_model}, d_ff {config.d_ff}, {model.num_parameters():,} parameters; "
        f"joint {tokenizer.kind} vocabulary of {tokenizer.vocab_size}; {corpus}: "
        f"{len(train_pairs):,} training / {len(valid_pairs):,} validation / {len(splits['test']):,} "
        f"test pairs; device {device}, {torch.get_num_threads()} thread(s)"
    )
    summary = train_translation(
        model, tokenizer, train_pairs, valid_pairs, training, out_dir=out, resume=args.resume,
        progress=not args.no_progress,
    )
    if not world.is_main:
        return 130 if summary["interrupted"] else 0
    recorded_corpus = None if args.data else corpus_name(args.corpus)
    save_direction(out, recorded_corpus, args.reverse)
    if (out / "averaged").is_dir():
        save_direction(out / "averaged", recorded_corpus, args.reverse)
    if summary["interrupted"]:
        print(resume_hint(summary["steps"], out))
        return 130
    if summary["dropped_too_long"]:
        print(f"({summary['dropped_too_long']} training pairs longer than {config.max_positions} tokens "
              f"were left out)")
    print(
        f"trained {summary['steps']} steps ({summary['epochs']} epochs) in {summary['seconds']:.0f} s "
        f"({summary['tokens_per_second']:,.0f} tokens/s); train loss {summary['train_loss']:.3f}; "
        f"validation loss {summary['val_loss']:.3f} (last) / {summary['averaged_val_loss']:.3f} (averaged); "
        f"validation BLEU, greedy, {args.eval_sentences} sentences: {summary['val_bleu_greedy']:.2f} "
        f"(last) / {summary['averaged_val_bleu_greedy']:.2f} (average of "
        f"{len(summary['averaged_snapshots'])})"
    )
    print(f"saved to {out} (last) and {out / 'averaged'} (averaged)")
    flags = f" --corpus {args.corpus}" if args.data is None and args.corpus != DEFAULT_CORPUS else ""
    flags += "" if args.data is None else f" --data {args.data}"
    flags += f" --target {args.target}" if args.target else ""
    flags += " --no-dictionary" if args.no_dictionary and args.data is None else ""
    flags += " --reverse" if args.reverse else ""
    print(f"test BLEU: attnlab evaluate --model {out / 'averaged'}{flags} --split test --baselines")
    return 0
