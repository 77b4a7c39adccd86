"""The bad values the flag fuzz (test_flag_fuzz.py) feeds each flag of the CLI.

Not a test module: test_flag_fuzz.py loads it by path. Three parts:

- ``BASE``: per command, a valid run that finishes in about a second, so that a bad
  value is the only thing wrong with the command line;
- ``BAD``: per command and flag, values that argparse accepts and attnlab itself must
  refuse (argparse's own checks -- a non-number, an unknown choice, a value given to a
  switch -- are derived from the parser, for every flag, by test_flag_fuzz.py);
- ``NOTHING_BAD``: the flags with no value that argparse accepts and attnlab should
  refuse, each with the reason.

A value is a string (``--flag value``), ``SWITCH`` (the flag alone), or a tuple of tokens
put on the command line as they are (other flags the case needs; a flag named there
replaces the same flag of ``BASE``). ``{name}`` is replaced by a path from the
``fuzz_paths`` fixture (``{out}`` by a fresh directory for each case).
"""

from __future__ import annotations

SWITCH = None

# Sizes that train in about a second; each value here is valid.
_GPT = {"--data": "{corpus}", "--n-layers": "1", "--n-heads": "2", "--d-model": "16", "--max-positions": "8",
        "--batch-size": "2", "--max-iters": "1", "--eval-iters": "1", "--sample-tokens": "2",
        "--dtype": "fp32", "--device": "cpu", "--no-progress": SWITCH, "--out": "{out}"}
_MT = {"--data": "{pairs}", "--n-layers": "1", "--n-heads": "2", "--d-model": "16", "--d-ff": "16",
       "--max-positions": "40", "--vocab-size": "300", "--max-tokens": "200", "--max-steps": "1",
       "--warmup-steps": "4", "--eval-interval": "3", "--eval-sentences": "1", "--snapshot-interval": "3",
       "--average-last": "1", "--threads": "1", "--device": "cpu", "--no-progress": SWITCH, "--out": "{out}"}
_BERT = {"--data": "{speeches}", "--speeches-per-document": "1", "--n-layers": "1", "--n-heads": "2",
         "--d-model": "16", "--d-ff": "32", "--vocab-size": "100", "--max-seq-len": "16", "--batch-size": "2",
         "--max-iters": "1", "--eval-batches": "1", "--dtype": "fp32", "--no-progress": SWITCH,
         "--out": "{out}"}
_FT_GPT = {"--model": "{gpt}", "--data": "{corpus}", "--out": "{out}", "--max-iters": "1",
           "--batch-size": "2", "--dtype": "fp32", "--device": "cpu", "--no-progress": SWITCH}
_FT_BERT = {"--task": "classify", "--model": "{bert}", "--data": "{bert_tsv}", "--out": "{out}",
            "--max-steps": "1", "--epochs": "1", "--batch-size": "4", "--max-seq-len": "16",
            "--dtype": "fp32", "--device": "cpu", "--no-progress": SWITCH}
BASE: dict[str, dict] = {
    "train gpt": _GPT,
    "train transformer": _MT,
    "train bert": _BERT,
    "generate": {"--model": "{gpt}", "--prompt": "ROMEO", "--max-new-tokens": "2"},
    "values": {"--model": "{gpt}", "--text": "ROMEO"},
    "perceptron": {"--dataset": "and"},
    "finetune gpt": _FT_GPT,
    "finetune bert": _FT_BERT,
    "fewshot": {"--model": "{gpt}", "--data": "{labelled}", "--shots": "0", "--n-test": "2"},
    "inspect": {"--model": "{gpt}", "--text": "ROMEO"},
    "compare": {"--no-measure": SWITCH, "--d-model": "16", "--n-layers": "1", "--n-heads": "2",
                "--vocab": "50", "--seq-len": "8", "--batch": "1", "--repeats": "1"},
    "cite": {},
    # A valid bench runs for minutes: every bad value must be refused before any timing.
    "bench": {"suites": "decode", "--rounds": "1", "--new-tokens": "1"},
    "translate": {"--model": "{mt}", "--text": "Where is the station?", "--beam": "1"},
    "evaluate": {"--model": "{mt}", "--data": "{few_pairs}", "--beam": "1"},
    "predict": {"--model": "{classifier}", "--text": "a good day", "--device": "cpu"},
    "embed": {"--model": "{bert}", "--text": "ROMEO", "--dtype": "fp32", "--no-progress": SWITCH},
}

