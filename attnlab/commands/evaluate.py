"""``attnlab evaluate``: corpus BLEU of a Transformer's translations, with sacreBLEU."""

from __future__ import annotations

import argparse

from attnlab.commands.train_transformer import DEFAULT_CORPUS
from attnlab.commands.translate import add_decoding_arguments
from attnlab.data.parallel import COMMAND_CORPORA

EXAMPLE = """examples:
  attnlab evaluate --model runs/en-de/averaged                       # shipped corpus, test split
  attnlab evaluate --model runs/en-de/averaged --baselines           # + copy and word-by-word baselines
  attnlab evaluate --model runs/de-en/averaged --corpus de-en        # a model trained German -> English
  attnlab evaluate --model runs/mine/averaged --data pairs.tsv --split test --beam 4
  attnlab evaluate --model runs/mine/averaged --data test.de --target test.en --output hyp.en

Corpus BLEU with sacreBLEU's default 13a tokenisation, one reference per sentence; the
signature printed with the score says exactly how it was computed. A source longer than
the model's positions is truncated (its first max_positions - 1 tokens and EOS are read)
and a warning says how many were; its reference is still scored. With --baselines, each
baseline's score comes with a 95% interval and the p-value of paired bootstrap resampling
(Koehn 2004) against the model: how sure the gap is, given 1,000 test sentences.
"""
BOOTSTRAP_SAMPLES = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="BLEU of a Transformer's translations (sacreBLEU)",
        description="Translate the source side of sentence pairs and score the translations "
                    "against the target side with sacreBLEU corpus BLEU.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--data", default=None,
                        help="TSV of source<TAB>target lines, or a source file with --target "
                             "(default: the shipped German-English corpus)")
    parser.add_argument("--target", default=None, help="reference file aligned with --data")
    parser.add_argument("--corpus", choices=list(COMMAND_CORPORA), default=None,
                        help="the corpus used without --data (as for `attnlab train transformer`; default: "
                             f"the one the model was trained on, else {DEFAULT_CORPUS})")
    parser.add_argument("--split", choices=["all", "train", "valid", "test"], default=None,
                        help="which part of the data (default: test for the shipped corpus, all for --data; "
                             "the splits are those `attnlab train transformer` makes)")
    parser.add_argument("--baselines", action="store_true",
                        help="also score copying the source, and a word-by-word translation by the target "
                             "word most often aligned (IBM Model 1) in the training split")
    parser.add_argument("--no-dictionary", action="store_true",
                        help="fit the word-by-word baseline on the shipped corpus's training sentences only, "
                             "as for a model trained with --no-dictionary (default: the sentences and the "
                             "dictionary pairs, the data the model learns from)")
    parser.add_argument("--reverse", action="store_true",
                        help="score translations the other way round, as for a model trained with --reverse")
    parser.add_argument("--output", default=None, metavar="FILE", help="write the translations here")
    add_decoding_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import time
    from pathlib import Path

    from tqdm.auto import tqdm

    from attnlab.baselines import WordByWordTranslator, copy_baseline
    from attnlab.bleu import corpus_bleu, paired_bootstrap
    from attnlab.commands.translate import check_decoding_arguments, load_translator, warn_truncated
    from attnlab.data.parallel import command_data, load_direction
    from attnlab.decoding import translate
    from attnlab.errors import AttnlabError

    check_decoding_arguments(args)
    recorded = load_direction(args.model)
    corpus = args.corpus or (recorded or {}).get("corpus") or DEFAULT_CORPUS
    if recorded is not None and args.data is None and (recorded["corpus"], recorded["reverse"]) != (
            corpus, args.reverse):
        trained_on = recorded["corpus"] or "--data"
        print(f"attnlab: warning: {args.model} was trained on {trained_on}"
              f"{' --reverse' if recorded['reverse'] else ''}, but is scored on --corpus {corpus}"
              f"{' --reverse' if args.reverse else ''}.", file=sys.stderr)
    # The dictionary pairs (2 MB to read) only feed the word-by-word baseline.
    data = command_data(args.data, args.target, corpus, args.reverse,
                        dictionary=args.baselines and not args.no_dictionary)
    split = args.split or ("test" if args.data is None else "all")
    chosen = data.all_pairs if split == "all" else data.splits[split]
    if not chosen:
        raise AttnlabError(f"The {split} split of {args.data} is empty; use --split all or more data.")
    model, tokenizer = load_translator(args.model)
    sources, references = [s for s, _ in chosen], [t for _, t in chosen]
    print(f"{data.name}, {split} split: {len(chosen):,} sentence pairs; beam {args.beam}, "
          f"length penalty {args.length_penalty}")
    started = time.perf_counter()
    with tqdm(total=len(sources), desc="translating", unit="sent") as bar:
        hypotheses, truncated = translate(
            model, tokenizer, sources, beam=args.beam, length_penalty=args.length_penalty,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, on_batch=bar.update,
        )
    seconds = time.perf_counter() - started
    warn_truncated(truncated, model.config.max_positions)
    if args.output:
        Path(args.output).write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    result = corpus_bleu(hypotheses, references)
    if not args.baselines:
        print(f"model          BLEU {result.score:6.2f}   ({seconds:.0f} s)")
    else:
        rows = [("copy baseline", "copy", copy_baseline(sources), "")]
        if split != "all":
            learnt_from = data.training
            word_by_word = WordByWordTranslator().fit(learnt_from)
            rows.append(("word-by-word", "word-by-word", [word_by_word.translate(s) for s in sources],
                         f"   (IBM Model 1 on {len(learnt_from):,} training pairs)"))
        tests = [paired_bootstrap(hypotheses, guesses, references, BOOTSTRAP_SAMPLES)
                 for _, _, guesses, _ in rows]
        print(f"model          BLEU {result.score:6.2f} ± {tests[0].system_ci:.2f}   ({seconds:.0f} s)")
        for (label, short, _, note), test in zip(rows, tests, strict=True):
            print(f"{label:<14} BLEU {test.other_score:6.2f} ± {test.other_ci:.2f}   model - {short} "
                  f"{test.system_score - test.other_score:+.2f}, p = {test.p_value:.3f}{note}")
        if split == "all":
            print("word-by-word   (skipped: it learns from the training split; pass --split test)")
        print(f"(± 95% interval and p-value of paired bootstrap resampling, Koehn 2004: "
              f"{BOOTSTRAP_SAMPLES:,} draws of the {len(chosen):,} sentences)")
    print(f"{result.detail}")
    print(f"signature: {result.signature}")
    return 0
