"""The machinery of the flag fuzz: the commands and flags read from attnlab's own parser, the
bad values of each (argparse's refusals derived from the action, attnlab's from flag_table.py),
and the command line of one case. Not a test module: test_flag_fuzz.py and test_cli_fuzz.py
import it by name (pyproject.toml puts tests/reliability on pytest's pythonpath)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import flag_table as TABLE

from attnlab.cli import build_parser


def command_parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(command, parser) for the top level and every sub-command, e.g. ("train gpt", parser)."""
    yield " ".join(words), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_parsers(sub, (*words, name))


def flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Flag name (its first option string, or a positional's dest) -> its argparse action."""
    return {(action.option_strings[0] if action.option_strings else action.dest): action
            for action in parser._actions
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))}


PARSERS = {command: parser for command, parser in command_parsers(build_parser()) if flags_of(parser)}
FLAGS = [(command, flag) for command, parser in PARSERS.items() for flag in flags_of(parser)]


@dataclass(frozen=True)
class Case:
    flag: str
    tokens: tuple[str, ...]   # added to the base command line (after removing the flags they name)
    leave_out: str | None = None  # a required flag taken away instead
    by_argparse: bool = True  # False: a value argparse lets through, for attnlab itself to refuse


def argparse_cases(flag: str, action: argparse.Action) -> list[Case]:
    """What argparse itself refuses, derived from the action: so every flag gets these."""
    if not action.option_strings:
        return [Case(flag, ("nope-unknown",))] if action.choices else []
    if action.nargs == 0:  # a switch: a value given to it
        return [Case(flag, (f"{option}=x",)) for option in action.option_strings]
    cases = [Case(flag, (flag,))]  # the value missing (the flag comes last)
    if action.type is int:
        cases += [Case(flag, (flag, value)) for value in ("abc", "1.5", "", "0x10")]
    elif action.type is float:
        cases += [Case(flag, (flag, value)) for value in ("abc", "", "1,5")]
    if action.choices:
        cases += [Case(flag, (flag, value)) for value in ("nope", "")]
    if action.required:
        cases.append(Case(flag, (), leave_out=flag))
    return cases


def table_cases(command: str, flag: str, action: argparse.Action) -> list[Case]:
    """The values of flag_table.BAD: accepted by argparse, to be refused by attnlab."""
    cases = []
    for value in TABLE.BAD.get(command, {}).get(flag, []):
        if isinstance(value, tuple):
            cases.append(Case(flag, value, by_argparse=False))
        elif value is TABLE.SWITCH:
            cases.append(Case(flag, (flag,), by_argparse=False))
        else:
            cases.append(Case(flag, (flag, value) if action.option_strings else (value,), by_argparse=False))
    return cases


def command_line(command: str, case: Case, paths: dict[str, str], out: Path) -> list[str]:
    """BASE of ``command`` less the flags the case sets or leaves out, then the case's tokens;
    ``{name}`` filled from ``paths`` (the fuzz_paths fixture) and ``{out}`` with ``out``."""
    known = flags_of(PARSERS[command])
    named = {token.split("=")[0] for token in case.tokens if token.split("=")[0] in known}
    base = {flag: value for flag, value in TABLE.BASE.get(command, {}).items()
            if flag not in named | {case.flag, case.leave_out}}
    argv = command.split()
    argv += [value for flag, value in base.items() if not flag.startswith("-")]
    for flag, value in base.items():
        if flag.startswith("-"):
            argv += [flag] if value is TABLE.SWITCH else [flag, value]
    argv += case.tokens
    fill = {**paths, "out": str(out)}
    return [token.format(**fill) if "{" in token else token for token in argv]


def all_cases(command: str, flag: str) -> list[Case]:
    """Every bad value of one flag: argparse's, then the table's."""
    action = flags_of(PARSERS[command])[flag]
    return argparse_cases(flag, action) + table_cases(command, flag, action)


def failure(case: Case, argv: list[str], dest: str, code: int, out: str, err: str) -> str | None:
    """What is wrong with one refusal, or None."""
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 2:
        return f"exit code {code}, not 2"
    if "Traceback" in err or len(lines) != 1 or not lines[0].startswith("attnlab: error: "):
        return "stderr is not one `attnlab: error:` line"
    if out.strip():
        return "wrote to stdout before refusing"
    # OneLineParser ends argparse's messages so; a table value refused there tests argparse
    # again, not attnlab: it belongs with argparse_cases, and a real attnlab value in its place.
    if not case.by_argparse and lines[0].endswith(" --help)"):
        return "a table value that argparse refuses (the table is for attnlab's own checks)"
    # The line says what was wrong: the flag (or its parameter's name) or the value given. This
    # also catches a case refused for another reason than its own value (a clash with BASE).
    value = argv[-1] if case.tokens and argv[-1] != case.flag else None
    named = {case.flag, case.flag.lstrip("-"), dest} | ({value or "''"} if value is not None else set())
    if not any(name in lines[0] for name in named):
        return f"the message names none of {sorted(named)}"
    return None
