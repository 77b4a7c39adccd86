"""``attnlab perceptron``: the demo, the built-in data sets, CSV files, the SVG plot, errors."""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from attnlab.commands import perceptron
from attnlab.errors import AttnlabError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="attnlab")
    perceptron.register(root.add_subparsers(dest="command"))
    return root


def run(*argv: str) -> int:
    args = parser().parse_args(["perceptron", *argv])
    return args.run(args)


def field(text: str, name: str) -> float:
    return float(re.search(rf"^{name}\s+([0-9.]+)", text, re.MULTILINE).group(1))


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["perceptron", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: attnlab perceptron" in out and "examples:" in out and "Novikoff" in out


def test_demo_converges_fails_on_xor_and_the_mlp_solves_it(capsys):
    assert run() == 0
    separable, xor, mlp = capsys.readouterr().out.strip().split("\n\n")
    assert "converged: yes" in separable and field(separable, "training accuracy") == 1.0
    made, bound = re.search(r"bound \(R/margin\)\^2 = ([0-9.e+]+); mistakes made (\d+) \(within the bound\)",
                            separable).group(2, 1)
    assert int(made) <= float(bound)
    assert "with the generating line as u" in separable
    assert "converged: no" in xor and field(xor, "training accuracy") <= 0.75
    assert "does not separate the data" in xor
    assert "MLPClassifier" in mlp and field(mlp, "training accuracy") == 1.0


@pytest.mark.parametrize("name", ["and", "or"])
def test_and_or_are_separable(name, capsys):
    assert run("--dataset", name) == 0
    out = capsys.readouterr().out
    assert "converged: yes" in out and field(out, "training accuracy") == 1.0 and "within the bound" in out


def test_csv_with_header_label_column_split_and_standardize(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    labels = np.where(X @ np.array([1.0, 1.0, -1.0]) > 0, "spam", "ham")
    lines = ["kind,a,b,c"] + [f"{k},{a},{b},{c}" for k, (a, b, c) in zip(labels, X, strict=True)]
    path = tmp_path / "mail.csv"
    path.write_text("\n".join(lines) + "\n")
    assert run("--dataset", str(path), "--label", "kind", "--test-fraction", "0.25", "--standardize") == 0
    out = capsys.readouterr().out
    assert "120 samples, 3 features, label column 'kind'" in out
    assert "(90 samples)" in out and "(30 held-out samples)" in out
    assert field(out, "test accuracy") >= 0.9 and "spam vs ham" in out


def test_csv_without_header_uses_the_last_column_and_mlp(tmp_path, capsys):
    path = tmp_path / "xor.csv"
    path.write_text("0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    assert run("--dataset", str(path), "--mlp") == 0
    out = capsys.readouterr().out
    assert "label column 'column 3'" in out and field(out, "training accuracy") == 1.0


@pytest.mark.parametrize("mlp", [False, True])
def test_plot_writes_an_svg_with_every_point_and_the_curve(tmp_path, capsys, mlp):
    out = tmp_path / "plot.svg"
    extra = ["--mlp"] if mlp else []
    assert run("--dataset", "separable", "--samples", "40", "--plot", str(out), *extra) == 0
    root = ET.parse(out).getroot()
    tags = [element.tag.split("}")[1] for element in root.iter()]
    assert tags.count("circle") == 40 and tags.count("polyline") == 1 and tags.count("rect") > 1000
    texts = " ".join(element.text or "" for element in root.iter())
    assert ("training loss per epoch" if mlp else "mistakes per epoch") in texts


def test_plot_of_data_with_more_than_two_features_has_only_the_curve(tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("".join(f"{i},{i % 3},{i % 5},{int(i > 9)}\n" for i in range(20)))
    out = tmp_path / "plot.svg"
    run("--dataset", str(path), "--plot", str(out))
    tags = [element.tag.split("}")[1] for element in ET.parse(out).getroot().iter()]
    assert "circle" not in tags and tags.count("polyline") == 1


def test_separable_points_keep_the_gap_from_their_line():
    X, y = perceptron.separable_points(500, seed=3, gap=0.1)
    normal, offset = perceptron.SEPARATING_LINE
    distance = X @ normal - offset  # signed distance to the line, normal is a unit vector
    assert X.shape == (500, 2) and np.abs(X).max() <= 1
    assert np.abs(distance).min() >= 0.1
    np.testing.assert_array_equal(y, (distance > 0).astype(int))
    assert 100 < y.sum() < 400


def test_long_runs_of_epochs_are_abbreviated(capsys):
    run("--dataset", "xor", "--max-iter", "50")
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("mistakes per epoch"))
    assert "... (38 more) ..." in line and len(line.split()) == 3 + 12 + 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "iris"], "Unknown dataset 'iris'"),
        (["--dataset", "/nonexistent/data.csv"], "does not exist"),
        (["--plot", "x.svg"], "need --dataset"),
        (["--dataset", "xor", "--test-fraction", "1.5"], r"--test-fraction must be in \[0, 1\)"),
        (["--dataset", "xor", "--mlp", "--hidden", "8,x"], "--hidden must be comma-separated ints"),
        (["--dataset", "xor", "--lr", "-1"], "The 'eta0' parameter of Perceptron must be a float"),
        (["--dataset", "separable", "--samples", "1"], "--samples must be >= 2"),
    ],
)
def test_errors_are_attnlab_errors(argv, message):
    with pytest.raises(AttnlabError, match=message):
        run(*argv)


@pytest.mark.parametrize(
    "content, argv, message",
    [
        ("a,b,y\n1,2,x\n3,4,z\n", ["--label", "nope"], "--label 'nope' is not a column"),
        ("1,2,0\n3,4,1\n", ["--label", "y"], "needs a header row"),
        ("a,b,y\n1,2,0\n3,4\n", [], "Line 3 .* has 2 cells, expected 3"),
        ("a,b,y\n1,red,0\n3,4,1\n", [], "feature 'red' is not a number"),
        ("a,b,y\n1,2,0\n3,4,0\n", [], "got 1 class"),
        ("", [], "is empty"),
    ],
)
def test_bad_csv_files(tmp_path, content, argv, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(AttnlabError, match=message):
        run("--dataset", str(path), *argv)
