"""The matplotlib pictures: files of the right format, tokens kept as text, unwritable paths refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.inspect import plots

PNG = b"\x89PNG\r\n\x1a\n"
TOKENS = ["[CLS]", "$x$", "<script>", " cat", "\n", "[SEP]"]


def _probs(layers=2, heads=3, t=6, s=6):
    return torch.softmax(torch.randn(layers, heads, t, s, generator=torch.Generator().manual_seed(0)), -1)


def _svg_text(path) -> str:
    root = ET.parse(path).getroot()  # well-formed XML, or this raises
    return " ".join(e.text or "" for e in root.iter() if e.tag.endswith("}text") or e.tag.endswith("title"))


def test_grid_head_weighted_and_norms_as_png(tmp_path):
    probs = _probs()
    written = [
        plots.attention_grid(probs, tmp_path / "grid.png"),
        plots.head_map(probs[0, 1], TOKENS, TOKENS, tmp_path / "head.png", title="layer 0, head 1"),
        plots.raw_vs_weighted(probs[1, 2], 3 * probs[1, 2], TOKENS, TOKENS, tmp_path / "weighted.png"),
        plots.value_norm_bars(torch.rand(6), torch.rand(6), TOKENS, tmp_path / "norms.png"),
        plots.attention_masks(tmp_path / "masks.png"),
    ]
    for path in written:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000, path


def test_svg_keeps_tokens_as_escaped_text(tmp_path, monkeypatch):
    import matplotlib

    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")  # text as <text>, not paths
    path = plots.head_map(_probs()[0, 0], TOKENS, TOKENS, tmp_path / "head.svg")
    text = _svg_text(path)
    assert "<script>" in text and "$x$" in text and "·cat" in text  # literal, not mathtext or markup
    assert b"<script>" not in path.read_bytes()  # escaped in the file


def test_output_paths_are_checked(tmp_path):
    with pytest.raises(AttnlabError, match=r"must end in one of \.png, \.svg; got '\.jpg'"):
        plots.output_path(tmp_path / "a.jpg")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(AttnlabError, match="is a directory"):
        plots.output_path(tmp_path / "dir.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(AttnlabError, match="is not a directory"):
        plots.output_path(tmp_path / "file" / "a.png")
    assert plots.output_path(tmp_path / "new" / "deeper" / "a.png").name == "a.png"  # created on write


def test_directory_that_refuses_new_files_is_refused_before_any_work():
    """A chmod-ed read-only folder refuses nothing to root, which ignores mode bits (CI runs as
    root), so the folder here is /proc: it refuses new files to every user. The folders missing
    below it would be created on write, so the check walks up to /proc and names it."""
    with pytest.raises(AttnlabError) as error:
        plots.output_path("/proc/attnlab-missing/deeper/a.png")
    assert str(error.value) == ("Cannot write /proc/attnlab-missing/deeper/a.png: the directory /proc "
                                "is not writable; choose another path.")


def test_unwritable_path_is_one_line_error(tmp_path):
    """/proc refuses new files even for root: the write fails and says so in one line."""
    with pytest.raises(AttnlabError) as error:
        plots.attention_masks("/proc/attnlab-masks.png")
    assert "Cannot write /proc/attnlab-masks.png" in str(error.value) and "\n" not in str(error.value)
