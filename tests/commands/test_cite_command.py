"""``attnlab cite``: names, groups, formats and the error for an unknown name."""

from __future__ import annotations

import argparse
import re

import pytest

from attnlab.commands import cite as cite_command
from attnlab.errors import AttnlabError


def run(*argv: str) -> int:
    root = argparse.ArgumentParser(prog="attnlab")
    cite_command.register(root.add_subparsers(dest="command"))
    args = root.parse_args(["cite", *argv])
    return args.run(args)


@pytest.mark.parametrize("name, expected", [
    ("perceptron", "doi = {10.1037/h0042519}"),
    ("mlp", "doi = {10.1038/323533a0}"),
    ("transformer", "eprint = {1706.03762}"),
    ("bert", "doi = {10.18653/v1/N19-1423}"),
    ("gpt", "Improving Language Understanding by Generative Pre-Training"),
    ("gpt2", "Language Models are Unsupervised Multitask Learners"),
    ("gpt3", "pages = {1877--1901}"),
])
def test_each_model_prints_its_bibtex(name, expected, capsys):
    assert run(name) == 0
    out = re.sub(r"\s+=\s+", " = ", capsys.readouterr().out)
    assert out.startswith("@") and expected in out and out.count("\n@") == 0


def test_all_is_the_default_and_text_format(capsys):
    assert run() == 0
    everything = capsys.readouterr().out
    assert everything.count("\n@") + 1 >= 16
    assert run("models", "rollout", "--format", "text") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8
    assert lines[-1].startswith("[abnar2020rollout] Samira Abnar and Willem Zuidema (2020).")


def test_list_names(capsys):
    assert run("--list") == 0
    out = capsys.readouterr().out
    assert "value-weighted   Kobayashi et al. 2020" in out and "groups" in out


def test_unknown_name():
    with pytest.raises(AttnlabError, match="Unknown reference 'lstm'; choose from: all, models"):
        run("lstm")
