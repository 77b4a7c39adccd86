"""``attnlab evaluate``: corpus BLEU of a Transformer's translations, with sacreBLEU."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command
from attnlab.commands.train_transformer import DEFAULT_CORPUS
from attnlab.commands.translate import add_decoding_arguments
from attnlab.data.parallel import COMMAND_CORPORA, CORPUS_ALIASES

EXAMPLE = """examples:
  attnlab evaluate --model runs/en-fr/averaged                       # shipped corpus, test split
  attnlab evaluate --model runs/en-fr/averaged --baselines           # + copy and word-by-word baselines
  attnlab evaluate --model runs/en-fr/averaged --examples 5          # + 5 translations (fixed seed)
  attnlab evaluate --model runs/de-en/averaged --corpus ding-de-en   # a model trained German -> English
  attnlab evaluate --model runs/mine/averaged --data pairs.tsv --split test --beam 4
  attnlab evaluate --model runs/mine/averaged --data test.de --target test.en --output hyp.en

Corpus BLEU with sacreBLEU's default 13a tokenisation; the signature printed with the
score says exactly how it was computed. A source sentence that the data pairs with
several translations (Tatoeba has up to 32 French ones for one English sentence) is
translated once and scored two ways, side by side: against all its translations
(multi-reference BLEU, nrefs:var) and against the first one in the file (single
reference, nrefs:1). --output writes one translation per distinct source sentence.
A source longer than the model's positions is truncated (its first max_positions - 1
tokens and EOS are read) and a warning says how many were; its reference is still
scored. With --baselines, each baseline's score comes with a 95% interval and the
p-value of paired bootstrap resampling (Koehn 2004) against the model (how sure the gap
is, given the test sentences), and the model's BLEU is given as a multiple of word by
word's.
"""
BOOTSTRAP_SAMPLES = 1000
EXAMPLES_SEED = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "evaluate", example=EXAMPLE, model="model directory",
        help="BLEU of a Transformer's translations (sacreBLEU)",
        description="Translate the source side of sentence pairs and score the translations "
                    "against the target side with sacreBLEU corpus BLEU.",
    )
    parser.add_argument("--data", default=None,
                        help="TSV of source<TAB>target[<TAB>attribution] lines, or a source file with "
                             "--target (default: the corpus the model was trained on)")
    parser.add_argument("--target", default=None, help="reference file aligned with --data")
    parser.add_argument("--corpus", choices=[*COMMAND_CORPORA, *CORPUS_ALIASES], default=None,
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
    parser.add_argument("--examples", type=int, default=0, metavar="N",
                        help="also print N translations beside their references, picked by a fixed seed "
                             "(the same N sentences every time; default 0)")
    add_decoding_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import random
    import sys
    import time
    from pathlib import Path

    from tqdm.auto import tqdm

    from attnlab.commands.loading import load_translator
    from attnlab.commands.translate import check_decoding_arguments, warn_truncated
    from attnlab.data.parallel import command_data, corpus_name, group_references, load_direction
    from attnlab.errors import AttnlabError
    from attnlab.evaluation.baselines import WordByWordTranslator, copy_baseline
    from attnlab.evaluation.bleu import corpus_bleu, paired_bootstrap
    from attnlab.files import check_writable
    from attnlab.inference.decoding import translate

    check_decoding_arguments(args)
    if args.examples < 0:
        raise AttnlabError(f"--examples must be >= 0. Got {args.examples} instead.")
    if args.output is not None:  # now, not after translating everything
        check_writable(args.output, "--output")
    recorded = load_direction(args.model)
    corpus = corpus_name(args.corpus or (recorded or {}).get("corpus") or DEFAULT_CORPUS)
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
    model, tokenizer = load_translator(args.model, weights=args.weights, dtype=args.dtype)
    limit = model.config.max_positions
    if args.max_new_tokens is not None and args.max_new_tokens > limit:  # before the header and the work
        raise AttnlabError(f"--max-new-tokens {args.max_new_tokens} exceeds the decoder's {limit} positions; "
                           f"ask for at most {limit}.")
    # Each distinct source is translated once and scored against all its translations.
    sources, references = group_references(chosen)
    first_references = [refs[0] for refs in references]
    several = len(chosen) > len(sources)
    print(f"{data.name}, {split} split: {len(chosen):,} sentence pairs"
          + (f", {len(sources):,} distinct source sentences ({len(chosen) / len(sources):.2f} references "
             f"each)" if several else "")
          + f"; beam {args.beam}, length penalty {args.length_penalty}")
    started = time.perf_counter()
    with tqdm(total=len(sources), desc="translating", unit="sent") as bar:
        hypotheses, truncated = translate(
            model, tokenizer, sources, beam=args.beam, length_penalty=args.length_penalty,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, on_batch=bar.update,
        )
    seconds = time.perf_counter() - started
    warn_truncated(truncated, model.config.max_positions)
    if args.output is not None:
        Path(args.output).write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    # (label, references) of each BLEU column: all references, then the first one alone.
    columns = [("all references", references), ("first reference", first_references)] if several \
        else [("BLEU", first_references)]
    results = [corpus_bleu(hypotheses, refs) for _, refs in columns]
    header = "".join(f"{label:<30}" for label, _ in columns)
    print(f"{'':<15}{header}")
    if not args.baselines:
        print(f"{'model':<15}" + "".join(f"{r.score:<30.2f}" for r in results) + f"({seconds:.0f} s)")
    else:
        rows = [("copy baseline", copy_baseline(sources), "")]
        if split != "all":
            learnt_from = data.training
            word_by_word = WordByWordTranslator().fit(learnt_from)
            rows.append(("word-by-word", [word_by_word.translate(s) for s in sources],
                         f"(IBM Model 1 on {len(learnt_from):,} training pairs)"))
        tests = [[paired_bootstrap(hypotheses, guesses, refs, BOOTSTRAP_SAMPLES) for _, refs in columns]
                 for _, guesses, _ in rows]
        print(f"{'model':<15}" + "".join(f"{f'{t.system_score:.2f} ± {t.system_ci:.2f}':<30}"
                                           for t in tests[0]) + f"({seconds:.0f} s)")
        for (label, _, note), row_tests in zip(rows, tests, strict=True):
            cells = [f"{t.other_score:.2f} ± {t.other_ci:.2f}, p = {t.p_value:.3f}" for t in row_tests]
            print(f"{label:<15}" + "".join(f"{cell:<30}" for cell in cells) + note)
        if split == "all":
            print("word-by-word   (skipped: it learns from the training split; pass --split test)")
        else:
            ratios = [t.system_score / t.other_score if t.other_score > 0 else float("inf") for t in tests[1]]
            print("model / word-by-word: " + ", ".join(
                f"{ratio:.2f}x ({label})" for ratio, (label, _) in zip(ratios, columns, strict=True)))
        print(f"(± 95% interval; p: the chance of the model's gap to that baseline if both were equally "
              f"good, by paired bootstrap resampling, Koehn 2004: {BOOTSTRAP_SAMPLES:,} draws of the "
              f"{len(sources):,} sentences)")
    for (label, _), result in zip(columns, results, strict=True):
        prefix = f"{label}: " if several else ""
        print(f"{prefix}{result.detail}")
        print(f"{prefix}signature: {result.signature}")
    shown = min(args.examples, len(sources))
    if shown:
        print(f"\n{shown} translations picked with seed {EXAMPLES_SEED}:")
        for index in sorted(random.Random(EXAMPLES_SEED).sample(range(len(sources)), shown)):
            print(f"  source:     {sources[index]}\n  attnlab:    {hypotheses[index]}")
            for number, reference in enumerate(references[index]):
                print(f"  {'reference:' if number == 0 else '':<12}{reference}")
    return 0
