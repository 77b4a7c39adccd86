"""The matplotlib pictures: files of the right format, tokens kept as text, unwritable paths refused."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
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


@pytest.fixture
def figures(monkeypatch):
    """Every figure plots.save writes, kept so a test can read what was drawn (closing a figure
    keeps its artists)."""
    kept = []
    save = plots.save

    def keep(figure, path):
        kept.append(figure)
        return save(figure, path)

    monkeypatch.setattr(plots, "save", keep)
    return kept


def _drawn(ax) -> np.ndarray:
    """The one image of an axes, as the array matplotlib colours."""
    assert len(ax.images) == 1
    return np.asarray(ax.images[0].get_array())


def _assert_file_is_the_figure(path, figure):
    """The PNG written holds exactly the figure's pixels: it is rendered again here, with the
    settings plots.save uses, and compared pixel by pixel."""
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG
    again = io.BytesIO()
    figure.savefig(again, format="png", dpi=110, bbox_inches="tight")
    again.seek(0)
    assert np.array_equal(matplotlib.image.imread(path), matplotlib.image.imread(again))


def test_grid_draws_every_head_of_every_layer(tmp_path, figures):
    probs = _probs()  # (2 layers, 3 heads, 6, 6)
    path = plots.attention_grid(probs, tmp_path / "grid.png", title="probs")
    (figure,) = figures
    assert len(figure.axes) == 6 and figure.get_suptitle().startswith("probs: rows = layers")
    for index, ax in enumerate(figure.axes):
        layer, head = divmod(index, 3)
        assert np.array_equal(_drawn(ax), probs[layer, head].numpy()), (layer, head)
        assert ax.get_title() == (f"head {head}" if layer == 0 else "")
        assert ax.get_ylabel() == (f"layer {layer}" if head == 0 else "")
    _assert_file_is_the_figure(path, figure)


def test_head_map_draws_the_weights_with_tokens_and_values(tmp_path, figures):
    probs = _probs()[0, 1]
    path = plots.head_map(probs, TOKENS, TOKENS, tmp_path / "head.png", title="layer 0, head 1")
    (figure,) = figures
    ax, colorbar = figure.axes
    assert np.array_equal(_drawn(ax), probs.numpy()) and ax.get_title() == "layer 0, head 1"
    shown = [plots.label(t) for t in TOKENS]
    assert [t.get_text() for t in ax.get_xticklabels()] == shown
    assert [t.get_text() for t in ax.get_yticklabels()] == shown
    assert (ax.get_xlabel(), ax.get_ylabel(), colorbar.get_ylabel()) == (
        "key / value token j", "query token i", "alpha_ij")
    # One value per cell, row by row, as written: ".17" for 0.17.
    assert [t.get_text() for t in ax.texts] == [f"{v:.2f}"[1:] for v in probs.flatten().tolist()]
    _assert_file_is_the_figure(path, figure)


def test_raw_vs_weighted_draws_both_maps_side_by_side(tmp_path, figures):
    probs = _probs()[1, 2]
    path = plots.raw_vs_weighted(probs, 3 * probs, TOKENS, TOKENS, tmp_path / "weighted.png", title="L1 H2")
    (figure,) = figures
    left, right, *colour_bars = figure.axes
    assert len(colour_bars) == 2
    assert np.array_equal(_drawn(left), probs.numpy()) and left.get_title() == "attention weight alpha_ij"
    assert np.array_equal(_drawn(right), (3 * probs).numpy())
    assert right.get_title().startswith("value-weighted") and figure.get_suptitle() == "L1 H2"
    _assert_file_is_the_figure(path, figure)


def test_value_norm_bars_draw_both_norms_per_token(tmp_path, figures):
    norms, carried = torch.rand(6, generator=torch.Generator().manual_seed(1)), torch.rand(6)
    path = plots.value_norm_bars(norms, carried, TOKENS, tmp_path / "norms.png")
    (figure,) = figures
    (ax,) = figure.axes
    assert len(ax.containers) == 2
    for bars, expected in zip(ax.containers, (norms, carried), strict=True):
        assert np.allclose([bar.get_height() for bar in bars], expected.numpy(), rtol=0, atol=1e-7)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "||v_j|| (value vector)", "||v_j W_O^(h)|| (what it carries)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [plots.label(t) for t in TOKENS]
    _assert_file_is_the_figure(path, figure)


def test_masks_draw_who_may_attend_to_whom(tmp_path, figures):
    path = plots.attention_masks(tmp_path / "masks.png", length=5, source_length=3, padding=2)
    (figure,) = figures
    bert, gpt, encoder, decoder, cross = figure.axes
    causal = np.tril(np.ones((5, 5)))
    padded = np.ones((5, 5))
    padded[:, 3:] = 0  # the last 2 keys are padding
    for ax, mask in ((bert, padded), (gpt, causal), (encoder, np.ones((3, 3))), (decoder, causal),
                     (cross, np.ones((5, 3)))):
        assert np.array_equal(_drawn(ax), mask), ax.get_title()
    assert [ax.get_title().split("\n")[0] for ax in figure.axes] == [
        "BERT", "GPT", "Transformer encoder", "Transformer decoder", "Transformer decoder"]
    _assert_file_is_the_figure(path, figure)


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
