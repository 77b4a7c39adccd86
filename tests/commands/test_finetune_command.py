"""`attnlab finetune gpt`: both tasks end to end, and one-line errors that leave nothing behind."""

from __future__ import annotations

import random

import pytest
import torch

from attnlab import cli
from attnlab.commands import finetune as finetune_command
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, GPTConfig
from attnlab.models.gpt_classifier import GPTForSequenceClassification

TEXT = "to be or not to be, that is the question. " * 30


@pytest.fixture(autouse=True)
def finetune_registered(monkeypatch):
    """Run through cli.main whether or not cli.py lists the command module yet."""
    if "attnlab.commands.finetune" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "attnlab.commands.finetune"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def base(tmp_path):
    tokenizer = Tokenizer.char_level(TEXT)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=32))
    model.save_pretrained(tmp_path / "base")
    tokenizer.save(tmp_path / "base")
    return tmp_path / "base"


def test_help(capsys):
    for command in (["finetune"], ["finetune", "gpt"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        # The examples printed are the module's, which tests/commands/test_help_texts.py parses.
        assert "usage: attnlab finetune" in out and finetune_command.EXAMPLE.strip() in out


def test_continued_pretraining_end_to_end(base, tmp_path, capsys):
    (tmp_path / "new.txt").write_text(TEXT)
    out = tmp_path / "tuned"
    code = cli.main(["finetune", "gpt", "--model", str(base), "--data", str(tmp_path / "new.txt"),
                     "--out", str(out), "--max-iters", "20", "--batch-size", "8", "--lr", "3e-3",
                     "--eval-interval", "10", "--dtype", "fp32", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "validation loss (whole split" in printed and "(base model) ->" in printed
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training_state.pt"):
        assert (out / name).is_file(), name


def test_classification_end_to_end(base, tmp_path, capsys):
    rng = random.Random(0)
    lines = ["text\tlabel"]
    for _ in range(200):
        text = "".join(rng.choice("abeinot") for _ in range(rng.randint(3, 8)))
        lines.append(f"{text}\t{'yes' if 'a' in text else 'no'}")
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "labels.txt").write_text("yes\nno\n")
    out = tmp_path / "classifier"
    code = cli.main(["finetune", "gpt", "--task", "classify", "--model", str(base),
                     "--data", str(tmp_path / "train.tsv"), "--labels-file", str(tmp_path / "labels.txt"),
                     "--out", str(out), "--epochs", "10", "--max-iters", "60", "--lr", "3e-3",
                     "--val-fraction", "0.2", "--dtype", "fp32", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    accuracy = float(printed.split("held-out accuracy ")[1].split()[0])
    baseline = float(printed.split("majority-class baseline ")[1].split(")")[0])
    assert accuracy >= 0.85 and accuracy > baseline
    model = GPTForSequenceClassification.from_pretrained(out)
    assert model.label_names == ("yes", "no")  # the order of --labels-file


@pytest.mark.parametrize(
    "extra, data, message",
    [
        ([], "to be? or not!", "Character(s) '!?' are not in this model's vocabulary"),
        (["--epochs", "2"], TEXT, "--epochs cannot be used with --task lm"),
        (["--task", "classify", "--resume"], "a\tyes\nb\tno\n",
         "--resume cannot be used with --task classify"),
        (["--task", "classify"], TEXT, "line 1 has no tab"),
        (["--task", "classify"], "\x00\x01binary\tyes\n", "looks binary"),
        ([], "", "is empty"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(base, tmp_path, capsys, extra, data, message):
    (tmp_path / "data.txt").write_text(data)
    out = tmp_path / "out"
    code = cli.main(["finetune", "gpt", "--model", str(base), "--data", str(tmp_path / "data.txt"),
                     "--out", str(out), "--no-progress", *extra])
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1, error
    assert not out.exists()


def test_refuses_to_overwrite_the_base_model(base, tmp_path, capsys):
    (tmp_path / "new.txt").write_text(TEXT)
    code = cli.main(["finetune", "gpt", "--model", str(base), "--data", str(tmp_path / "new.txt"),
                     "--out", str(base)])
    assert code == 2 and "--out is the --model directory" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["lm", "classify"])
def test_a_gguf_file_is_refused_with_the_way_to_a_directory(tmp_path, capsys, task):
    # The check reads nothing of the file: the old command loaded it and then blamed the
    # missing tokenizer beside it. The conversion it suggests is tested in tests/interop.
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    (tmp_path / "data.txt").write_text(TEXT if task == "lm" else "a\tyes\nb\tno\n")
    out = tmp_path / "out"
    code = cli.main(["finetune", "gpt", "--task", task, "--model", str(gguf),
                     "--data", str(tmp_path / "data.txt"), "--out", str(out), "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1, error
    assert f"{gguf} is a file; fine-tuning needs a model directory" in error
    assert f"save_hf_checkpoint(read_gguf('{gguf}'), '{tmp_path / 'SmolLM2-135M-Instruct.Q4_1-hf'}')" in error
    assert "tokenizer" in error and not out.exists()
