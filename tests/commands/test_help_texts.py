"""Every command's ``--help``, walked through the real parser (so a new command or option is
covered without editing this file): each option has a help text, and each example shown is a
command that the parser accepts, laid out evenly."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from attnlab.cli import build_parser


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("attnlab",)):
    """(command path, parser) of the root and of every sub-command, depth first."""
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, (*path, name))


PARSERS = dict(subcommands(build_parser()))
COMMENT = re.compile(r"\s#\s")  # a shell comment after an example command


def split_comment(line: str) -> tuple[str, int | None]:
    """(the command part, the column where its ``# comment`` starts, or None)."""
    found = COMMENT.search(line)
    if found is None:
        return line.rstrip(), None
    return line[: found.start()].rstrip(), found.start() + 1


def examples(epilog: str | None) -> list[list[str]]:
    """The example commands of a help text: each line that starts (after its indentation) with
    ``attnlab`` or ``torchrun``, with the lines it continues onto (a trailing backslash)."""
    lines, found, i = (epilog or "").splitlines(), [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith(("attnlab", "torchrun ")):
            group = [lines[i]]
            while split_comment(group[-1])[0].endswith("\\") and i + 1 < len(lines):
                i += 1
                group.append(lines[i])
            found.append(group)
        i += 1
    return found


def argv_of(group: list[str]) -> list[str]:
    """The arguments after ``attnlab`` (or after ``-m attnlab`` of a torchrun line)."""
    words = shlex.split(" ".join(split_comment(line)[0].rstrip("\\") for line in group))
    return words[words.index("-m") + 2:] if words[0] == "torchrun" else words[1:]


def test_the_walk_finds_every_command():
    assert {"attnlab values", "attnlab train gpt", "attnlab finetune bert", "attnlab cite"} <= set(PARSERS)


def test_every_option_has_a_help_text():
    missing = [
        f"{command} {'/'.join(action.option_strings) or action.dest}"
        for command, parser in PARSERS.items()
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not (action.help and action.help.strip())
    ]
    assert not missing, f"options without help: {missing}"


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_help_shows_examples_the_parser_accepts(command):
    parser = PARSERS[command]
    shown = examples(parser.epilog)
    # An "examples:" section (after a list of choices, for bench) with at least one command in it.
    has_section = re.search(r"^examples\b.*:$", parser.epilog or "", re.M) is not None
    assert has_section and shown, f"{command}: no examples"
    for group in shown:
        argv = argv_of(group)
        # A stale example (a renamed option, a wrong choice) makes the parser exit; parse only.
        try:
            build_parser().parse_args(argv)
        except SystemExit as error:
            pytest.fail(f"{command}: the example `{' '.join(group)}` does not parse (exit {error.code})")


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_examples_are_laid_out_evenly(command):
    """The layout rule: an example's command (after its indentation) has no run of two or more
    spaces; a ``# comment`` padded by three or more spaces starts in the one column that all
    padded comments of that help share, and a command too long for that column ends with its
    comment one or two spaces after it, further right."""
    padded, late = set(), []
    for group in examples(PARSERS[command].epilog):
        for line in group:
            part, column = split_comment(line)
            assert not re.search(r"\S {2,}\S", part.strip()), f"{command}: runs of spaces in {line!r}"
            if column is None:
                continue
            gap = column - len(part)
            (padded.add(column) if gap >= 3 else late.append((column, line)))
    assert len(padded) <= 1, f"{command}: comments padded to columns {sorted(padded)}"
    for column, line in late:
        assert not padded or column >= min(padded), f"{command}: a comment left of the column: {line!r}"
