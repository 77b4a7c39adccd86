"""Novikoff's bound beside the mistakes made, in words, from a fitted perceptron."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.data.points import load_dataset, separable_points
from attnlab.inspect.novikoff import generating_line_report, novikoff_note, novikoff_report
from attnlab.models.perceptron import ConvergenceWarning, Perceptron


def test_separable_data_is_within_the_bound():
    X, y = separable_points(60, seed=0)
    model = Perceptron(random_state=0).fit(X, y)
    report = novikoff_report(model)
    assert report.startswith("Novikoff  1 vs 0: margin ") and report.endswith("(within the bound)")
    line = generating_line_report(model, X, y)
    bound = float(line.split("bound ")[1].split(";")[0])
    assert bound <= (model.radius_ / 0.1) ** 2 * 1.0001  # the generating line's margin is >= the gap
    assert f"mistakes made {int(model.n_mistakes_[0])}" in line
    assert novikoff_note(model).startswith(f"{int(model.n_mistakes_.sum())} mistakes in all\n")


def test_xor_gets_no_bound_and_the_positive_class_is_named_first():
    X, y, _ = load_dataset("xor")
    with pytest.warns(ConvergenceWarning):
        model = Perceptron(max_iter=20, random_state=0).fit(X, y)
    assert "does not separate the data" in novikoff_report(model)
    assert "gives no bound" in novikoff_note(model)
    labels = np.array(["yes", "no", "no", "no"])
    model = Perceptron(random_state=0).fit(np.array([[1.0, 1.0], [0, 0], [0, 1], [1, 0]]), labels)
    assert novikoff_report(model).startswith("Novikoff  yes vs no")  # the larger label first
    assert novikoff_report(model, positive="no").startswith("Novikoff  no vs yes")
