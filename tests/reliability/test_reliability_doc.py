"""docs/reliability.md names, for every claim, the test that checks it -- and those tests exist.

A row of its tables (a numbered failure mode, an exit code of the contract) and a bullet of
its property-test list must each name at least one test as ``path::function`` (``rel/`` is
short for ``tests/reliability/``); every name must be a ``test_`` function defined at the top
of that file. A row whose test is renamed or deleted fails here instead of claiming
something nothing checks.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
REFERENCE = re.compile(r"`([\w./-]+\.py)::(\w+)")
CLAIM_ROW = re.compile(r"^\| (\d+) \|")  # a numbered failure mode, or an exit code of the contract


def claims() -> list[tuple[int, str]]:
    """(line number, text) of every table row and property bullet that makes a claim."""
    found, section = [], ""
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("## "):
            section = line
        if CLAIM_ROW.match(line) or (section.startswith("## Property") and line.startswith("- ")):
            found.append((number, line))
    return found


def resolve(path: str) -> Path:
    return ROOT / ("tests/reliability/" + path[len("rel/"):] if path.startswith("rel/") else path)


@cache
def defined_tests(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(node.name for node in tree.body
                     if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))


def test_the_doc_makes_claims():
    # Numbered rows 1-95 and the six exit codes; a parse that finds few means the format changed.
    assert len(claims()) >= 90


@pytest.mark.parametrize("number, line", claims(), ids=lambda value: str(value)[:40])
def test_each_claim_names_a_test(number, line):
    assert REFERENCE.search(line), f"docs/reliability.md:{number} names no path::test_function: {line[:160]}"


def test_every_named_test_exists():
    missing = []
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), start=1):
        for path, name in REFERENCE.findall(line):
            file = resolve(path)
            if not file.is_file():
                missing.append(f"{number}: no file {path}")
            elif name not in defined_tests(file):
                missing.append(f"{number}: no test function {name} in {path}")
    assert not missing, "\n".join(missing)