# Shared lists, for the flags that mean the same on every command.
COUNT = ["0", "-1"]                   # a count that must be >= 1
NON_NEGATIVE = ["-1"]                 # a count where 0 is fine
SEED = ["-1", "99999999999999999999"]
RATE = ["0", "-1", "nan", "inf"]     # learning rates
SECONDS = ["-1", "nan"]
FRACTION = ["-0.1", "1.5", "nan"]
DECAY = ["-1", "nan", "inf"]
DEVICE = ["tpu", ""]
READ_TEXT = ["{missing}", "{dir}", "{empty}", "{binary}"]
MODEL = ["{missing}", "{dir}", "{binary}", ""]
OUT_DIR = ["{file}", "{under_file}"]
OUT_FILE = ["{under_file}", "{dir}", ""]
LONG = "ROMEO " * 8  # 48 characters: more than the tiny GPT's 16 positions (without --truncate)


def picture(suffix: str) -> list[str]:
    """A picture's path under a file, a directory named like a picture, an empty name."""
    return [f"{{file}}/x{suffix}", f"{{tmp}}/as-dir{suffix}", ""]


def encoder_decoder(flag: str, values: list[str]) -> list[tuple[str, ...]]:
    """inspect: flags checked against the layers, heads and stacks of the tiny translation model."""
    return [("--model", "{mt}", "--text", "hello", "--target", "Bonjour", flag, value) for value in values]


def classify(flag: str, values: list[str]) -> list[tuple[str, ...]]:
    """finetune gpt: flags of --task classify (refused with the default --task lm)."""
    return [("--task", "classify", "--data", "{labelled}", flag, value) for value in values]

