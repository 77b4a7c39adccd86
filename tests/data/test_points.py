"""The perceptron's data: truth tables, the separable cloud, CSV files, one-vs-rest, the split."""

# ruff: noqa: N806

from __future__ import annotations

import numpy as np
import pytest

from attnlab.data.points import (
    REST,
    SEPARATING_LINE,
    load_dataset,
    one_vs_rest,
    read_csv,
    separable_points,
    split,
    standardize,
)
from attnlab.errors import AttnlabError


def test_separable_points_keep_the_gap_from_their_line():
    X, y = separable_points(500, seed=3, gap=0.1)
    normal, offset = SEPARATING_LINE
    distance = X @ normal - offset  # signed distance to the line, normal is a unit vector
    assert X.shape == (500, 2) and np.abs(X).max() <= 1
    assert np.abs(distance).min() >= 0.1
    np.testing.assert_array_equal(y, (distance > 0).astype(int))
    assert 100 < y.sum() < 400


@pytest.mark.parametrize("name, expected", [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1]),
                                            ("xor", [0, 1, 1, 0])])
def test_truth_tables(name, expected):
    X, y, description = load_dataset(name)
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, expected)
    assert description.startswith(f"{name}: the truth table")


def test_csv_header_is_found_and_integer_labels_stay_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,10\n3,4,9\n5,6,10\n")
    X, y, column = read_csv(path, None)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    assert column == "y" and y.dtype.kind == "i" and list(y) == [10, 9, 10]
    X, y, column = read_csv(path, "a")  # a named label column; the others are the features
    np.testing.assert_array_equal(X, [[2, 10], [4, 9], [6, 10]])
    assert column == "a" and list(y) == [1, 3, 5]


def test_csv_without_header_and_text_labels(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("0.5,1,cat\n2,3, dog\n")
    X, y, column = read_csv(path, None)
    assert X.shape == (2, 2) and list(y) == ["cat", "dog"] and column == "column 3"


def test_csv_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("a,b\n1,\xe9\n".encode("latin-1"))
    with pytest.raises(AttnlabError, match="is not UTF-8 text"):
        read_csv(path, None)


def test_one_vs_rest_compares_labels_as_text():
    y = np.array([0, 1, 2, 1])
    assert list(one_vs_rest(y, "1", "d")) == [REST, "1", REST, "1"]
    with pytest.raises(AttnlabError, match="is not a label of d"):
        one_vs_rest(y, "3", "d")
    with pytest.raises(AttnlabError, match="clashes with the name of the other class"):
        one_vs_rest(np.array(["rest", "x"]), "rest", "d")


def test_split_is_seeded_and_disjoint():
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    X_train, y_train, X_test, y_test = split(X, y, 0.3, seed=1)
    assert len(y_test) == 3 and len(y_train) == 7
    assert sorted([*y_train, *y_test]) == list(range(10))
    np.testing.assert_array_equal(X_test[:, 0] / 2, y_test)  # rows keep their labels
    assert list(split(X, y, 0.3, seed=1)[3]) == list(y_test)
    assert len(split(X, y, 0.0, seed=1)[3]) == 0
    with pytest.raises(AttnlabError, match="at least 2 are needed"):
        split(X[:2], y[:2], 0.5, seed=0)


def test_standardize_uses_the_training_statistics_and_keeps_constant_columns():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaled_train, scaled_test = standardize(train, np.array([[5.0, 6.0]]))
    np.testing.assert_allclose(scaled_train, [[-1, 0], [1, 0]])
    np.testing.assert_allclose(scaled_test, [[3, 1]])  # (5 - 2) / 1 and (6 - 5) / 1
