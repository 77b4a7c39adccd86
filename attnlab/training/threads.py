"""How many threads torch should use for a training run on a shared machine (``--threads``).

Threads that wait for a core another program keeps busy slow small models down several
times, so ``auto`` takes the cores that are idle now (measured from Linux's /proc/stat over
a quarter of a second; elsewhere from the 1-minute load average), within those this process
may use.
"""

from __future__ import annotations

import os
import time

from attnlab.errors import AttnlabError
from attnlab.training import distributed


def cpu_ticks() -> tuple[int, int] | None:
    """(all, idle) CPU time of the whole machine since boot, in clock ticks, from Linux's
    /proc/stat; None where there is no such file."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
    ticks = [int(field) for field in fields[1:9]]
    return sum(ticks), ticks[3] + (ticks[4] if len(ticks) > 4 else 0)


def busy_cores(interval: float = 0.25) -> float | None:
    """How many cores other programs keep busy now: two /proc/stat samples ``interval`` seconds
    apart. Unlike the 1-minute load average, this no longer counts a job that ended seconds ago.
    None where /proc/stat cannot be read."""
    first = cpu_ticks()
    if first is None:
        return None
    time.sleep(interval)
    second = cpu_ticks()
    if second is None or second[0] <= first[0]:
        return None
    elapsed, idle = second[0] - first[0], second[1] - first[1]
    return (os.cpu_count() or 1) * (elapsed - idle) / elapsed


def resolve_threads(value: str) -> int:
    """--threads: a count >= 1, or "auto" = the usable cores that other programs leave idle
    (at least 1): measured from /proc/stat, else the 1-minute load average."""
    if value == "auto":
        busy = busy_cores()
        if busy is None:
            try:
                busy = os.getloadavg()[0]
            except (AttributeError, OSError):  # no load average on this platform
                busy = 0.0
        idle = (os.cpu_count() or 1) - busy
        return max(1, min(distributed.usable_cores(), round(idle)))
    if not value.isdigit() or int(value) < 1:
        raise AttnlabError(f"--threads must be 'auto' or an int >= 1. Got {value!r} instead.")
    return int(value)
