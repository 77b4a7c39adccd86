"""Where the four pictures of an attention stack go, and which folder writing them creates."""

from __future__ import annotations

from pathlib import Path

from attnlab.inspect.stack_figures import FIGURES, figure_paths, missing_folder


def test_figure_paths_keep_the_suffix_and_name_each_picture():
    paths = figure_paths("out/maps.svg")
    assert list(paths) == list(FIGURES)
    assert paths == {"grid": Path("out/maps.svg"), "head": Path("out/maps-head.svg"),
                     "weighted": Path("out/maps-weighted.svg"), "norms": Path("out/maps-norms.svg")}


def test_missing_folder_is_the_outermost_one_that_does_not_exist(tmp_path):
    assert missing_folder(tmp_path / "a.png") is None
    assert missing_folder(tmp_path / "new" / "deeper" / "a.png") == tmp_path / "new"
