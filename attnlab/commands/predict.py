"""``attnlab predict``: a fine-tuned classifier, tagger or QA model on new text."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command, add_dtype_argument, add_text_inputs

EXAMPLE = """examples (models saved by `attnlab finetune bert`; see its --help):
  attnlab predict --model runs/sentiment --text "what a lovely day"
  attnlab predict --model runs/sentiment --input tweets.txt --json
  attnlab predict --model runs/wnut16 --text "off to new york with taylor swift"
  attnlab predict --model runs/plays-qa --question "Who says 'the king is dead'?" \\
      --context "Ross: the king is dead. Lennox: a good day."
  attnlab predict --model runs/plays-qa --input questions.jsonl

output, one line per input, in input order:
  classifier (finetune bert --task classify, finetune gpt --task classify): label<TAB>probability
  tagger (finetune bert --task tag): word/TAG word/TAG ...
  QA model (finetune bert --task qa): answer<TAB>start<TAB>end<TAB>score (characters of the context)
  --json: one JSON object per line, with every label's probability, each word's character
  offsets, the answer's exact text.
--input FILE ('-' reads standard input): one text per line; for a QA model one JSON object
{"question": ..., "context": ...} per line. Long inputs are cut, chunked or windowed as
fine-tuning did (docs/bert.md).
"""


# Measured on a MiniLM sentiment classifier (`attnlab finetune bert`, 60 steps) over 2,000 tweets,
# 2 threads, 2-core Zen 5: 14.1 s fp32, 5.9 s bf16 (wall, loading included); the same label for all
# 2,000, probabilities moved by at most 0.0024.
BF16_HELP = "; 2.4x faster on 2,000 tweets here, labels unchanged, probabilities moved by <= 0.003"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "predict", example=EXAMPLE, model="directory of a fine-tuned model",
        help="label, tag or answer new text with a fine-tuned model",
        description="Run a model saved by `attnlab finetune` on new text: a classifier gives a label "
                    "and its probability, a tagger a tag per word, a QA model the answer span in the "
                    "context. The task is read from the model's config.json.",
    )
    add_text_inputs(parser, text="a text to classify or tag (repeatable)",
                    input="a file of inputs, one per line ('-' reads standard input)")
    parser.add_argument("--question", default=None, help="QA: the question (with --context)")
    parser.add_argument("--context", default=None, help="QA: the passage that holds the answer")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, with every detail")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs run together (default 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_dtype_argument(parser, bf16=BF16_HELP)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar of --input")
    parser.set_defaults(run=run)


def _inputs(args: argparse.Namespace, task: str) -> list:
    """The inputs the flags give, checked against the model's task: each flag's own value
    first, then how the flags combine."""
    from attnlab.data.inputs import Question
    from attnlab.errors import AttnlabError

    found = _read_input(args.input, task) if args.input is not None else None
    for flag, values in (("--text", args.text or []), ("--question", [args.question]),
                         ("--context", [args.context])):
        if any(value is not None and not value.strip() for value in values):
            raise AttnlabError(f"{flag} is empty; give some words.")
    if (args.question is None) != (args.context is None):
        raise AttnlabError("--question and --context go together (a QA model answers a question "
                           "from a context).")
    if task == "qa" and args.text is not None:
        raise AttnlabError(f"--text is for a classifier or tagger; {args.model} is a QA model: give "
                           f'--question Q --context C, or --input FILE of JSON lines {{"question": ..., '
                           f'"context": ...}}.')
    if task != "qa" and args.question is not None:
        kind = "tagger" if task == "tag" else "classifier"
        raise AttnlabError(f"--question / --context are for a QA model; {args.model} is a {kind}: "
                           f"give --text TEXT or --input FILE.")
    given = [flag for flag, value in (("--text", args.text), ("--input", args.input),
                                      ("--question", args.question)) if value is not None]
    if len(given) != 1:
        raise AttnlabError("Give the inputs with one of --text TEXT, --input FILE or "
                           f"--question Q --context C{'; not ' + ' and '.join(given) if given else ''}.")
    if found is not None:
        return found
    return args.text if args.text is not None else [Question(args.question, args.context)]


def _read_input(name: str, task: str) -> list:
    """The inputs of --input FILE ('-': standard input)."""
    from pathlib import Path

    from attnlab.data import read_input
    from attnlab.data.inputs import parse_inputs

    source = "standard input" if name == "-" else str(Path(name).expanduser())
    return parse_inputs(read_input(name), task, source)


def _line(result, as_json: bool) -> str:
    """One output line of a Classification, Tagging or Answer."""
    import json
    from dataclasses import asdict

    from attnlab.training.predict import Answer, Classification

    if as_json:
        return json.dumps(asdict(result), ensure_ascii=False)
    if isinstance(result, Classification):
        return f"{result.label}\t{result.probability:.4f}"
    if isinstance(result, Answer):
        score = "nan" if result.score is None else f"{result.score:.4f}"
        return f"{' '.join(result.answer.split())}\t{result.start}\t{result.end}\t{score}"
    return " ".join(f"{w.word}/{w.tag}" for w in result.words)


def run(args: argparse.Namespace) -> int:
    import sys

    from attnlab.errors import AttnlabError
    from attnlab.inference.probe import resolve_dtype
    from attnlab.training.distributed import training_device
    from attnlab.training.predict import load_predictor, model_task, predict

    if args.batch_size < 1:
        raise AttnlabError(f"--batch-size must be >= 1. Got {args.batch_size} instead.")
    if not args.model.strip():
        raise AttnlabError("--model is empty; give the directory of a fine-tuned model.")
    device = training_device(args.device)
    dtype = resolve_dtype(args.dtype, device.type)  # a bf16 the CPU would emulate is refused here
    task = model_task(args.model)  # from config.json: wrong flags are refused before the weights load
    inputs = _inputs(args, task)
    predictor = load_predictor(args.model, device, dtype=dtype)
    results = predict(predictor, inputs, batch_size=args.batch_size,
                      progress=args.input is not None and not args.no_progress)
    cut = sum(getattr(r, "truncated", False) for r in results)
    if cut:
        print(f"attnlab: warning: {cut} text(s) longer than the model's {predictor.max_len} tokens were cut "
              f"to fit (as in fine-tuning).", file=sys.stderr)
    for result in results:
        print(_line(result, args.json))
    return 0
