"""Writing files so that an interrupted write never leaves a broken one behind.

Write to a temporary file in the same directory, flush it to disk, then rename
it over the target: on POSIX the rename is atomic, so readers see either the
old complete file or the new complete file, never half of one. A write that fails
(a full disk, a read-only directory) removes its temporary file and raises one
:class:`~attnlab.errors.AttnlabError` (a :class:`~attnlab.errors.SystemFailureError` where the
machine, not the path, failed) that says the previous file is unchanged.

Before any work, :func:`check_writable` refuses a file that could not be written and
:func:`check_output_dir` an output directory that could not be made or would overwrite a
saved model: every command and library writer checks its paths through these two.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from attnlab.errors import BAD_PATH_ERRNOS, AttnlabError, SystemFailureError

# Writers report a full disk in their own ways: OSError(ENOSPC), safetensors'
# "No space left on device (os error 28)", torch.save's "unexpected pos ...".
_NO_SPACE = ("No space left", "os error 28", "Errno 28")
_LITTLE_SPACE = 1 << 20  # bytes; less than this free after a failed write counts as a full disk


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(temp_path)`` then rename the temporary file to ``path``."""
    path = Path(path)
    if path.is_dir():
        raise AttnlabError(f"{path} is a directory; give a file name to write to.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_path = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from None
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
    except BaseException as error:
        full = _disk_full(error, path.parent)  # before the cleanup frees the partial file's space
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        if isinstance(error, OSError) or full:
            raise _write_error(path, error, full) from None
        raise
    return path


def check_writable(path: str | Path, flag: str = "") -> Path:
    """Refuse, before any work, a file that could not be written: an empty name, a directory, a
    path under a file, a file or directory that is not writable. ``flag`` (e.g. ``"--output"``)
    names the option in the message. Returns the path."""
    if not str(path).strip():
        raise AttnlabError(f"The file name{' of ' + flag if flag else ''} is empty; give a file to write to.")
    path = Path(path).expanduser()
    named = f"{path} ({flag})" if flag else f"{path}"
    if path.is_dir():
        raise AttnlabError(f"Cannot write {named}: it is a directory; give a file name.")
    if path.exists() and not os.access(path, os.W_OK):
        raise AttnlabError(f"Cannot write {named}: the file is not writable; choose another path.")
    ancestor = existing_ancestor(path)
    if not ancestor.is_dir():
        raise AttnlabError(f"Cannot write {named}: {ancestor} is not a directory; choose another path.")
    try:  # os.access says yes to root even where nothing can be created (/proc): try for real
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError:
        raise AttnlabError(f"Cannot write {named}: the directory {ancestor} is not writable; "
                           f"choose another path.") from None
    return path


def existing_ancestor(path: Path) -> Path:
    """The nearest parent of ``path`` that exists (``/`` at the latest)."""
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    return ancestor


def check_parents(path: str | Path, flag: str = "") -> None:
    """Refuse, before any work, a directory ``path`` that no mkdir could create: one under a file."""
    ancestor = existing_ancestor(Path(path).expanduser())
    if not ancestor.is_dir():
        raise AttnlabError(f"{_named(path, flag)}: {ancestor} is a file, not a directory; "
                           f"choose another {flag or 'directory'}.")


def _named(path: str | Path, flag: str) -> str:
    return f"{flag} {path}" if flag else f"{path}"


def check_output_dir(path: str | Path, flag: str = "", *, keep: Sequence[str] = (), kept: str = "a model",
                     create: bool = False) -> Path:
    """Refuse, before any work, a directory to write into that cannot be one or would overwrite
    something: a file ("--out X is a file; give a directory"), a path under a file (as
    :func:`check_parents`), or, for each name in ``keep`` (e.g. ``("config.json",
    "model.safetensors")``), a directory that already holds it ("X already holds a model
    (config.json); choose another --out so nothing saved is overwritten"; ``kept`` says what it
    is). ``flag`` (e.g. ``"--out"``) names the option in the messages. ``create`` makes the
    directory and its parents. Returns the path, ``~`` expanded."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise AttnlabError(f"{_named(path, flag)} is a file; give a directory.")
    check_parents(path, flag)
    for name in keep:
        if (path / name).exists():
            raise AttnlabError(f"{path} already holds {kept} ({name}); choose another "
                               f"{flag or 'directory'} so nothing saved is overwritten.")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_failure(path, error) from None
    return path


def write_failure(path: str | Path, error: OSError) -> AttnlabError:
    """The one-line error for an ``OSError`` raised while writing ``path`` (a full disk named as such)."""
    path = Path(path)
    return _write_error(path, error, _disk_full(error, path.parent))


def _disk_full(error: BaseException, directory: Path) -> bool:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    if not isinstance(error, Exception):
        return False  # KeyboardInterrupt, SystemExit: not a write failure
    if any(marker in str(error) for marker in _NO_SPACE):
        return True
    try:
        return shutil.disk_usage(directory).free < _LITTLE_SPACE
    except OSError:
        return False


def _write_error(path: Path, error: BaseException, full: bool | None = None) -> AttnlabError:
    kept = f"; the previous {path.name} is unchanged" if path.is_file() else ""
    if full is None:
        full = isinstance(error, OSError) and error.errno == errno.ENOSPC
    if full:
        return SystemFailureError(
            f"Could not write {path}: no space left on the device{kept}. "
            f"Free some disk space (or write elsewhere) and run again."
        )
    reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0][:160]
    # A wrong or forbidden path is bad input; anything else (an I/O error) is the machine failing.
    kind = AttnlabError if getattr(error, "errno", None) in BAD_PATH_ERRNOS else SystemFailureError
    return kind(f"Could not write {path} ({reason}){kept}; check the path and its permissions.")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (UTF-8)."""

    def write(temp_path: str) -> None:
        with open(temp_path, "w", encoding="utf-8") as stream:
            stream.write(text)

    return atomic_write(path, write)


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` (a run's ``metrics.jsonl``), in one write, so
    an interrupted run leaves whole lines; a failure is the one-line error of :func:`write_failure`."""
    line = json.dumps(record, allow_nan=True) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(line)
    except OSError as error:
        raise write_failure(path, error) from None
