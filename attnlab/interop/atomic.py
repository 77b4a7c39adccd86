"""Writing files so that an interrupted write never leaves a broken one behind.

Write to a temporary file in the same directory, flush it to disk, then rename
it over the target: on POSIX the rename is atomic, so readers see either the
old complete file or the new complete file, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(temp_path)`` then rename the temporary file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temp_path)
        with open(temp_path, "rb+") as stream:
            os.fsync(stream.fileno())
        # mkstemp creates the file owner-only (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_path, 0o666 & ~umask)
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (UTF-8)."""

    def write(temp_path: str) -> None:
        with open(temp_path, "w", encoding="utf-8") as stream:
            stream.write(text)

    return atomic_write(path, write)
