"""Points with labels for the perceptron and the MLP (``attnlab perceptron``).

Where they come from: truth tables (and, or, xor), a seeded cloud split by a line with a
gap (linearly separable by construction, so Novikoff's (1962) condition holds), the small
data sets scikit-learn ships inside its package (iris, breast cancer, digits: imported only
when asked for, as scikit-learn is optional), or a CSV file; nothing is downloaded. Then
what a run does with them: one label against the rest, a seeded held-out split, and
standardisation with the training part's statistics.

Shapes: X is (N, F) float64 (N samples, F features), y is (N,) labels (ints or text).
"""

# X (a matrix) keeps scikit-learn's capital in signatures:
# ruff: noqa: N803

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from attnlab.errors import AttnlabError

BUILTIN = ("and", "or", "xor", "separable")
# The data sets scikit-learn ships with its code (no download): name -> its loader.
SKLEARN_DATASETS = {"iris": "load_iris", "breast_cancer": "load_breast_cancer", "digits": "load_digits"}
REST = "rest"  # the other label of a --positive-class problem
# The line x2 = 0.5 x1 + 0.1 as (unit normal n, offset c): n · x = c.
SEPARATING_LINE = (np.array([-0.5, 1.0]) / np.hypot(0.5, 1.0), 0.1 / np.hypot(0.5, 1.0))


