"""`--threads auto` (of `attnlab train transformer`): idle cores measured now, within the usable ones."""

import os
import subprocess
import sys
import time

import pytest

from attnlab.errors import AttnlabError
from attnlab.training import distributed, threads

linux_only = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux's /proc/stat")


def fake_ticks(monkeypatch, samples):
    samples = iter(samples)
    monkeypatch.setattr(threads, "cpu_ticks", lambda: next(samples))


def test_busy_cores_is_the_busy_share_of_all_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    # 1,000 ticks passed, 250 of them idle: 3 of 4 cores busy
    fake_ticks(monkeypatch, [(10_000, 4_000), (11_000, 4_250)])
    assert threads.busy_cores(interval=0) == pytest.approx(3.0)


def test_auto_takes_the_idle_cores_but_at_least_one(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(distributed, "usable_cores", lambda: 4)
    for busy, expected in [(0.0, 4), (1.2, 3), (3.9, 1), (4.0, 1)]:
        monkeypatch.setattr(threads, "busy_cores", lambda busy=busy: busy)
        assert threads.resolve_threads("auto") == expected


def test_auto_stays_within_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    monkeypatch.setattr(distributed, "usable_cores", lambda: 2)  # e.g. taskset -c 0,1
    assert threads.resolve_threads("auto") == 2


def test_auto_falls_back_to_the_load_average_without_proc_stat(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(distributed, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "cpu_ticks", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 0.0, 0.0), raising=False)
    assert threads.resolve_threads("auto") == 2


def test_explicit_counts_and_bad_values():
    assert threads.resolve_threads("3") == 3
    for bad in ["0", "-1", "two", "1.5"]:
        with pytest.raises(AttnlabError, match="--threads must be 'auto' or an int >= 1"):
            threads.resolve_threads(bad)


@linux_only
def test_a_spinning_process_is_counted_busy_at_once():
    """The load average would take a minute to see it; /proc/stat sees it within the interval."""
    before = threads.busy_cores(interval=0.2)
    assert 0 <= before <= os.cpu_count() + 1e-6
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # let it start
        during = threads.busy_cores(interval=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert during >= 0.8  # at least the spinner's core, whatever else runs
