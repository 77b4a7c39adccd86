"""``attnlab perceptron``: Rosenblatt's perceptron converging on separable data (within
Novikoff's bound), failing on XOR, and the multi-layer perceptron solving XOR.

The data are generated here (truth tables, a seeded separable cloud), taken from the small
data sets scikit-learn ships (iris, breast cancer, digits: imported only when asked for, as
scikit-learn is optional) or read from a CSV file the user gives; nothing is downloaded.
The plot is an SVG written by hand (no dependency) or a PNG drawn by matplotlib (the
``plot`` extra).
"""

# X (a matrix) keeps scikit-learn's capital in signatures:
# ruff: noqa: N803

from __future__ import annotations

import argparse
import csv
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLE = """examples:
  attnlab perceptron                                # the three-part demo: separable, XOR, MLP on XOR
  attnlab perceptron --dataset xor --plot xor.png   # the perceptron never converges on XOR
  attnlab perceptron --dataset xor --mlp --plot xor-mlp.png
  attnlab perceptron --dataset iris --positive-class setosa  # separable: converges, within the bound
  attnlab perceptron --dataset breast_cancer --standardize --test-fraction 0.25
  attnlab perceptron --dataset digits --mlp --hidden 64 --lr 0.001 --standardize --test-fraction 0.25
  attnlab perceptron --dataset data.csv --label species --standardize --test-fraction 0.25
"""

