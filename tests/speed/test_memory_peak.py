"""The peak RSS a fresh workload process reports is its own, not its launcher's."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from attnlab.speed.memory import MB, peak_rss_bytes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_child_does_not_inherit_the_parents_peak():
    ballast = torch.ones(400 * MB // 4)  # 400 MiB resident in this (the launching) process
    assert peak_rss_bytes() > 400 * MB
    child = subprocess.run(
        [sys.executable, "-c", "from attnlab.speed.memory import peak_rss_bytes; print(peak_rss_bytes())"],
        capture_output=True, text=True, check=True,
    )
    del ballast
    # A bare interpreter with torch imported needs far less than the 400 MiB held here.
    assert int(child.stdout.split()[-1]) < 400 * MB
