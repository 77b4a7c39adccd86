"""Pictures of a fitted perceptron or MLP (``attnlab perceptron --plot``): the decision
regions with the training points (2-D data only), beside the mistakes per epoch
(perceptron, with Novikoff's bound) or the training loss per epoch (MLP).

A PNG is drawn by matplotlib (the ``plot`` extra) on its Agg canvas; an SVG is written by
hand and needs nothing. X is (N, F) float64, y (N,) labels; ``model`` is a fitted
:class:`attnlab.Perceptron` or :class:`attnlab.MLPClassifier`.
"""

# X (a matrix) keeps scikit-learn's capital in signatures:
# ruff: noqa: N803

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.errors import AttnlabError
from attnlab.files import atomic_write
from attnlab.inspect.novikoff import novikoff_note

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
PlotWriter = Callable[[Path, Any, np.ndarray, np.ndarray], None]  # (path, model, X, y)


def plot_writer(name: str) -> PlotWriter:
    """The writer for the plot file's type: write_svg for .svg, write_png for .png.

    Checks the name, and for a PNG that matplotlib can be imported, so that both fail before
    any training.
    """
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
    axes.text(0.98, 0.96, novikoff_note(model), transform=axes.transAxes, ha="right", va="top",
              fontsize=9, bbox={"facecolor": "white", "edgecolor": "#888", "alpha": 0.9})


def write_svg(path: Path, model: Any, X: np.ndarray, y: np.ndarray, grid: int = 60) -> None:
    """An SVG, no plotting library needed: decision regions and points (2-D data only) on the
    left, mistakes (perceptron) or loss (MLP) per epoch on the right."""
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