BUILTIN = ("and", "or", "xor", "separable")
# The data sets scikit-learn ships with its code (no download): name -> its loader.
SKLEARN_DATASETS = {"iris": "load_iris", "breast_cancer": "load_breast_cancer", "digits": "load_digits"}
REST = "rest"  # the other label of a --positive-class problem
# The line x2 = 0.5 x1 + 0.1 as (unit normal n, offset c): n · x = c.
SEPARATING_LINE = (np.array([-0.5, 1.0]) / np.hypot(0.5, 1.0), 0.1 / np.hypot(0.5, 1.0))
MAX_EPOCHS_SHOWN = 12


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "perceptron", help="train a perceptron (or an MLP) and show its mistakes and Novikoff's bound",
        description="Train Rosenblatt's perceptron (1958) or, with --mlp, a multi-layer perceptron "
                    "(Rumelhart et al. 1986) and print the accuracy, the epochs, whether it converged, "
                    "the mistakes per epoch and, for the perceptron on separable data, Novikoff's "
                    "(1962) bound (R / margin)^2 beside the mistakes actually made. Without --dataset, "
                    "run the demo: separable data, XOR, and the MLP on XOR.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", metavar="{and,or,xor,separable,iris,breast_cancer,digits,PATH.csv}",
                        help="a built-in data set, one scikit-learn ships (iris, breast_cancer, digits; "
                             "needs scikit-learn) or a CSV file (header row optional; the last column "
                             "is the label unless --label names one)")
    parser.add_argument("--label", help="name of the label column of the CSV file")
    parser.add_argument("--positive-class", metavar="LABEL",
                        help="learn LABEL against all the other labels (one-vs-rest), e.g. "
                             "--dataset iris --positive-class setosa")
    parser.add_argument("--mlp", action="store_true", help="train the multi-layer perceptron instead")
    parser.add_argument("--hidden", default="16", help="MLP hidden layer sizes, comma-separated (16)")
    parser.add_argument("--activation", default="tanh", choices=("relu", "tanh", "logistic"),
                        help="MLP hidden activation (tanh)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate: the perceptron's eta0 (1.0) or the MLP's Adam step (0.05)")
    parser.add_argument("--max-iter", type=int, default=None, help="most epochs (perceptron 1000, MLP 2000)")
    parser.add_argument("--samples", type=int, default=100, help="points in the separable data set (100)")
    parser.add_argument("--standardize", "--standardise", action="store_true",
                        help="scale features to mean 0, variance 1 (statistics of the training part)")
    parser.add_argument("--test-fraction", type=float, default=0.0,
                        help="hold out this fraction for a test accuracy (0: train and report on all)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, shuffling and weights (0)")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="draw the decision regions (2-D data) and the mistakes (perceptron) or the "
                             "loss (MLP) per epoch: a PNG needs matplotlib (the 'plot' extra); a name "
                             "ending in .svg writes an SVG that needs nothing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.errors import AttnlabError
    from attnlab.files import check_writable

    if args.dataset is None:
        if args.plot is not None or args.mlp or args.label is not None or args.positive_class is not None:
            raise AttnlabError("--plot, --mlp, --label and --positive-class need --dataset (the demo runs "
                               "three models).")
        for dataset, mlp in (("separable", False), ("xor", False), ("xor", True)):
            run(argparse.Namespace(**{**vars(args), "dataset": dataset, "mlp": mlp}))
            print()
        return 0
    if not 0.0 <= args.test_fraction < 1.0:
        raise AttnlabError(f"--test-fraction must be in [0, 1). Got {args.test_fraction} instead.")
    if args.plot is not None:  # a wrong name, path or a missing matplotlib fails now, not after training
        plot_writer(args.plot)
        check_writable(args.plot, "--plot")
    X, y, description = load_dataset(args.dataset, label=args.label, samples=args.samples, seed=args.seed)
    if args.positive_class is not None:
        y = one_vs_rest(y, args.positive_class, args.dataset)
        description += f"; {args.positive_class!r} against the rest"
    X_train, y_train, X_test, y_test = split(X, y, args.test_fraction, args.seed)
    if args.standardize:
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        std[std == 0] = 1.0  # a constant column stays 0 rather than becoming NaN
        X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    model = build_model(args)
    with warnings.catch_warnings():
        # Not converging is a result here, printed below, not a warning.
        warnings.simplefilter("ignore")
        model.fit(X_train, y_train)

    print(f"dataset   {description}")
    print(f"model     {model!r}")
    print(f"epochs    {model.n_iter_}, converged: {'yes' if model.converged_ else 'no'}")
    if args.mlp:
        print(f"loss      {model.loss_curve_[0]:.4f} at epoch 1 -> {model.loss_:.4f} "
              f"at epoch {model.n_iter_}")
    else:
        print(f"mistakes per epoch  {format_series(model.mistakes_)}")
        if not model.converged_:
            print(f"          not linearly separable? the last epoch still made "
                  f"{model.mistakes_[-1]} mistakes")
    print(f"training accuracy   {model.score(X_train, y_train):.4f} ({len(y_train)} samples)")
    if len(y_test):
        print(f"test accuracy       {model.score(X_test, y_test):.4f} ({len(y_test)} held-out samples)")
    if not args.mlp:
        print(novikoff_report(model, positive=args.positive_class))
        if args.dataset == "separable" and not args.standardize and args.positive_class is None:
            print(generating_line_report(model, X_train, y_train))
    if args.plot is not None:
        plot_writer(args.plot)(Path(args.plot), model, X_train, y_train)
        print(f"plot      {args.plot}")
    return 0


def build_model(args: argparse.Namespace) -> Any:
    from attnlab.errors import AttnlabError
    from attnlab.models.mlp import MLPClassifier
    from attnlab.models.perceptron import Perceptron

    if args.mlp:
        try:
            hidden = tuple(int(size) for size in args.hidden.split(","))
        except ValueError:
            raise AttnlabError(f"--hidden must be comma-separated ints such as 16 or 64,32. "
                               f"Got {args.hidden!r} instead.") from None
        return MLPClassifier(hidden_layer_sizes=hidden, activation=args.activation,
                             learning_rate_init=0.05 if args.lr is None else args.lr,
                             max_iter=2000 if args.max_iter is None else args.max_iter,
                             random_state=args.seed)
    return Perceptron(eta0=1.0 if args.lr is None else args.lr,
                      max_iter=1000 if args.max_iter is None else args.max_iter,
                      random_state=args.seed)


