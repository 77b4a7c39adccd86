"""CLI fuzz: random argument combinations over the sub-commands, with a fixed seed.

The rule: exit code 0, or exit code 2 (README: bad input) with exactly one line on stderr
that starts ``attnlab: error:`` -- never a Python traceback, never an "internal error",
never exit 1 (the machine failing). Two fuzzes:

- hand-made pools of odd values, valid ones among them (1e-320, RTL marks, 40-character
  texts), for the commands that run in a moment: they reach both outcomes;
- every command and flag, read from the parser: two or three bad values of
  flag_table.py / flag_cases.py at once on one command's valid BASE run, which must still
  be refused in one line with exit 2 and nothing on stdout (test_flag_fuzz.py tries each
  bad value alone).

Commands that would train or benchmark for long get only tiny or invalid values.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import flag_cases as CASES  # tests/reliability is on pytest's pythonpath
import pytest

# Value pools. Out-of-range, malformed and extreme values on purpose.
INT = ["0", "-1", "1", "2", "3", "7", "abc", "", "1.5", "99999999999999999999", "-99999999999999999999"]
SMALL = ["0", "1", "3", "-2", "abc", ""]
FLOAT = ["0", "-1", "0.5", "1", "2", "nan", "inf", "-inf", "1e308", "1e-320", "abc", ""]
TEXT = ["ROMEO", "JULIET", "O Romeo", "soft!", "", " ", "日本語", "</script><b>&amp;", "\x00", "R" * 40, "-x",
        "\u202e\u2028"]
FLAG = [None]
COUNT = 160


def pools(tmp: Path, model: Path, corpus: Path) -> dict[str, dict[str, list]]:
    binary = tmp / "binary.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    tsv = tmp / "labelled.tsv"
    tsv.write_text("ROMEO wins\tpos\nJULIET loses\tneg\n" * 6, encoding="utf-8")
    csv = tmp / "points.csv"
    csv.write_text("a,b,label\n0,0,x\n0,1,y\n1,0,y\n1,1,y\n", encoding="utf-8")
    empty_dir = tmp / "empty-dir"
    empty_dir.mkdir(exist_ok=True)
    models = [str(model)] * 10 + ["/nonexistent/model", str(corpus), str(empty_dir), str(binary), ""]
    data = [str(corpus), str(binary), str(tsv), "/nonexistent.txt", str(empty_dir), ""]
    out = [str(tmp / "out.html"), str(tmp / "out.svg"), str(tmp / "out.png"), str(tmp / "out.txt"),
           str(empty_dir), "/proc/attnlab-fuzz/x.svg", ""]
    return {
        "generate": {"--model": models, "--prompt": TEXT, "--max-new-tokens": SMALL, "--temperature": FLOAT,
                     "--top-k": INT, "--top-p": FLOAT, "--repetition-penalty": FLOAT, "--seed": INT,
                     "--stop": TEXT, "--chat": FLAG, "--system": TEXT, "--no-stream": FLAG},
        "values": {"--model": models, "--text": TEXT, "--layer": INT, "--head": INT, "--dims": INT,
                   "--max-tokens": INT},
        "inspect": {"--model": models, "--text": TEXT, "--target": TEXT,
                    "--stack": ["self", "encoder", "decoder", "cross", "nope"], "--layer": INT,
                    "--head": INT, "--truncate": FLAG, "--top": INT, "--max-tokens": INT, "--html": out,
                    "--html-max-tokens": INT, "--dims": INT, "--svg": out},
        "cite": {"--format": ["bibtex", "text", "xml"], "--list": FLAG},
        "compare": {"--no-measure": FLAG * 20, "--d-model": INT, "--layers": INT, "--heads": INT,
                    "--d-ff": INT, "--vocab": INT, "--seq-len": INT,
                    "--format": ["table", "markdown", "json", "yaml"], "--model": models},
        "perceptron": {"--dataset": ["and", "or", "xor", "separable", str(csv), str(binary), "nope",
                                     str(tsv)],
                       "--mlp": FLAG, "--hidden": ["4", "0", "-3", "4,4", ",,", "abc", ""],
                       "--activation": ["relu", "tanh", "logistic", "nope"], "--lr": FLOAT,
                       "--max-iter": ["1", "5", "-1", "abc"], "--samples": ["2", "10", "0", "-5", "abc"],
                       "--standardize": FLAG, "--test-fraction": FLOAT, "--seed": INT,
                       "--positive-class": ["x", "1", "nope"], "--label": ["label", "nope"]},
        "fewshot": {"--model": models, "--data": [str(tsv)] * 3 + data, "--shots": SMALL,
                    "--n-test": SMALL, "--seed": INT, "--normalize": FLAG},
        "bench": {"--threads": ["0", "-1", "abc"], "--rounds": ["0", "-3"], "--new-tokens": ["0", "abc"]},
        "translate": {"--model": models, "--text": TEXT, "--beam": INT, "--length-penalty": FLOAT,
                      "--max-new-tokens": SMALL, "--batch-size": INT},
        "evaluate": {"--model": models, "--data": data, "--beam": INT, "--split": ["test", "nope"]},
        "train gpt": {"--data": [str(corpus)] * 4 + data, "--n-layer": ["1", "0", "-1", "abc"],
                      "--n-head": ["1", "2", "3", "0"], "--n-embd": ["16", "0", "15", "abc"],
                      "--block-size": ["8", "0", "-1", "99999999999999999999"], "--batch-size": SMALL,
                      "--lr": FLOAT, "--dropout": FLOAT, "--max-iters": ["1", "0", "-1", "abc"],
                      "--seed": INT, "--tokenizer": ["char", "bpe", "nope"],
                      "--vocab-size": ["0", "10", "300"], "--device": ["cpu", "auto", "tpu"],
                      "--eval-iters": ["1", "0"], "--prompt": TEXT, "--resume": FLAG},
        "finetune gpt": {"--model": models, "--data": data, "--max-iters": ["1", "0", "-1", "abc"],
                         "--lr": FLOAT, "--batch-size": SMALL, "--seed": INT,
                         "--task": ["lm", "classify", "x"],
                         "--epochs": ["0", "-1", "abc"], "--eval-iters": ["1", "0"]},
    }


# Always added, so that nothing trains or benchmarks for long.
BASE = {
    "compare": ["--no-measure", "--repeats", "1", "--d-model", "16", "--layers", "1", "--heads", "2",
                "--vocab", "50", "--seq-len", "8"],
    "train gpt": ["--no-progress", "--eval-iters", "1", "--sample-tokens", "2", "--max-time", "2",
                  "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8",
                  "--max-iters", "1"],
    "finetune gpt": ["--no-progress", "--max-time", "2", "--max-iters", "1", "--epochs", "1"],
    "bench": ["--rounds", "0"],
}
REQUIRED_FIRST = {"generate": "--model", "values": "--model", "inspect": "--model", "fewshot": "--model",
                  "translate": "--model", "evaluate": "--model", "finetune gpt": "--model"}


def random_argv(rng: random.Random, pool: dict[str, dict[str, list]], tmp: Path) -> list[str]:
    weights = {"train gpt": 1, "finetune gpt": 1, "bench": 1, "translate": 1, "evaluate": 1}
    names = list(pool)
    command = rng.choices(names, weights=[weights.get(n, 3) for n in names])[0]
    argv = command.split() + list(BASE.get(command, []))
    options = pool[command]
    if command == "cite":
        argv += rng.sample(["bert", "gpt", "all", "nope", "transformer", "models"], rng.randint(0, 2))
    if command == "bench":
        argv += rng.sample(["decode", "bert", "nope"], rng.randint(0, 1))
    if command == "fewshot" and rng.random() < 0.3:
        argv += ["--task", "sentiment", "--n-test", "0"]
    if command == "finetune gpt":
        argv += ["--out", str(tmp / f"ft-{rng.randrange(10**6)}")]
    if command == "train gpt":
        argv += ["--out", str(tmp / f"run-{rng.randrange(10**6)}")]
    for option, values in options.items():
        must = REQUIRED_FIRST.get(command) == option or (option in ("--text", "--data")
                                                         and command != "train gpt")
        if rng.random() < (0.95 if must else 0.15):
            value = rng.choice(values)
            argv += [option] if value is None else [option, value]
    if rng.random() < 0.05:
        argv.append(rng.choice(["--bogus", "-x", "--", "extra"]))
    return argv


def check(code: int, err: str, argv: list[str]) -> None:
    where = " ".join(repr(a) for a in argv)
    assert "Traceback" not in err, f"{where}\n{err}"
    assert "internal error" not in err, f"{where}\n{err}"
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        # README: bad input exits 2. Exit 1 is the machine failing (a full disk), never a value.
        assert code == 2, f"{where}: exit code {code}, not 2\n{err}"
        assert len(lines) == 1 and lines[0].startswith("attnlab: error: "), f"{where}\n{err}"


def fuzz(seed: int, count: int, tmp_path: Path, tiny_gpt_dir: Path, corpus: Path, cli) -> dict[str, int]:
    rng = random.Random(seed)
    pool = pools(tmp_path, tiny_gpt_dir, corpus)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(count):
        argv = random_argv(rng, pool, tmp_path)
        started = time.perf_counter()
        code, _, err = cli(argv)
        check(code, err, argv)
        outcomes["ok" if code == 0 else "error"] += 1
        if os.environ.get("ATTNLAB_FUZZ_LOG"):
            print(code, f"{time.perf_counter() - started:.2f}s", argv[:2], err.strip()[:100],
                  file=sys.__stderr__)
    return outcomes


def test_random_argument_combinations(tmp_path, tiny_gpt_dir, corpus, cli):
    outcomes = fuzz(20261125, COUNT, tmp_path, tiny_gpt_dir, corpus, cli)
    # The fuzz reaches both outcomes (it is not only argument errors).
    assert outcomes["ok"] >= 15 and outcomes["error"] >= 60, outcomes




def bad_combination(rng: random.Random) -> tuple[str, list]:
    """A command and 2-3 of its bad values, each on a different flag. Left out: a missing value
    (it would take the next case's first token as its value) and a required flag left out (a
    later case may put the flag back); test_flag_fuzz.py tries those alone."""
    command = rng.choice([command for command in CASES.PARSERS if command])
    flags = [flag for c, flag in CASES.FLAGS if c == command]
    chosen = []
    for flag in rng.sample(flags, min(len(flags), rng.randint(2, 3))):
        # attnlab's own refusals where the flag has some: argparse would stop at the first bad
        # token, before any of them.
        cases = ([case for case in CASES.all_cases(command, flag) if not case.by_argparse]
                 or [case for case in CASES.all_cases(command, flag)
                     if case.leave_out is None and case.tokens != (flag,)])
        if cases:
            chosen.append(rng.choice(cases))
    return command, chosen


@pytest.mark.parametrize("seed", [21, 22])
def test_several_bad_values_at_once_exit_2(seed, fuzz_paths, tmp_path, cli):
    rng = random.Random(seed)
    problems, commands, by_attnlab = [], set(), 0
    for number in range(120):
        command, chosen = bad_combination(rng)
        if not chosen:
            continue
        commands.add(command)
        # The cases' tokens one after another, on BASE less every flag they set.
        merged = CASES.Case("", tuple(token for case in chosen for token in case.tokens),
                            by_argparse=all(case.by_argparse for case in chosen))
        argv = CASES.command_line(command, merged, fuzz_paths, tmp_path / f"out-{number}")
        code, out, err = cli(argv)
        lines = [line for line in err.splitlines() if line.strip()]
        by_attnlab += bool(lines) and not lines[0].endswith(" --help)")  # past argparse
        if code != 2 or len(lines) != 1 or not lines[0].startswith("attnlab: error: ") or out.strip():
            problems.append(f"exit {code}: {' '.join(map(repr, argv))}\n    stderr: {err.strip()[-300:]!r}"
                            f"\n    stdout: {out.strip()[-200:]!r}")
    assert not problems, "\n".join(problems)
    assert len(commands) >= 12, commands  # the draw reaches (almost) every command
    # A good share of the combinations get past argparse to attnlab's own checks (the share moves
    # with the seed's draw as flags are added: 57 of 120 and more).
    assert by_attnlab >= 45, by_attnlab


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_more_combinations(seed, tmp_path, tiny_gpt_dir, corpus, cli):
    outcomes = fuzz(seed, 600, tmp_path, tiny_gpt_dir, corpus, cli)
    assert outcomes["ok"] >= 50, outcomes


@pytest.mark.parametrize("argv", [
    ["train", "gpt", "--n-layer", "x"],
    ["generate", "--model", "/nonexistent", "--prompt", "x", "--seed", "99999999999999999999"],
    ["compare", "--no-measure", "--layers", "99999999999999999999"],
])
def test_real_processes_print_one_line(argv):
    result = subprocess.run([sys.executable, "-m", "attnlab", *argv], capture_output=True, text=True,
                            timeout=120)
    check(result.returncode, result.stderr, argv)
    assert result.returncode != 0


def test_a_closed_pipe_ends_quietly(tiny_gpt_dir):
    """`attnlab generate ... | head -c 3`: the reader goes away mid-stream. Before: a
    BrokenPipeError traceback; now the command ends quietly."""
    process = subprocess.Popen([sys.executable, "-m", "attnlab", "generate", "--model", str(tiny_gpt_dir),
                                "--prompt", "R", "--max-new-tokens", "1000000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = process.stdout.read(3)
        process.stdout.close()
        err = process.stderr.read().decode()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert first and process.returncode == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
