"""What every speed benchmark shares: interleaved timing, the machine's state, RESULTS.md rows.

Timing is interleaved to share out drifts in machine load: after warm-up calls, each
round times every variant once, in an order that alternates between rounds; the
figure reported is the median over rounds, and ratios are taken between medians of
the same run. Each record names the CPU capability (AVX2 / AVX512 / AMX, native bf16
or not), the torch thread count and the 1-minute load average at start and end, so a
loaded machine is visible next to its figures.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attnlab.errors import AttnlabError

RESULTS_HEADER = (
    "# Benchmark results\n\nAppended by the scripts in this directory; each row is one run, as measured.\n\n"
)


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch threads (None keeps torch's choice); returns the count in use."""
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise AttnlabError(f"threads must be an int >= 1. Got {threads!r} instead.")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@dataclass
class Machine:
    """The state a figure was measured in."""

    cpu: str
    cores: int
    threads: int
    torch: str
    transformers: str
    load_start: float
    load_end: float = float("nan")

    @classmethod
    def now(cls) -> Machine:
        from attnlab.device import describe_cpu

        try:
            import transformers

            version = transformers.__version__
        except ImportError:
            version = "-"
        return cls(describe_cpu(), os.cpu_count() or 0, torch.get_num_threads(), torch.__version__,
                   version, os.getloadavg()[0])

    def finish(self) -> Machine:
        self.load_end = os.getloadavg()[0]
        return self

    def line(self) -> str:
        return (f"CPU capability: {self.cpu}, {self.cores} cores; torch {self.torch} with {self.threads} "
                f"thread(s); transformers {self.transformers}; 1-minute load average {self.load_start:.2f} "
                f"at the start, {self.load_end:.2f} at the end (other processes share the cores when it "
                f"exceeds the thread count)")

    def cells(self) -> list[str]:
        return [f"{self.cpu}, {self.cores} cores", str(self.threads), self.torch, self.transformers,
                f"{self.load_start:.2f} / {self.load_end:.2f}"]


MACHINE_COLUMNS = ["CPU / cores", "threads", "torch", "transformers", "load avg (1 min, start/end)"]


@dataclass
class Timings:
    """Seconds per call of each variant, one entry per round."""

    seconds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def rate(self, name: str, units: float) -> float:
        """units per second at the median time (tokens/s when units = tokens per call)."""
        return units / self.median(name)

    def ratio(self, name: str, reference: str) -> float:
        """How many times faster ``name`` is than ``reference`` (median times of the same run)."""
        return self.median(reference) / self.median(name)


def interleaved(variants: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 1) -> Timings:
    """Time each variant once per round, alternating the order between rounds, after warm-up calls."""
    if rounds < 1:
        raise AttnlabError(f"rounds must be an int >= 1. Got {rounds!r} instead.")
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    timings = Timings({name: [] for name in variants})
    names = list(variants)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            started = time.perf_counter()
            variants[name]()
            timings.seconds[name].append(time.perf_counter() - started)
    return timings


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(fn(), seconds it took): for one-off costs such as compilation."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def table_header(columns: list[str]) -> str:
    return "| " + " | ".join(columns) + " |\n" + "|" + "---|" * len(columns) + "\n"


def table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "/").replace("\n", " ") for cell in cells) + " |\n"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def record(path: Path, section: str, columns: list[str], rows: list[list[str]]) -> None:
    """Add ``rows`` to the table under ``## section`` in the Markdown file ``path``.

    The file is read right before writing and replaced atomically; everything else in it
    stays as it was. A new section goes before the first existing section, not after the
    last, because some scripts append their rows blindly at the end of the file, where the
    last table must stay theirs. A missing file gets the common header.
    """
    heading = f"## {section}\n"
    try:
        text, mode = path.read_text(encoding="utf-8"), path.stat().st_mode & 0o777
    except FileNotFoundError:
        text, mode = RESULTS_HEADER, 0o644
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    new_rows = [table_row(cells) for cells in rows]
    if heading in lines:
        at = lines.index(heading) + 1
        while at < len(lines) and not lines[at].startswith("|") and not lines[at].startswith("## "):
            at += 1
        if at == len(lines) or lines[at].startswith("## "):  # a heading without a table: add one
            lines[at:at] = [table_header(columns), *new_rows, "\n"]
        else:
            while at < len(lines) and lines[at].startswith("|"):
                at += 1
            lines[at:at] = new_rows
    else:
        at = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        block = [heading, "\n", table_header(columns), *new_rows, "\n"]
        if at == len(lines) and lines and lines[-1].strip():
            block.insert(0, "\n")
        lines[at:at] = block
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write("".join(lines))
    os.chmod(temp, mode)
    os.replace(temp, path)


def script_arguments(doc: str, *, rounds: int | None = 5) -> argparse.ArgumentParser:
    """The options every script in ``benchmarks/`` takes: --threads, --rounds (unless None),
    --note and --no-record; the script adds its own. The description is the docstring's first
    paragraph."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    if rounds is not None:
        parser.add_argument("--rounds", type=int, default=rounds,
                            help=f"interleaved timing rounds (default {rounds})")
    parser.add_argument("--note", default="", help="free text for the RESULTS.md rows")
    parser.add_argument("--no-record", action="store_true", help="do not write to RESULTS.md")
    return parser


def record_tables(path: Path, tables: list[tuple[str, list[str], list[list[str]]]], *, skip: bool) -> None:
    """``record`` each (section, columns, rows) in ``path`` and say so, unless ``skip`` (--no-record)."""
    if skip:
        return
    for section, columns, rows in tables:
        record(path, section, columns, rows)
    print(f"recorded in {path}")