def load_dataset(name: str, *, label: str | None = None, samples: int = 100,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(X (N, F), y (N,), a one-line description) for a built-in name or a CSV path."""
    if label is not None and name in (*BUILTIN, *SKLEARN_DATASETS):
        raise AttnlabError(f"--label names a column of a CSV --dataset; {name!r} is built in. Drop --label.")
    if name in ("and", "or", "xor"):
        X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
        a, b = X[:, 0].astype(bool), X[:, 1].astype(bool)
        y = {"and": a & b, "or": a | b, "xor": a ^ b}[name].astype(np.int64)
        return X, y, f"{name}: the truth table, 4 samples, 2 features"
    if name == "separable":
        if samples < 2:
            raise AttnlabError(f"--samples must be >= 2. Got {samples} instead.")
        X, y = separable_points(samples, seed)
        return X, y, f"separable: {samples} points in [-1, 1]^2 split by a line with a gap (seed {seed})"
    if name in SKLEARN_DATASETS:
        return load_sklearn_dataset(name)
    path = Path(name)
    if path.suffix.lower() != ".csv" and not path.exists():
        raise AttnlabError(f"Unknown dataset {name!r}: choose one of {[*BUILTIN, *SKLEARN_DATASETS]} or "
                           f"give a CSV file.")
    X, y, column = read_csv(path, label)
    return X, y, f"{path.name}: {len(y)} samples, {X.shape[1]} features, label column {column!r}"


def load_sklearn_dataset(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """One of the small data sets bundled inside scikit-learn (read from its package, no
    download), with the class names as labels where it has them (iris: 'setosa', ...)."""
    try:
        from sklearn import datasets
    except ImportError:
        raise AttnlabError(f"--dataset {name} comes with scikit-learn, which is not installed: "
                           f"pip install scikit-learn (or attnlab's dev extra).") from None
    bunch = getattr(datasets, SKLEARN_DATASETS[name])()
    X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target_names)[bunch.target]
    return X, y, (f"{name} (from scikit-learn): {len(y)} samples, {X.shape[1]} features, "
                  f"{len(np.unique(y))} classes")


def one_vs_rest(y: np.ndarray, positive: str, dataset: str) -> np.ndarray:
    """Labels -> ``positive`` where y is that label (compared as text), REST elsewhere."""
    labels = np.unique(y)
    if positive not in {str(label) for label in labels}:
        raise AttnlabError(f"--positive-class {positive!r} is not a label of {dataset}; its labels are "
                           f"{[str(label) for label in labels]}.")
    if positive == REST:
        raise AttnlabError(f"--positive-class {REST!r} clashes with the name of the other class; rename "
                           f"that label.")
    if len(labels) < 2:
        raise AttnlabError(f"--positive-class needs at least two labels in {dataset}; it has only "
                           f"{positive!r}.")
    return np.where(np.array([str(label) for label in y]) == positive, positive, REST)


def separable_points(n: int, seed: int, gap: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform in [-1, 1]^2, labelled by the side of the line x2 = 0.5 x1 + 0.1.

    Points closer than ``gap`` to the line are drawn again, so the classes are linearly
    separable with a margin of at least ``gap``: Novikoff's condition holds by construction.
    """
    rng = np.random.default_rng(seed)
    normal, offset = SEPARATING_LINE
    points = np.empty((0, 2))
    while len(points) < n:
        draw = rng.uniform(-1, 1, size=(2 * n, 2))
        points = np.vstack([points, draw[np.abs(draw @ normal - offset) >= gap]])
    points = points[:n]
    return points, (points @ normal - offset > 0).astype(np.int64)


def read_csv(path: Path, label: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Features (numbers) and labels (any text) from a CSV file with an optional header row;
    returns (X, y, the label column's name)."""
    rows = _read_rows(path)
    # A first row whose feature cells are not all numbers is a header.
    header = None if all(_is_number(cell) for cell in rows[0][:-1]) else [c.strip() for c in rows[0]]
    body = rows[1:] if header else rows
    width = len(rows[0])
    if width < 2:
        raise AttnlabError(f"CSV file {str(path)!r} needs at least one feature column and one label column.")
    if label is None:
        column = width - 1
    elif header is None:
        raise AttnlabError(f"--label {label!r} needs a header row in {str(path)!r}; it has none.")
    elif label not in header:
        raise AttnlabError(f"--label {label!r} is not a column of {str(path)!r}; columns are {header}.")
    else:
        column = header.index(label)
    for number, row in enumerate(body, start=2 if header else 1):
        if len(row) != width:
            raise AttnlabError(f"Line {number} of {str(path)!r} has {len(row)} cells, expected {width}.")
    if not body:
        raise AttnlabError(f"CSV file {str(path)!r} has a header but no data rows.")
    features = [[cell for i, cell in enumerate(row) if i != column] for row in body]
    for number, row in enumerate(features, start=2 if header else 1):
        for cell in row:
            if not _is_number(cell):
                raise AttnlabError(f"Line {number} of {str(path)!r}: feature {cell!r} is not a number; "
                                   f"encode categories as numbers first.")
    y = np.array([row[column].strip() for row in body])
    if all(_is_number(v) for v in y) and all(float(v).is_integer() for v in y):
        y = np.array([int(float(v)) for v in y])  # integer labels sort as numbers, not text
    name = header[column] if header else f"column {column + 1}"
    return np.array(features, dtype=np.float64), y, name


def _read_rows(path: Path) -> list[list[str]]:
    """The non-empty rows of a UTF-8 CSV file, or a one-line error saying why there are none."""
    if not path.is_file():
        raise AttnlabError(f"CSV file {str(path)!r} does not exist.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except UnicodeDecodeError as error:
        raise AttnlabError(
            f"CSV file {str(path)!r} is not UTF-8 text (byte {error.start} cannot be decoded); "
            f"convert it with e.g. iconv -t UTF-8."
        ) from None
    except csv.Error as error:  # e.g. "line contains NUL": a binary file
        raise AttnlabError(f"CSV file {str(path)!r} is not a CSV text file ({error}).") from None
    if not rows:
        raise AttnlabError(f"CSV file {str(path)!r} is empty.")
    return rows


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def split(X: np.ndarray, y: np.ndarray, fraction: float,
          seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test): a seeded random held-out split; fraction 0 keeps
    everything for training."""
    n_test = int(round(fraction * len(y)))
    if n_test == 0:
        return X, y, X[:0], y[:0]
    if len(y) - n_test < 2:
        raise AttnlabError(f"--test-fraction {fraction} leaves {len(y) - n_test} training samples of "
                           f"{len(y)}; at least 2 are needed.")
    order = np.random.default_rng(seed).permutation(len(y))
    return X[order[n_test:]], y[order[n_test:]], X[order[:n_test]], y[order[:n_test]]


def standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both parts scaled to the training part's mean 0, variance 1 (no statistic of the
    held-out part leaks into training)."""
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0  # a constant column stays 0 rather than becoming NaN
    return (X_train - mean) / std, (X_test - mean) / std
