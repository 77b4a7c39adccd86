"""Pictures of a fitted perceptron: the writer chosen by the file name, the hand-written SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from attnlab.data.points import separable_points
from attnlab.errors import AttnlabError
from attnlab.inspect.decision_plots import COLOURS, plot_writer, write_png, write_svg
from attnlab.models.perceptron import Perceptron


def test_the_writer_follows_the_suffix():
    assert plot_writer("a.SVG") is write_svg
    assert plot_writer("b.png") is write_png
    with pytest.raises(AttnlabError, match="must end in .png"):
        plot_writer("c.jpg")


def test_svg_has_regions_in_both_colours_each_point_and_the_curve(tmp_path):
    X, y = separable_points(30, seed=1)
    model = Perceptron(random_state=0).fit(X, y)
    write_svg(tmp_path / "p.svg", model, X, y, grid=10)
    root = ET.parse(tmp_path / "p.svg").getroot()
    tags = [element.tag.split("}")[1] for element in root.iter()]
    assert tags.count("circle") == 30 and tags.count("polyline") == 1
    fills = {element.get("fill") for element in root.iter() if element.tag.endswith("rect")}
    assert {COLOURS[0], COLOURS[1]} <= fills  # both sides of the learned line are painted


def test_an_unwritable_svg_is_a_one_line_error(tmp_path):
    X, y = separable_points(10, seed=1)
    model = Perceptron(random_state=0).fit(X, y)
    with pytest.raises(AttnlabError, match="Cannot write the plot"):
        write_svg(tmp_path / "missing" / "p.svg", model, X, y)
