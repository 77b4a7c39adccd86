"""ATTNLAB_REQUIRE_ALL=1 (set by .ci/run) turns skips for a missing install into failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
SKIPPING = '''
import importlib.util
import pytest

def test_weights():
    pytest.skip("needs `pip install --no-deps some-weights`")

@pytest.mark.skipif(True, reason="headless Chromium: apt-get install -y chromium")
def test_browser():
    pass

@pytest.mark.skipif(True, reason="reads /proc")
def test_platform():
    pass
'''


def run_pytest(tmp_path: Path, require_all: str | None, *modules: str) -> tuple[int, str]:
    """(pytest's exit code, its summary line) for the little project at tmp_path (or some modules)."""
    env = {k: v for k, v in os.environ.items() if k != "ATTNLAB_REQUIRE_ALL"}
    if require_all is not None:
        env["ATTNLAB_REQUIRE_ALL"] = require_all
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", *modules],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout.splitlines()[-1]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "test_module_skip.py").write_text(  # skips while pytest collects it
        'import pytest\npytest.importorskip("attnlab_no_such_module")\n\ndef test_x():\n    pass\n')
    return tmp_path


def test_without_the_variable_missing_installs_skip(project):
    code, summary = run_pytest(project, None)
    assert code == 0 and summary.startswith("4 skipped")


def test_with_it_pip_installs_fail_and_other_skips_still_skip(project):
    # The pip install hint fails; Debian's chromium (installed only "where it may") and a platform
    # skip stay skips.
    code, summary = run_pytest(project, "1", "test_skipping.py")
    assert code == 1 and summary.startswith("1 failed, 2 skipped")
    # A module that skips while collected becomes a collection error, which stops the whole run.
    code, summary = run_pytest(project, "1", "test_module_skip.py")
    assert code == 2 and summary.startswith("1 error")
