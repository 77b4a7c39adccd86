"""Fit and predict time: attnlab's Perceptron and MLPClassifier against scikit-learn's.

Same data, same split, same hyper-parameters, same process. The cases:

    perceptron, same updates    breast cancer (569 x 30, standardised with the training
                                statistics, 75/25 stratified split, seed 0); shuffle off,
                                50 epochs, sklearn with tol=None: both make exactly the same
                                updates (the weights are checked equal), so the ratio is the
                                cost of the same work.
    perceptron, defaults        the same data, random_state=0, each library's stopping rule:
                                attnlab stops at the first epoch without a mistake (Rosenblatt)
                                or max_iter=1000, sklearn when the loss has not improved by
                                tol=1e-3 for 5 epochs; the epochs differ and are printed.
    perceptron, one-vs-rest     digits (1797 x 64, standardised like breast cancer, the same
                                split): 10 one-vs-rest problems, shuffle off, 20 epochs,
                                the same updates again (weights checked equal).
    MLP                         digits (1797 x 64, pixels / 16, the same split), one hidden
                                layer of 64 ReLU, Adam lr 1e-3, batches of 200, alpha 1e-4,
                                at most 60 epochs, random_state=0.

Timing is interleaved (attnlab, sklearn, attnlab, ...) to share out drifts in machine load;
each figure is the median over ``--repeats``. Every library runs on ``--threads`` threads
(1 by default: numpy's and scipy's BLAS, OpenMP and torch through threadpoolctl and
torch.set_num_threads). Left to their defaults on a small shared machine, the thread pools
of the libraries in one process get in each other's way: measured here, scikit-learn's MLP
predict took 0.3 ms on one thread and 4-12 ms on two, depending on torch's setting.
Predict is timed over the held-out part, ``--predict-loops`` calls per measurement. Ratios
are attnlab / scikit-learn: > 1 means attnlab is slower.

    .venv/bin/python benchmarks/perceptron_vs_sklearn.py                # prints, records in RESULTS.md
    .venv/bin/python benchmarks/perceptron_vs_sklearn.py --repeats 3 --no-record
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FILE_HEADER = (
    "# Benchmark results\n\n"
    "Appended by the scripts in this directory; each row is one run, as measured.\n\n"
)
SECTION = ("## perceptron_vs_sklearn.py: fit and predict time, attnlab vs scikit-learn "
           "(same data, same process)")
TABLE_HEADER = (
    "| date (UTC) | CPU, cores, threads used | numpy / torch / scikit-learn | case "
    "| epochs attnlab / sklearn | fit attnlab (ms) | fit sklearn (ms) | fit ratio | predict attnlab (ms) "
    "| predict sklearn (ms) | predict ratio | test accuracy attnlab / sklearn "
    "| load avg (1 min, start/end) | notes |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


@dataclass
class Case:
    name: str
    ours: Callable[[], Any]  # () -> an unfitted attnlab estimator
    theirs: Callable[[], Any]  # () -> an unfitted scikit-learn estimator
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # X_train, X_test, y_train, y_test
    same_weights: bool = False  # check coef_ / intercept_ are equal after fitting


@dataclass
class Result:
    case: str
    epochs: tuple[int, int]
    fit_ms: tuple[float, float]
    predict_ms: tuple[float, float]
    accuracy: tuple[float, float]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed fits per estimator (median)")
    parser.add_argument("--predict-loops", type=int, default=50, help="predict calls per measurement")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for BLAS, OpenMP and torch (1); 0 leaves each library's default")
    parser.add_argument("--note", default="", help="free text for the RESULTS.md rows")
    parser.add_argument("--no-record", action="store_true", help="do not write to RESULTS.md")
    return parser.parse_args()


def cases() -> list[Case]:
    from sklearn import linear_model, neural_network
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    import attnlab

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    cancer = (scaler.transform(X_train), scaler.transform(X_test), y_train, y_test)
    X, y = load_digits(return_X_y=True)
    digits = tuple(train_test_split(X / 16, y, test_size=0.25, random_state=0, stratify=y))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    digits_standardised = (scaler.transform(X_train), scaler.transform(X_test), y_train, y_test)
    mlp = {"hidden_layer_sizes": (64,), "max_iter": 60, "random_state": 0}
    return [
        Case("Perceptron, breast cancer standardised: same updates (shuffle off, 50 epochs)",
             lambda: attnlab.Perceptron(shuffle=False, max_iter=50),
             lambda: linear_model.Perceptron(shuffle=False, tol=None, max_iter=50),
             cancer, same_weights=True),
        Case("Perceptron, breast cancer standardised: defaults, random_state=0",
             lambda: attnlab.Perceptron(random_state=0),
             lambda: linear_model.Perceptron(random_state=0), cancer),
        Case("Perceptron, digits standardised, 10 one-vs-rest problems: same updates (shuffle off, "
             "20 epochs)",
             lambda: attnlab.Perceptron(shuffle=False, max_iter=20),
             lambda: linear_model.Perceptron(shuffle=False, tol=None, max_iter=20),
             digits_standardised, same_weights=True),
        Case("MLPClassifier, digits / 16: (64,) relu, adam, <= 60 epochs",
             lambda: attnlab.MLPClassifier(**mlp), lambda: neural_network.MLPClassifier(**mlp), digits),
    ]


def measure(case: Case, repeats: int, predict_loops: int) -> Result:
    X_train, X_test, y_train, y_test = case.data
    makers = (case.ours, case.theirs)
    fit_times: tuple[list[float], list[float]] = ([], [])
    predict_times: tuple[list[float], list[float]] = ([], [])
    fitted: list[Any] = [None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converging within max_iter is expected here
        for side in (0, 1):  # warm-up: imports, first-call allocations
            makers[side]().fit(X_train, y_train).predict(X_test)
        for repeat in range(repeats):
            for side in ((0, 1) if repeat % 2 == 0 else (1, 0)):
                model = makers[side]()
                started = time.perf_counter()
                model.fit(X_train, y_train)
                fit_times[side].append(time.perf_counter() - started)
                started = time.perf_counter()
                for _ in range(predict_loops):
                    model.predict(X_test)
                predict_times[side].append((time.perf_counter() - started) / predict_loops)
                fitted[side] = model
    ours, theirs = fitted
    if case.same_weights and not (np.array_equal(ours.coef_, theirs.coef_)
                                  and np.array_equal(ours.intercept_, theirs.intercept_)):
        raise SystemExit(f"{case.name}: the weights differ from scikit-learn's; the timing compares "
                         f"different work.")
    return Result(
        case=case.name,
        epochs=(int(ours.n_iter_), int(theirs.n_iter_)),
        fit_ms=tuple(1e3 * statistics.median(times) for times in fit_times),
        predict_ms=tuple(1e3 * statistics.median(times) for times in predict_times),
        accuracy=(float(ours.score(X_test, y_test)), float(theirs.score(X_test, y_test))),
    )


def cpu_description() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            name = next(line.split(":", 1)[1].strip() for line in stream if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def record(rows: list[str]) -> None:
    """Add the rows to this script's table in RESULTS.md, keeping everything else as it is.

    The file is read right before writing. A missing file gets the common header. This
    script's section goes before the other scripts' sections, not after them, because those
    scripts append their rows at the end of the file, where the last table must stay theirs.
    """
    try:
        text, mode = RESULTS.read_text(encoding="utf-8"), RESULTS.stat().st_mode & 0o777
    except FileNotFoundError:
        text, mode = FILE_HEADER, 0o644
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if SECTION + "\n" in lines:
        at = lines.index(SECTION + "\n") + 1
        while at < len(lines) and not lines[at].startswith("|"):  # to the table
            at += 1
        while at < len(lines) and lines[at].startswith("|"):  # past its last row
            at += 1
        lines[at:at] = rows
    else:
        at = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        block = [SECTION + "\n", "\n", TABLE_HEADER, *rows, "\n"]
        if at == len(lines) and lines and lines[-1].strip():
            block.insert(0, "\n")
        lines[at:at] = block
    handle, temp = tempfile.mkstemp(prefix=".RESULTS.md.", dir=RESULTS.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write("".join(lines))
    os.chmod(temp, mode)
    os.replace(temp, RESULTS)


def main() -> None:
    args = parse_args()
    try:
        import sklearn
    except ImportError:
        raise SystemExit("This benchmark compares with scikit-learn: pip install scikit-learn "
                         "(or attnlab's dev extra).") from None
    import torch
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    import attnlab

    if args.threads > 0:
        threadpool_limits(limits=args.threads)  # for the whole process
        torch.set_num_threads(args.threads)
    versions = f"{np.__version__} / {torch.__version__} / {sklearn.__version__}"
    print(f"attnlab {attnlab.__version__} from {Path(attnlab.__file__).parent}")
    threads = f"{args.threads} thread(s)" if args.threads > 0 else "default threads"
    print(f"{cpu_description()}; numpy / torch / scikit-learn {versions}; {threads} (torch "
          f"{torch.get_num_threads()}; attnlab's MLP trains on 1)")
    print(f"median of {args.repeats} interleaved runs; predict: {args.predict_loops} calls per run\n")
    load_start = os.getloadavg()[0]
    results = []
    for case in cases():
        result = measure(case, args.repeats, args.predict_loops)
        results.append(result)
        (fit_ours, fit_theirs), (pred_ours, pred_theirs) = result.fit_ms, result.predict_ms
        print(f"{result.case}")
        print(f"  epochs        attnlab {result.epochs[0]:>10}     scikit-learn {result.epochs[1]:>10}")
        print(f"  fit           attnlab {fit_ours:>10.2f} ms  scikit-learn {fit_theirs:>10.2f} ms  "
              f"ratio {fit_ours / fit_theirs:.2f}")
        print(f"  predict       attnlab {pred_ours:>10.4f} ms  scikit-learn {pred_theirs:>10.4f} ms  "
              f"ratio {pred_ours / pred_theirs:.2f}")
        print(f"  test accuracy attnlab {result.accuracy[0]:>10.4f}     "
              f"scikit-learn {result.accuracy[1]:>10.4f}\n")
    load_end = os.getloadavg()[0]
    print(f"1-minute load average: {load_start:.2f} at the start, {load_end:.2f} at the end "
          f"({os.cpu_count()} cores)")
    if args.no_record:
        return
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    rows = [
        f"| {date} | {cpu_description()}, {threads} | {versions} | {r.case} | {r.epochs[0]} / {r.epochs[1]} "
        f"| {r.fit_ms[0]:.2f} | {r.fit_ms[1]:.2f} | {r.fit_ms[0] / r.fit_ms[1]:.2f}x "
        f"| {r.predict_ms[0]:.4f} | {r.predict_ms[1]:.4f} | {r.predict_ms[0] / r.predict_ms[1]:.2f}x "
        f"| {r.accuracy[0]:.4f} / {r.accuracy[1]:.4f} | {load_start:.2f} / {load_end:.2f} | {args.note} |\n"
        for r in results
    ]
    record(rows)
    print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