def novikoff_report(model: Any, positive: str | None = None) -> str:
    """Margin, R, bound and mistakes per one-vs-rest problem (one line for two classes).

    ``positive``, the label of a --positive-class problem, is named first.
    """
    first, second = model.classes_[1], model.classes_[0]
    if positive is not None and str(second) == positive:
        first, second = second, first
    names = ([f"{first} vs {second}"] if len(model.classes_) == 2
             else [f"{label} vs rest" for label in model.classes_])
    lines = []
    for name, margin, bound, made in zip(names, model.margin_, model.novikoff_bound_, model.n_mistakes_,
                                         strict=True):
        if margin > 0:
            verdict = "within the bound" if made <= bound else "ABOVE THE BOUND"
            lines.append(f"Novikoff  {name}: margin {margin:.4g}, R {model.radius_:.4g}, bound (R/margin)^2 "
                         f"= {bound:.4g}; mistakes made {made} ({verdict})")
        else:
            lines.append(f"Novikoff  {name}: the learned hyperplane does not separate the data "
                         f"(margin {margin:.4g}), so the theorem gives no bound; mistakes made {made}")
    return "\n".join(lines)


def generating_line_report(model: Any, X: np.ndarray, y: np.ndarray) -> str:
    """Novikoff's bound from the line that generated the separable data, a better u than the
    learned one: its margin is at least the gap by construction."""
    normal, offset = SEPARATING_LINE
    u = np.append(normal, -offset) / np.hypot(1.0, offset)  # unit vector in the (x, 1) space
    signs = np.where(y == 1, 1.0, -1.0)
    margin = float((signs * (np.c_[X, np.ones(len(X))] @ u)).min())
    bound = (model.radius_ / margin) ** 2
    made = int(model.n_mistakes_[0])
    return (f"Novikoff  with the generating line as u: margin {margin:.4g}, bound {bound:.4g}; "
            f"mistakes made {made} ({'within the bound' if made <= bound else 'ABOVE THE BOUND'})")


def format_series(values: np.ndarray) -> str:
    """All values if few, else the first and last ones around an ellipsis."""
    values = [str(int(v)) for v in values]
    if len(values) <= MAX_EPOCHS_SHOWN:
        return " ".join(values)
    half = MAX_EPOCHS_SHOWN // 2
    return " ".join([*values[:half], f"... ({len(values) - 2 * half} more) ...", *values[-half:]])


# --------------------------------------------------------------------------- data


