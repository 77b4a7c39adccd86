"""Novikoff's (1962) perceptron convergence bound beside the mistakes a fitted perceptron made.

On data separable by a unit vector u with margin gamma = min_i y_i u · (x_i, 1), and
R = max_i |(x_i, 1)|, the perceptron makes at most (R / gamma)^2 mistakes (Novikoff 1962,
"On convergence proofs on perceptrons"). The fitted :class:`attnlab.Perceptron` records
``margin_``, ``radius_``, ``novikoff_bound_`` and ``n_mistakes_`` per one-vs-rest problem;
these functions put them into words.
"""

# X (a matrix) keeps scikit-learn's capital in signatures:
# ruff: noqa: N803

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.data.points import SEPARATING_LINE


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
    """Novikoff's bound from the line that generated the separable data
    (:func:`attnlab.data.points.separable_points`), a better u than the learned one: its
    margin is at least the gap by construction. X (N, 2), y (N,) of 0 and 1."""
    normal, offset = SEPARATING_LINE
    u = np.append(normal, -offset) / np.hypot(1.0, offset)  # unit vector in the (x, 1) space
    signs = np.where(y == 1, 1.0, -1.0)
    margin = float((signs * (np.c_[X, np.ones(len(X))] @ u)).min())
    bound = (model.radius_ / margin) ** 2
    made = int(model.n_mistakes_[0])
    return (f"Novikoff  with the generating line as u: margin {margin:.4g}, bound {bound:.4g}; "
            f"mistakes made {made} ({'within the bound' if made <= bound else 'ABOVE THE BOUND'})")


def novikoff_note(model: Any) -> str:
    """Two lines for a picture: the mistakes in all, and the bound (or how many of the
    one-vs-rest problems were separated, each within its bound or not)."""
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
