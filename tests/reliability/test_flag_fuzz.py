"""Every flag of every command, fed bad values: exit code 2, one line on stderr, nothing on stdout.

README's promise: "Bad input prints one line (`attnlab: error: ...`) and exits with code 2".
The flags are read from the parser itself (``attnlab.cli.build_parser``), so a flag added
tomorrow is fuzzed tomorrow: argparse's own refusals (a non-number, an unknown choice, a
missing value, a value given to a switch, a required flag left out) are derived from each
argparse action; the values that argparse accepts and attnlab must refuse come from
``flag_table.py``, and ``test_every_flag_has_its_bad_values_decided`` fails until a new flag
has them there. Each case is one valid, fast command line (``flag_table.BASE``) with one
flag made bad, run in this process.
"""

from __future__ import annotations

import os
import sys
import time

import flag_cases as CASES  # tests/reliability is on pytest's pythonpath
import pytest

TABLE, FLAGS, Case = CASES.TABLE, CASES.FLAGS, CASES.Case
# A refusal that must come before any real work: a second is plenty for the tiny runs of BASE.
SLOW_CASE_S = 10.0


def test_every_flag_has_its_bad_values_decided():
    """A flag without an entry in flag_table.BAD or NOTHING_BAD is fuzzed by argparse's checks
    only; this fails until someone says which of its values attnlab must refuse."""
    in_parser = set(FLAGS)
    bad = {(command, flag) for command, table in TABLE.BAD.items() for flag in table}
    nothing = {(command, flag) for command, table in TABLE.NOTHING_BAD.items() for flag in table}
    assert not bad & nothing, f"in both BAD and NOTHING_BAD: {sorted(bad & nothing)}"
    assert not in_parser - bad - nothing, f"no bad values decided for: {sorted(in_parser - bad - nothing)}"
    stale = (bad | nothing) - in_parser
    assert not stale, f"the table names flags the CLI lacks: {sorted(stale)}"
    assert set(TABLE.BASE) == {command for command, _ in FLAGS} - {""}, "BASE: one valid run per command"


def test_every_flag_gets_at_least_one_bad_value():
    assert not [(command, flag) for command, flag in FLAGS if not CASES.all_cases(command, flag)]


@pytest.mark.parametrize("command", sorted(set(TABLE.BASE) - {"bench"}))
def test_each_base_command_line_runs(command, fuzz_paths, tmp_path, cli):
    """Each case makes one flag of BASE bad: BASE itself must succeed, or a case could pass by
    failing for a reason of BASE's own. (A valid bench times for minutes: tests/speed runs it.)"""
    argv = CASES.command_line(command, Case("", ()), fuzz_paths, tmp_path / "out")
    code, _, err = cli(argv)
    assert code == 0, f"{' '.join(argv)}\n{err}"


@pytest.mark.parametrize("command, flag", FLAGS, ids=[f"{c or 'attnlab'} {f}" for c, f in FLAGS])
def test_bad_values_exit_2_in_one_line(command, flag, fuzz_paths, tmp_path, cli):
    dest = CASES.flags_of(CASES.PARSERS[command])[flag].dest
    problems, slow = [], []
    for number, case in enumerate(CASES.all_cases(command, flag)):
        argv = CASES.command_line(command, case, fuzz_paths, tmp_path / f"out-{number}")
        started = time.perf_counter()
        code, out, err = cli(argv)
        seconds = time.perf_counter() - started
        if os.environ.get("ATTNLAB_FUZZ_LOG"):
            print(f"{code} {seconds:5.2f}s {' '.join(map(repr, argv))}\n    {err.strip()[:200]}",
                  file=sys.__stderr__)
        wrong = CASES.failure(case, argv, dest, code, out, err)
        if wrong:
            problems.append(f"{wrong}: {' '.join(map(repr, argv))}\n    stderr: {err.strip()[-300:]!r}"
                            f"\n    stdout: {out.strip()[-200:]!r}")
        if seconds > SLOW_CASE_S:
            slow.append(f"{seconds:.1f} s: {' '.join(map(repr, argv))}")
    assert not problems, "\n".join(problems)
    assert not slow, "refused only after real work:\n" + "\n".join(slow)
