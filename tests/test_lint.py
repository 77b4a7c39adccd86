"""The code base stays `ruff check` clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    # ruff is in the dev extra: a missing ruff is a broken install, so it fails rather than skips.
    assert Path(ruff).exists(), "ruff is not installed: pip install -e '.[dev]'"
    result = subprocess.run([ruff, "check", "attnlab", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
