"""The command-line pieces the commands share: add_command, --text/--input, preset overrides,
the arguments a relaunch forwards, the resume hint."""

from __future__ import annotations

import argparse

import pytest

from attnlab.commands.arguments import (
    SIZE_OPTIONS,
    add_command,
    add_size_arguments,
    add_text_inputs,
    forwarded_arguments,
    given,
    resume_hint,
)


def make(**kwargs) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="attnlab")
    return add_command(root.add_subparsers(dest="command"), "demo", help="a demo",
                       description="Demo things.", example="examples:\n  attnlab demo   # kept as written\n",
                       **kwargs)


def test_help_keeps_the_example_as_written_and_model_comes_first(capsys):
    parser = make(model="model directory")
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --model is required
    assert "the following arguments are required: --model" in capsys.readouterr().err
    text = parser.format_help()
    assert "examples:\n  attnlab demo   # kept as written\n" in text and "Demo things." in text
    assert [action.dest for action in parser._actions] == ["help", "model"]


def test_text_is_repeatable_and_input_a_file():
    parser = make()
    add_text_inputs(parser, text="a text", input="a file")
    args = parser.parse_args(["--text", "a", "--text", "b"])
    assert args.text == ["a", "b"] and args.input is None
    assert parser.parse_args(["--input", "-"]).input == "-"


def test_given_keeps_the_options_set():
    args = argparse.Namespace(n_layers=2, n_heads=None, d_model=0)
    assert given(args, "n_layers", "n_heads", "d_model") == {"n_layers": 2, "d_model": 0}


def test_forwarded_arguments_are_the_changed_options_less_nproc():
    parser = make()
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--nproc", type=int, default=1)
    args = parser.parse_args(["--seed", "-1", "--resume", "--nproc", "4"])
    assert forwarded_arguments(parser, args) == ["--seed=-1", "--resume"]


def test_resume_hint_names_the_step_and_the_folder():
    assert resume_hint(12, "runs/x") == ("interrupted at step 12; checkpoint saved to runs/x. "
                                         "Continue with the same command and --resume.")


def test_size_options_keep_their_order_aliases_and_none_default():
    parser = make()
    add_size_arguments(parser, {"n_layers": "--n-layer"}, d_ff="width F", n_layers="depth N")
    flags = [action.option_strings for action in parser._actions[1:]]
    assert flags == [["--n-layers", "--n-layer"], ["--d-ff"]]  # the shared order, not the call's
    args = parser.parse_args(["--n-layer", "3"])
    assert (args.n_layers, args.d_ff) == (3, None)
    assert given(args, *SIZE_OPTIONS[:1], "d_ff") == {"n_layers": 3}
    assert SIZE_OPTIONS == ("n_layers", "n_heads", "d_model", "d_ff", "max_positions")