def load_dataset(name: str, *, label: str | None = None, samples: int = 100,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(X (N, F), y (N,), a one-line description) for a built-in name or a CSV path."""
    from attnlab.errors import AttnlabError

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
    from attnlab.errors import AttnlabError

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
    from attnlab.errors import AttnlabError

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
    """Features (numbers) and labels (any text) from a CSV file with an optional header row."""
    from attnlab.errors import AttnlabError

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


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def split(X: np.ndarray, y: np.ndarray, fraction: float,
          seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random held-out split; fraction 0 keeps everything for training."""
    from attnlab.errors import AttnlabError

    n_test = int(round(fraction * len(y)))
    if n_test == 0:
        return X, y, X[:0], y[:0]
    if len(y) - n_test < 2:
        raise AttnlabError(f"--test-fraction {fraction} leaves {len(y) - n_test} training samples of "
                           f"{len(y)}; at least 2 are needed.")
    order = np.random.default_rng(seed).permutation(len(y))
    return X[order[n_test:]], y[order[n_test:]], X[order[:n_test]], y[order[:n_test]]


# --------------------------------------------------------------------------- plot


COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
PlotWriter = Callable[[Path, Any, np.ndarray, np.ndarray], None]  # (path, model, X, y)


def plot_writer(name: str) -> PlotWriter:
    """The writer for the plot file's type: write_svg for .svg, write_png for .png.

    Checks the name, and for a PNG that matplotlib can be imported, so that both fail before
    any training.
    """
    from attnlab.errors import AttnlabError

    suffix = Path(name).suffix.lower()
    if suffix == ".svg":
        return write_svg
    if suffix != ".png":
        raise AttnlabError(f"--plot {name!r}: the file name must end in .png (matplotlib) or .svg "
                           f"(no dependency).")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise AttnlabError(f"--plot {name!r} needs matplotlib: pip install 'attnlab[plot]' (the plot "
                           f"extra), or name a .svg file, which needs nothing.") from None
    return write_png


def write_png(path: Path, model: Any, X: np.ndarray, y: np.ndarray, grid: int = 300) -> None:
    """A PNG drawn with matplotlib's Agg canvas (no screen, no pyplot state): the decision
    regions with the training points, misclassified ones ringed (2-D data only), beside the
    mistakes per epoch (perceptron, with Novikoff's bound) or the training loss (MLP)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from attnlab.errors import AttnlabError
    from attnlab.files import atomic_write

    two_d = X.shape[1] == 2
    figure = Figure(figsize=(11 if two_d else 6, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if two_d else 1, squeeze=False)[0]
    if two_d:
        _draw_regions(axes[0], model, X, y, grid)
    _draw_curve(axes[-1], model)
    figure.suptitle(repr(model), fontsize=10)
    try:
        atomic_write(path, lambda temp: figure.savefig(temp, format="png", dpi=100))
    except OSError as error:
        raise AttnlabError(f"Cannot write the plot to {str(path)!r}: {error.strerror}.") from None


def _draw_regions(axes: Any, model: Any, X: np.ndarray, y: np.ndarray, grid: int) -> None:
    from matplotlib.colors import ListedColormap

    k = len(model.classes_)
    low, high = X.min(axis=0), X.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    low, high = low - 0.15 * span, high + 0.15 * span
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], grid), np.linspace(low[1], high[1], grid))
    region = np.searchsorted(model.classes_, model.predict(np.c_[xx.ravel(), yy.ravel()])).reshape(xx.shape)
    colours = [COLOURS[i % len(COLOURS)] for i in range(k)]
    levels = np.arange(k + 1) - 0.5
    axes.contourf(xx, yy, region, levels=levels, cmap=ListedColormap(colours), alpha=0.2)
    if len(np.unique(region)) > 1:
        axes.contour(xx, yy, region, levels=levels[1:-1], colors="black", linewidths=1.0)
    index = np.searchsorted(model.classes_, y)
    for i, label in enumerate(model.classes_):
        mine = index == i
        axes.scatter(X[mine, 0], X[mine, 1], s=36, color=colours[i], edgecolors="black", linewidths=0.5,
                     label=str(label), zorder=3)
    wrong = model.predict(X) != y
    if wrong.any():
        axes.scatter(X[wrong, 0], X[wrong, 1], s=160, facecolors="none", edgecolors="black", linewidths=1.5,
                     label=f"misclassified ({int(wrong.sum())})", zorder=4)
    axes.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), xlabel="feature 1", ylabel="feature 2",
             title="decision regions and training points")
    axes.legend(loc="best", fontsize=8, framealpha=0.8)


def _draw_curve(axes: Any, model: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, model.n_iter_ + 1)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.grid(alpha=0.3)
    if hasattr(model, "loss_curve_"):
        loss = np.asarray(model.loss_curve_)
        axes.plot(epochs, loss, color="black", linewidth=1.2)
        if loss.min() > 0 and loss.max() / loss.min() > 100:
            axes.set_yscale("log")
        axes.set(ylabel="cross-entropy (mean over the epoch)",
                 title=f"training loss per epoch: {loss[0]:.4g} -> {loss[-1]:.4g}")
        return
    mistakes = model.mistakes_
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs) <= 60:
        bars = axes.bar(epochs, mistakes, color="#1f77b4")
        if len(epochs) <= 20:
            axes.bar_label(bars, fontsize=8)
    else:
        axes.plot(epochs, mistakes, color="#1f77b4", linewidth=0.5, alpha=0.5, label="each epoch")
        window = max(5, len(epochs) // 40)
        mean = np.convolve(mistakes, np.ones(window) / window, mode="valid")
        axes.plot(epochs[window - 1:], mean, color="black", linewidth=1.5,
                  label=f"mean of the last {window} epochs")
        axes.legend(loc="lower left", fontsize=8, framealpha=0.8)
    verdict = (f"converged in {model.n_iter_} epochs" if model.converged_
               else f"not converged after {model.n_iter_} epochs")
    axes.set(ylabel="mistakes (= updates)", ylim=(0, max(1, mistakes.max()) * 1.15),
             title=f"mistakes per epoch: {verdict}")
    axes.text(0.98, 0.96, _novikoff_note(model), transform=axes.transAxes, ha="right", va="top",
              fontsize=9, bbox={"facecolor": "white", "edgecolor": "#888", "alpha": 0.9})


def _novikoff_note(model: Any) -> str:
    total = int(model.n_mistakes_.sum())
    bounds = model.novikoff_bound_
    separated = ~np.isnan(bounds)
    if len(bounds) == 1:
        verdict = (f"Novikoff's bound (R / margin)² = {bounds[0]:.4g}" if separated[0]
                   else "not separated: Novikoff's theorem gives no bound")
        return f"{total} mistakes in all\n{verdict}"
    within = bool((model.n_mistakes_[separated] <= bounds[separated]).all())
    return (f"{total} mistakes in all\n{int(separated.sum())} of {len(bounds)} one-vs-rest problems separated"
            + (f", each {'within' if within else 'ABOVE'} its Novikoff bound" if separated.any() else ""))


def write_svg(path: Path, model: Any, X: np.ndarray, y: np.ndarray, grid: int = 60) -> None:
    """An SVG, no plotting library needed: decision regions and points (2-D data only) on the
    left, mistakes (perceptron) or loss (MLP) per epoch on the right."""
    from attnlab.errors import AttnlabError

    size, pad = 320, 30
    parts: list[str] = []
    left = 0
    if X.shape[1] == 2:
        low, high = X.min(axis=0), X.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        low, high = low - 0.15 * span, high + 0.15 * span
        ticks = [np.linspace(low[d], high[d], grid) for d in range(2)]
        xx, yy = np.meshgrid(*ticks)
        index = np.searchsorted(model.classes_, model.predict(np.c_[xx.ravel(), yy.ravel()]))
        cell = size / (grid - 1)  # the spacing of the grid points

        def to_px(point: np.ndarray) -> tuple[float, float]:
            return (pad + (point[0] - low[0]) / (high[0] - low[0]) * size,
                    pad + size - (point[1] - low[1]) / (high[1] - low[1]) * size)

        for k, (gx, gy) in enumerate(zip(xx.ravel(), yy.ravel(), strict=True)):
            px, py = to_px(np.array([gx, gy]))
            parts.append(f'<rect x="{px - cell / 2:.1f}" y="{py - cell / 2:.1f}" width="{cell + 0.5:.1f}" '
                         f'height="{cell + 0.5:.1f}" fill="{COLOURS[index[k] % len(COLOURS)]}" '
                         f'fill-opacity="0.18"/>')
        for point, k in zip(X, np.searchsorted(model.classes_, y), strict=True):
            px, py = to_px(point)
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{COLOURS[k % len(COLOURS)]}" '
                         f'stroke="black" stroke-width="0.5"/>')
        parts.append(f'<text x="{pad}" y="{pad - 10}" font-size="13">decision regions</text>')
        left = size + 2 * pad
    curve = np.asarray(model.loss_curve_ if hasattr(model, "loss_curve_") else model.mistakes_, dtype=float)
    title = "training loss per epoch" if hasattr(model, "loss_curve_") else "mistakes per epoch"
    top = max(curve.max(), 1e-12)
    steps = max(len(curve) - 1, 1)
    points = " ".join(f"{left + pad + i / steps * size:.1f},{pad + size - v / top * size:.1f}"
                      for i, v in enumerate(curve))
    parts += [
        f'<rect x="{left + pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#888"/>',
        f'<polyline points="{points}" fill="none" stroke="black" stroke-width="1.5"/>',
        f'<text x="{left + pad}" y="{pad - 10}" font-size="13">{title} (max {top:.4g})</text>',
        f'<text x="{left + pad}" y="{2 * pad + size - 8}" font-size="11">epoch 1 .. {len(curve)}</text>',
    ]
    width, height = left + size + 2 * pad, size + 2 * pad
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif">\n' + "\n".join(parts) + "\n</svg>\n")
    try:
        path.write_text(svg)
    except OSError as error:
        raise AttnlabError(f"Cannot write the plot to {str(path)!r}: {error.strerror}.") from None
