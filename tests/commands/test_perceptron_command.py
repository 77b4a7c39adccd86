"""``attnlab perceptron``: the demo, the built-in data sets, scikit-learn's data sets, CSV files,
the SVG and PNG plots, errors."""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET

import matplotlib.image
import numpy as np
import pytest

from attnlab.commands import perceptron
from attnlab.errors import AttnlabError
from attnlab.inspect.decision_plots import COLOURS


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


def test_long_runs_of_epochs_are_abbreviated(capsys):
    run("--dataset", "xor", "--max-iter", "50")
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("mistakes per epoch"))
    assert "... (38 more) ..." in line and len(line.split()) == 3 + 12 + 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "nope"], r"Unknown dataset 'nope': choose one of \[.*'iris', 'breast_cancer', "
                                r"'digits'\] or give a CSV file"),
        (["--dataset", "/nonexistent/data.csv"], "does not exist"),
        (["--plot", "x.svg"], "need --dataset"),
        (["--positive-class", "1"], "need --dataset"),
        (["--dataset", "xor", "--plot", "x.jpg"], r"--plot 'x.jpg': the file name must end in .png "
                                                  r"\(matplotlib\) or .svg"),
        (["--dataset", "xor", "--positive-class", "2"],
         r"--positive-class '2' is not a label of xor; its labels are \['0', '1'\]"),
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


# ---- the data sets scikit-learn ships (acceptance: iris setosa-vs-rest converges)

def test_iris_setosa_against_the_rest_is_separated_and_converges(capsys):
    assert run("--dataset", "iris", "--positive-class", "setosa") == 0
    out = capsys.readouterr().out
    assert "iris (from scikit-learn): 150 samples, 4 features, 3 classes; 'setosa' against the rest" in out
    assert "converged: yes" in out and field(out, "training accuracy") == 1.0
    assert re.search(r"Novikoff  setosa vs rest: margin [0-9.]+, .* \(within the bound\)", out)


def test_iris_without_positive_class_is_three_one_vs_rest_problems(capsys):
    run("--dataset", "iris", "--max-iter", "20")
    out = capsys.readouterr().out
    assert all(f"Novikoff  {name} vs rest" in out for name in ("setosa", "versicolor", "virginica"))


def test_breast_cancer_standardised_held_out(capsys):
    assert run("--dataset", "breast_cancer", "--standardize", "--test-fraction", "0.25",
               "--max-iter", "50") == 0
    out = capsys.readouterr().out
    assert "breast_cancer (from scikit-learn): 569 samples, 30 features, 2 classes" in out
    assert "(427 samples)" in out and "(142 held-out samples)" in out
    assert field(out, "test accuracy") >= 0.93 and "malignant vs benign" in out


def test_digits_with_the_mlp(capsys):
    assert run("--dataset", "digits", "--mlp", "--hidden", "32", "--standardise", "--test-fraction", "0.25",
               "--max-iter", "15") == 0
    out = capsys.readouterr().out
    assert "digits (from scikit-learn): 1797 samples, 64 features, 10 classes" in out
    assert field(out, "test accuracy") >= 0.93


def test_positive_class_on_a_csv_file_names_the_class_first(tmp_path, capsys):
    path = tmp_path / "points.csv"
    path.write_text("x,y,kind\n0,0,a\n0,1,b\n5,5,c\n5,6,c\n")
    run("--dataset", str(path), "--positive-class", "c")
    out = capsys.readouterr().out
    assert "'c' against the rest" in out and "Novikoff  c vs rest" in out and "converged: yes" in out


def test_without_scikit_learn_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    message = (r"^--dataset iris comes with scikit-learn, which is not installed: pip install scikit-learn "
               r"\(or attnlab's dev extra\).$")
    with pytest.raises(AttnlabError, match=message):
        run("--dataset", "iris")


# ---- the PNG plot (matplotlib, Agg)


def colour_share(image: np.ndarray, colour: str, alpha: float) -> float:
    """The fraction of pixels of ``colour`` painted at ``alpha`` over white."""
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    expected = 1 - alpha + alpha * rgb
    return float((np.abs(image[..., :3] - expected).max(axis=-1) < 0.02).mean())


@pytest.mark.parametrize("mlp", [False, True])
def test_plot_writes_a_png_with_both_regions_and_the_curve(tmp_path, capsys, mlp):
    out = tmp_path / "plot.png"
    extra = ["--mlp"] if mlp else []
    assert run("--dataset", "separable", "--samples", "40", "--plot", str(out), *extra) == 0
    assert f"plot      {out}" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    assert image.shape == (460, 1100, 4)  # two panels: regions, then mistakes or loss per epoch
    # Both decision regions are painted, each over a good part of the left panel.
    assert colour_share(image, COLOURS[0], 0.2) > 0.05
    assert colour_share(image, COLOURS[1], 0.2) > 0.05


def test_png_of_data_with_more_than_two_features_is_the_curve_alone(tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("".join(f"{i},{i % 3},{i % 5},{int(i > 9)}\n" for i in range(20)))
    out = tmp_path / "three.png"
    run("--dataset", str(path), "--plot", str(out))
    image = matplotlib.image.imread(out)
    assert image.shape == (460, 600, 4)
    assert colour_share(image, COLOURS[0], 0.2) < 0.01  # no regions drawn


def test_without_matplotlib_png_fails_before_training_and_svg_still_works(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "xor.png"
    with pytest.raises(AttnlabError, match=r"needs matplotlib: pip install 'attnlab\[plot\]' \(the plot "
                                           r"extra\), or name a .svg file"):
        run("--dataset", "xor", "--plot", str(png))
    assert not png.exists() and capsys.readouterr().out == ""  # nothing trained
    assert run("--dataset", "xor", "--plot", str(tmp_path / "xor.svg")) == 0
    assert (tmp_path / "xor.svg").is_file()