BAD: dict[str, dict[str, list]] = {
    "train gpt": {
        "--data": READ_TEXT,
        # The size of a BPE vocabulary: --tokenizer char (the default) has no size to give.
        "--vocab-size": [("--tokenizer", "bpe", "--vocab-size", value) for value in ("0", "-1", "10")],
        "--tokenizer-dir": ["{missing}", "{dir}", "{file}"], "--preset": ["nope", ""],
        "--n-layers": COUNT, "--n-heads": [*COUNT, "3"], "--d-model": [*COUNT, "15"], "--d-ff": COUNT,
        "--max-positions": COUNT,
        "--dropout": ["-0.1", "1", "nan"], "--batch-size": COUNT, "--grad-accum": COUNT,
        "--max-iters": COUNT, "--max-time": SECONDS, "--lr": RATE, "--min-lr": ["-1", "nan", "inf"],
        "--warmup-iters": NON_NEGATIVE, "--weight-decay": DECAY, "--beta2": ["-0.1", "1", "1.5", "nan"],
        "--device": DEVICE, "--seed": SEED, "--eval-interval": COUNT, "--eval-iters": COUNT,
        "--out": OUT_DIR, "--resume": [SWITCH], "--sample-tokens": NON_NEGATIVE, "--prompt": ["日本語ü"],
        "--nproc": ["0", "-1", "100000"], "--dist-timeout": ["0", "-1", "nan"],
    },
    "train transformer": {
        "--data": READ_TEXT, "--target": ["{missing}", "{binary}"], "--sentence-repeats": COUNT,
        "--vocab-size": ["0", "-1", "5"], "--preset": ["nope", ""], "--n-layers": COUNT,
        "--n-heads": [*COUNT, "3"], "--d-model": [*COUNT, "15"], "--d-ff": COUNT, "--max-positions": COUNT,
        "--dropout": ["-0.1", "1", "nan"], "--max-tokens": COUNT, "--max-steps": COUNT,
        "--max-time": SECONDS, "--warmup-steps": COUNT, "--lr-scale": RATE,
        "--label-smoothing": ["-0.1", "1", "nan"], "--grad-clip": ["0", "-1", "nan"], "--device": DEVICE,
        "--threads": ["0", "-1", "abc", ""], "--seed": SEED, "--eval-interval": COUNT,
        "--eval-sentences": NON_NEGATIVE, "--snapshot-interval": COUNT, "--average-last": COUNT,
        "--out": OUT_DIR, "--resume": [SWITCH], "--nproc": ["0", "-1", "100000"],
    },
    "train bert": {
        "--data": READ_TEXT, "--speeches-per-document": COUNT, "--vocab-size": ["0", "-1", "5"],
        "--init-from": ["{missing}", "{dir}", "{gpt}"], "--preset": ["nope", ""], "--n-layers": COUNT,
        "--n-heads": [*COUNT, "3"], "--d-model": [*COUNT, "15"], "--d-ff": COUNT, "--max-seq-len": COUNT,
        "--batch-size": COUNT, "--max-iters": COUNT, "--max-time": SECONDS, "--lr": RATE,
        "--warmup-iters": NON_NEGATIVE, "--eval-interval": COUNT, "--eval-batches": COUNT, "--seed": SEED,
        "--out": OUT_DIR, "--resume": [SWITCH], "--dropout": ["-0.1", "1", "nan"], "--device": DEVICE,
        "--nproc": ["0", "-1", "100000"],
    },
    "generate": {
        "--model": [*MODEL, "{bert}", "{mt}"], "--chat": [SWITCH], "--system": ["be brief"],
        "--prompt": ["日本語ü", ""], "--max-new-tokens": NON_NEGATIVE, "--temperature": ["-1", "nan", "inf"],
        "--top-k": COUNT, "--top-p": ["0", "1.5", "-0.1", "nan"], "--repetition-penalty": ["0", "-1", "nan"],
        "--seed": SEED,
    },
    "values": {
        "--model": [*MODEL, "{mt}"], "--text": ["", "日本語ü", LONG], "--layer": ["-1", "5"],
        "--head": ["-1", "2"], "--dims": COUNT, "--max-tokens": COUNT,
    },
    "perceptron": {
        "--dataset": ["nope", "{missing}", "{dir}", "{empty}", "{binary}"],
        "--label": [("--dataset", "{csv}", "--label", "nope"), "label"],
        "--positive-class": ["nope"],
        # The sizes of the MLP (--mlp); the number of points of the separable data set.
        "--hidden": [("--mlp", "--hidden", value) for value in ("0", "-3", ",,", "abc", "")], "--lr": RATE,
        "--max-iter": COUNT,
        "--samples": [("--dataset", "separable", "--samples", value) for value in ("0", "-5", "1")],
        "--test-fraction": ["-0.1", "1", "nan"],
        "--seed": SEED, "--plot": [*picture(".png"), "{tmp}/plot.gif"],
    },
    "finetune gpt": {
        "--model": [*MODEL, "{bert}"], "--data": READ_TEXT, "--out": [*OUT_DIR, "{gpt}"],
        "--max-iters": COUNT, "--lr": RATE, "--batch-size": COUNT, "--weight-decay": DECAY,
        "--device": DEVICE, "--seed": SEED, "--max-time": SECONDS, "--warmup-iters": NON_NEGATIVE,
        "--eval-interval": COUNT, "--eval-iters": COUNT, "--resume": [SWITCH],
        "--epochs": classify("--epochs", COUNT),
        "--labels-file": classify("--labels-file", ["{missing}", "{binary}", "{empty}"]),
        "--val-data": classify("--val-data", ["{missing}", "{binary}"]),
        "--val-fraction": classify("--val-fraction", ["-0.1", "1", "nan"]),
        "--aux-lm-weight": classify("--aux-lm-weight", ["-1", "nan"]),
        "--nproc": ["0", "-1", "100000"],
    },
    "finetune bert": {
        "--model": [*MODEL, "{gpt}"], "--data": [*READ_TEXT, "wnut16"], "--out": OUT_DIR,
        "--eval-only": [SWITCH], "--val-data": ["{missing}", "{binary}"],
        "--test-data": ["{missing}", "{binary}"], "--val-fraction": ["-0.1", "1", "nan"],
        "--test-fraction": ["-0.1", "1", "nan"], "--max-train": COUNT, "--max-val": COUNT,
        "--max-seq-len": [*COUNT, "100000"], "--doc-stride": [("--task", "qa", "--data", "{qa}",
                                                               "--doc-stride", v) for v in COUNT],
        "--max-answer-len": [("--task", "qa", "--data", "{qa}", "--max-answer-len", v) for v in COUNT],
        "--epochs": COUNT, "--max-steps": COUNT, "--batch-size": COUNT, "--lr": RATE,
        "--warmup-fraction": FRACTION, "--weight-decay": DECAY, "--eval-every": COUNT, "--patience": COUNT,
        "--device": DEVICE, "--seed": SEED, "--nproc": ["0", "-1", "100000"],
    },
    "fewshot": {
        "--model": [*MODEL, "{bert}"], "--data": READ_TEXT, "--shots": ["-1"], "--n-test": COUNT,
        "--seed": SEED,
    },
    "inspect": {
        "--model": MODEL, "--text": ["", "日本語ü", LONG],
        # A GPT given a target; an encoder-decoder not given one.
        "--target": ["ROMEO", ("--model", "{mt}", "--text", "hello")],
        "--stack": ["cross", *encoder_decoder("--stack", ["self"])],
        "--layer": ["-1", "5", *encoder_decoder("--layer", ["3"])],
        "--head": ["-1", "2", *encoder_decoder("--head", ["5"])], "--top": COUNT, "--max-tokens": COUNT,
        "--png": picture(".png"), "--svg": picture(".svg"), "--html": picture(".html"),
        "--html-max-tokens": COUNT,
        "--dims": COUNT,
    },
    "compare": {
        "--d-model": [*COUNT, "99999999999999999999"], "--n-layers": [*COUNT, "99999999999999999999"],
        "--n-heads": [*COUNT, "3"], "--d-ff": NON_NEGATIVE, "--vocab": COUNT, "--seq-len": COUNT,
        "--batch": COUNT, "--repeats": COUNT, "--threads": COUNT, "--device": DEVICE,
        "--masks": [*picture(".png"), "{tmp}/masks.gif"], "--model": ["{missing}", "{binary}", "{dir}"],
    },
    "cite": {"names": ["nope", ""]},
    "bench": {"suites": ["nope"], "--threads": COUNT, "--rounds": COUNT, "--new-tokens": COUNT,
              "--record": ["{under_file}", "{dir}", "{binary}"]},
    "translate": {
        "--model": [*MODEL, "{gpt}"], "--text": ["", "   "], "--input": ["{missing}", "{dir}", "{binary}"],
        "--beam": COUNT, "--length-penalty": ["nan", "inf", "-5"],
        "--max-new-tokens": [*COUNT, "100000"],  # more than the tiny model's 40 positions
        "--batch-size": COUNT,
    },
    "evaluate": {
        "--model": [*MODEL, "{gpt}"], "--data": READ_TEXT,
        "--target": [("--data", "{sources}", "--target", value) for value in ("{missing}", "{binary}")],
        "--split": ["test"],  # six pairs of --data leave the test split empty
        "--output": OUT_FILE, "--examples": NON_NEGATIVE, "--beam": COUNT,
        "--length-penalty": ["nan", "inf", "-5"], "--max-new-tokens": [*COUNT, "100000"],
        "--batch-size": COUNT,
    },
    "predict": {
        # BASE is the tiny classifier; a QA case names the QA model (and both QA flags) itself.
        "--model": [*MODEL, "{bert}", "{gpt}", "{mt}"],
        "--text": ["", "   ", ("--model", "{qa_model}", "--text", "who?")],
        "--input": ["{missing}", "{dir}", "{empty}", "{binary}", "{qa}"],
        "--question": ["who?", ("--context", "Ross", "--question", "who?"),
                       ("--model", "{qa_model}", "--context", "Ross", "--question", " ")],
        "--context": ["Ross", ("--model", "{qa_model}", "--question", "who?", "--context", "")],
        "--batch-size": COUNT, "--device": DEVICE,
    },
    "embed": {
        "--model": [*MODEL, "{gpt}", "{mt}"], "--text": ["", "   ", ("--input", "{corpus}", "--text", "a")],
        "--input": READ_TEXT, "--out": [*OUT_FILE, "{out}/vectors.csv"],
        "--similarity": [("--out", "{out}/vectors.npy", "--similarity")],
        "--batch-size": COUNT, "--max-length": ["1", "0", "-1"],
    },
}

