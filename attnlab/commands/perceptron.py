"""``attnlab perceptron``: Rosenblatt's perceptron converging on separable data (within
Novikoff's bound), failing on XOR, and the multi-layer perceptron solving XOR.

The data come from :mod:`attnlab.data.points` (truth tables, a seeded separable cloud,
scikit-learn's bundled data sets, a CSV file), the reports from
:mod:`attnlab.inspect.novikoff`, the pictures from :mod:`attnlab.inspect.decision_plots`.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from attnlab.commands.arguments import add_command

EXAMPLE = """examples:
  attnlab perceptron                                # the three-part demo: separable, XOR, MLP on XOR
  attnlab perceptron --dataset xor --plot xor.png   # the perceptron never converges on XOR
  attnlab perceptron --dataset xor --mlp --plot xor-mlp.png
  attnlab perceptron --dataset iris --positive-class setosa  # separable: converges, within the bound
  attnlab perceptron --dataset breast_cancer --standardize --test-fraction 0.25
  attnlab perceptron --dataset digits --mlp --hidden 64 --lr 0.001 --standardize --test-fraction 0.25
  attnlab perceptron --dataset data.csv --label species --standardize --test-fraction 0.25
"""

MAX_EPOCHS_SHOWN = 12


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "perceptron", example=EXAMPLE,
        help="train a perceptron (or an MLP) and show its mistakes and Novikoff's bound",
        description="Train Rosenblatt's perceptron (1958) or, with --mlp, a multi-layer perceptron "
                    "(Rumelhart et al. 1986) and print the accuracy, the epochs, whether it converged, "
                    "the mistakes per epoch and, for the perceptron on separable data, Novikoff's "
                    "(1962) bound (R / margin)^2 beside the mistakes actually made. Without --dataset, "
                    "run the demo: separable data, XOR, and the MLP on XOR.",
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
    from attnlab.data.points import load_dataset, one_vs_rest, split, standardize
    from attnlab.errors import AttnlabError
    from attnlab.files import check_writable
    from attnlab.inspect.decision_plots import plot_writer
    from attnlab.inspect.novikoff import generating_line_report, novikoff_report

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
        X_train, X_test = standardize(X_train, X_test)
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
    """The estimator the flags ask for, with each default of the flags' help."""
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


def format_series(values: Any) -> str:
    """All values if few, else the first and last ones around an ellipsis."""
    values = [str(int(v)) for v in values]
    if len(values) <= MAX_EPOCHS_SHOWN:
        return " ".join(values)
    half = MAX_EPOCHS_SHOWN // 2
    return " ".join([*values[:half], f"... ({len(values) - 2 * half} more) ...", *values[-half:]])
