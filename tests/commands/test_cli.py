"""The attnlab command: help everywhere, the main job end to end, one-line errors."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from attnlab.cli import build_parser, main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnlab", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(
    "command",
    [[], ["train"], ["train", "gpt"], ["generate"], ["values"], ["perceptron"], ["finetune"], ["fewshot"],
     ["inspect"], ["compare"], ["cite"], ["bench"], ["translate"], ["evaluate"], ["train", "bert"],
     ["train", "transformer"]],
)
def test_help_works(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: attnlab" in out and "%%" not in out  # argparse un-doubles % only in argument help
    # The first example printed is a command of this (sub-)command that the real parser accepts
    # (tests/commands/test_help_texts.py parses every example of every command).
    lines = [line.strip() for line in out.split("\nexamples", 1)[1].splitlines()[1:]]
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("attnlab ")):]
    example = lines.pop(0)
    while example.endswith("\\"):
        example = example[:-1] + " " + lines.pop(0)
    argv = shlex.split(example, comments=True)
    assert argv[: len(command) + 1] == ["attnlab", *command], example
    build_parser().parse_args(argv[1:])  # a stale example exits here


def test_train_generate_values_end_to_end(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be: that is the question.\n" * 60)
    out = tmp_path / "run"
    code = main(["train", "gpt", "--data", str(corpus), "--preset", "gpt-nano", "--block-size", "32",
                 "--max-iters", "20", "--batch-size", "4", "--eval-interval", "10", "--out", str(out),
                 "--sample-tokens", "40", "--prompt", "To", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "validation loss (whole split)" in printed and "--- sample ---" in printed
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl"):
        assert (out / name).is_file(), name

    assert main(["generate", "--model", str(out), "--prompt", "To be", "--max-new-tokens", "25",
                 "--temperature", "0"]) == 0
    generated = capsys.readouterr().out
    assert generated.startswith("To be") and len(generated.rstrip("\n")) == len("To be") + 25

    assert main(["values", "--model", str(out), "--text", "To be", "--layer", "1", "--head", "1"]) == 0
    report = capsys.readouterr().out
    assert "value vectors" in report and "attention weights" in report
    error = float(report.split("V == X W_V^T + b_V (split into heads): max abs error ")[1].split()[0])
    assert error < 1e-5


@pytest.mark.parametrize(
    "args, message",
    [
        (["values", "--model", "/nonexistent/dir", "--text", "x"], "does not exist"),
        (["generate", "--model", "/nonexistent/dir"], "does not exist"),
        (["train", "gpt", "--data", "/nonexistent.txt"], "No text file"),
        (["train", "gpt", "--preset", "gpt9"], "Unknown GPTConfig preset"),
    ],
)
def test_errors_are_one_line_without_traceback(args, message):
    result = _run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnlab: error:") and message in lines[0]


def test_unknown_character_in_prompt(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc abc abc\n" * 100)
    out = tmp_path / "run"
    main(["train", "gpt", "--data", str(corpus), "--preset", "gpt-nano", "--block-size", "16",
          "--max-iters", "2", "--batch-size", "2", "--out", str(out), "--sample-tokens", "2",
          "--prompt", "a", "--no-progress"])
    capsys.readouterr()
    assert main(["generate", "--model", str(out), "--prompt", "xyz"]) == 2
    assert "not in this model's vocabulary" in capsys.readouterr().err


def _train_args(corpus, out, *extra):
    return ["train", "gpt", "--data", str(corpus), "--preset", "gpt-nano", "--block-size", "16",
            "--batch-size", "2", "--out", str(out), "--sample-tokens", "0", "--no-progress", *extra]


def test_ctrl_c_saves_then_resume_continues(tmp_path):
    import json
    import signal
    import time

    corpus = tmp_path / "c.txt"
    corpus.write_text("a stitch in time saves nine. " * 80)
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "attnlab", *_train_args(corpus, out, "--max-iters", "100000",
                                                        "--eval-interval", "5", "--dtype", "fp32")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while not (out / "training_state.pt").exists() and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stdout
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    stopped = next(r["step"] for r in steps if r.get("event") == "interrupted")
    assert stopped >= 5

    code = main(_train_args(corpus, out, "--max-iters", str(stopped + 3), "--eval-interval", "5",
                            "--dtype", "fp32", "--resume"))
    assert code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "end" and records[-1]["steps"] == stopped + 3


def test_existing_run_is_not_overwritten_and_bpe_works(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("Sing, goddess, the anger of Peleus' son Achilleus. " * 60)
    out = tmp_path / "run"
    assert main(_train_args(corpus, out, "--max-iters", "3", "--tokenizer", "bpe",
                            "--vocab-size", "300")) == 0
    assert "bpe vocabulary of" in capsys.readouterr().out  # at most 300: a tiny corpus has few merges
    before = (out / "model.safetensors").read_bytes()
    assert main(_train_args(corpus, out, "--max-iters", "3")) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    assert main(_train_args(corpus, out, "--max-iters", "5", "--dropout", "0.3", "--resume")) == 2
    assert "changed config" in capsys.readouterr().err


def test_empty_and_binary_data_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    for path, message in ((empty, "is empty"), (binary, "not UTF-8")):
        result = _run(*_train_args(path, tmp_path / "x", "--max-iters", "1"))
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_train_bert_end_to_end(tmp_path, capsys):
    corpus = tmp_path / "docs.txt"
    blocks = [f"Speaker {i}:\nthe {w} is here\nand {i} more {w}" for i, w in
              enumerate(["apple", "river", "castle", "violin", "desert", "harbor"] * 8)]
    corpus.write_text("\n\n".join(blocks) + "\n")
    out = tmp_path / "bert"
    code = main(["train", "bert", "--data", str(corpus), "--speeches-per-document", "2",
                 "--vocab-size", "120", "--max-seq-len", "32", "--max-iters", "5", "--batch-size", "4",
                 "--eval-interval", "5",
                 "--out", str(out), "--no-progress", "--dtype", "fp32"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "held-out MLM accuracy" in printed and "NSP accuracy" in printed
    import attnlab

    assert type(attnlab.load_pretrained(out)).__name__ == "BertForPreTraining"


def test_a_command_gives_the_caller_its_thread_count_back(capsys):
    import torch

    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    try:
        assert main(["compare", "--threads", str(other), "--repeats", "1", "--seq-len", "4", "--batch", "1",
                     "--d-model", "8", "--heads", "2", "--layers", "1", "--d-ff", "8", "--vocab", "11"]) == 0
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("command, shared, old", [
    (["train", "gpt"], ["--n-layers", "3", "--n-heads", "2", "--d-model", "32", "--max-positions", "16"],
     ["--n-layer", "3", "--n-head", "2", "--n-embd", "32", "--block-size", "16"]),
    (["train", "transformer"], ["--n-layers", "3", "--n-heads", "2"], ["--n-layer", "3", "--n-head", "2"]),
    (["compare"], ["--n-layers", "3", "--n-heads", "2"], ["--layers", "3", "--heads", "2"]),
])
def test_size_flags_have_one_spelling_and_the_old_ones_still_work(command, shared, old):
    from attnlab.cli import build_parser

    parser = build_parser()
    with_shared, with_old = parser.parse_args([*command, *shared]), parser.parse_args([*command, *old])
    assert vars(with_shared) == vars(with_old)
    assert (with_shared.n_layers, with_shared.n_heads) == (3, 2)
    sub = parser._subparsers._group_actions[0].choices[command[0]]
    if len(command) == 2:
        sub = sub._subparsers._group_actions[0].choices[command[1]]
    # The help shows the shared spelling first, so that is what users learn.
    firsts = {action.option_strings[0] for action in sub._actions if action.option_strings}
    assert {"--n-layers", "--n-heads"} <= firsts