# Flags that no value past argparse makes wrong (argparse's own checks still run on them).
NOTHING_BAD: dict[str, dict[str, str]] = {
    "": {"--version": "prints the version; takes no value"},
    "train gpt": {"--tokenizer": "a choice: argparse refuses others", "--dtype": "a choice",
                  "--no-progress": "a switch that only hides the bar",
                  "--fsdp": "valid with one process: under torchrun (no --nproc) the launcher counts"},
    "train transformer": {"--corpus": "a choice", "--no-dictionary": "a switch, harmless without the corpus",
                          "--reverse": "a switch: either direction is valid", "--vocab": "a choice",
                          "--dtype": "a choice", "--no-progress": "a switch that only hides the bar"},
    "train bert": {"--corpus": "a choice", "--nsp": "a switch pair: both are valid",
                   "--whole-word-mask": "a switch: both masks are valid", "--dtype": "a choice",
                   "--no-progress": "a switch that only hides the bar"},
    "generate": {"--stop": "any text may end a generation", "--no-stream": "a switch: both are valid",
                 "--weights": "a choice: each loads any model",
                 "--dtype": "a choice (bf16 on a CPU without native bf16: tests/commands)"},
    "perceptron": {"--mlp": "a switch: both models are valid", "--activation": "a choice",
                   "--standardize": "a switch: both are valid"},
    "finetune gpt": {"--task": "a choice", "--dtype": "a choice",
                     "--no-progress": "a switch that only hides the bar"},
    "finetune bert": {"--task": "a choice", "--pooling": "a choice",
                      "--freeze-encoder": "a switch: both are valid", "--dtype": "a choice",
                      "--no-progress": "a switch that only hides the bar"},
    "fewshot": {"--task": "a choice", "--normalize": "a switch: both scorings are valid",
                "--no-progress": "a switch: with or without the bar", "--dtype": "a choice",
                "--weights": "a choice: each loads any model"},
    "values": {"--truncate": "a switch: both are valid"},
    "inspect": {"--truncate": "a switch: both are valid"},
    "compare": {"--no-measure": "a switch: both are valid", "--format": "a choice"},
    "cite": {"--format": "a choice", "--list": "a switch that lists the names"},
    "bench": {"--no-compile": "a switch: both are valid", "--note": "any text is a note"},
    "predict": {"--json": "a switch: both outputs are valid",
                "--dtype": "a choice (bf16 on a CPU without native bf16: tests/commands)",
                "--no-progress": "a switch that only hides the bar"},
    "evaluate": {"--corpus": "a choice", "--baselines": "a switch: both are valid",
                 "--no-dictionary": "a switch: both are valid", "--reverse": "a switch: both are valid",
                 "--weights": "a choice: each loads any model", "--dtype": "a choice"},
    "translate": {"--weights": "a choice: each loads any model", "--dtype": "a choice"},
    "embed": {"--dtype": "a choice (bf16 on a CPU without native bf16: tests/commands)",
              "--compile": "a choice: each embeds the same texts",
              "--no-progress": "a switch that only hides the bar"},
}
