"""The perceptron (Rosenblatt 1958), the first trained neuron, as a scikit-learn-style estimator.

    a = w · x + b                       weighted sum plus bias
    ŷ = +1 if a > 0 else -1             step activation
    on a mistake (y a <= 0):  w <- w + η y x,  b <- b + η y        the perceptron learning rule

F. Rosenblatt, "The perceptron: a probabilistic model for information storage and
organization in the brain", Psychological Review 65(6), 1958. With targets y in {-1, +1}
the rule "move by the learning rate times the error times the input" is the update above
(the error y - ŷ is 2y on a mistake; the factor 2 is folded into η, which from a zero
start only rescales w and changes no prediction).

Novikoff's convergence theorem (A. Novikoff, "On convergence proofs on perceptrons",
Symposium on the Mathematical Theory of Automata, 1962): if every ||x|| <= R and some unit
vector u separates the data with margin y (u · x) >= γ > 0, the rule makes at most
(R / γ)^2 mistakes, in any order and for any η, starting from zero. The bias is a weight
on a constant input 1, so R and γ are measured in that augmented space (x, 1).

Dimensions: N samples, F features, K classes, P binary problems (1 if K == 2, else K,
one-vs-rest).

The estimator contract it shares with :mod:`attnlab.models.mlp` (get_params / set_params /
score, sklearn's error wording) is :mod:`attnlab.models.estimator`.
"""

# X (a matrix) and T keep scikit-learn's and the papers' capitals in signatures:
# ruff: noqa: N802, N803

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from attnlab.errors import AttnlabError
from attnlab.models.estimator import Classifier, ConvergenceWarning, NotFittedError

__all__ = ["ConvergenceWarning", "NotFittedError", "Perceptron"]


class Perceptron(Classifier):
    """Rosenblatt's perceptron (1958): a step of a weighted sum, trained by its mistakes.

    Parameters (keyword-only, stored untouched and checked at ``fit``):
        eta0: the learning rate η > 0. From a zero start it only rescales w and b.
        max_iter: the most epochs (passes over the data) ``fit`` makes.
        shuffle: visit the samples in a fresh random order every epoch.
        random_state: seed (int), ``numpy.random.Generator`` or None for the shuffles.
        fit_intercept: learn the bias b (else b = 0 and the hyperplane goes through 0).

    Fitted attributes:
        classes_ (K,), coef_ (P, F), intercept_ (P,), n_features_in_, n_iter_ (epochs run),
        converged_ (the last epoch made no mistake), mistakes_ (n_iter_,) mistakes per epoch
        summed over the P problems, n_mistakes_ (P,) mistakes (= updates) per problem,
        margin_ (P,) the smallest y a / ||(w, b)|| over the training data (> 0 iff the learned
        hyperplane separates it), radius_ R = max ||(x, 1)||, novikoff_bound_ (P,) (R / margin)^2,
        NaN where the margin is not positive.

    With K > 2 classes it learns K one-vs-rest perceptrons, class k against the others, and
    predicts the class of the largest a. Labels may be of any sortable type.

    With ``shuffle=False`` and ``eta0=1`` this is exactly what
    ``sklearn.linear_model.Perceptron(shuffle=False, tol=None)`` computes: both update when
    y a <= 0, so a point on the hyperplane counts as a mistake (as in Novikoff's proof).
    """

    def __init__(self, *, eta0: float = 1.0, max_iter: int = 1000, shuffle: bool = True,
                 random_state: int | np.random.Generator | None = None, fit_intercept: bool = True):
        self.eta0 = eta0
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.fit_intercept = fit_intercept

    def _validate_params(self) -> None:
        self._check_float("eta0", 0.0, strict=True)
        self._check_int("max_iter", 1)
        self._check_bool("shuffle")
        self._check_bool("fit_intercept")

    def fit(self, X: Any, y: Any) -> Perceptron:
        """Epochs of the learning rule from w = 0, b = 0 until one makes no mistake, or ``max_iter``."""
        self._validate_params()
        rng = self._rng()
        X, y = self._check_X_y(X, y, reset=True)
        self._set_classes(y)
        targets = self._targets(y)  # (N, P) in {-1, +1}
        self.coef_ = np.zeros((targets.shape[1], X.shape[1]))  # (P, F)
        self.intercept_ = np.zeros(targets.shape[1])  # (P,)
        # Stops at the first epoch without a mistake: no update in a whole pass, so the
        # weights are final and classify every point.
        per_epoch = self._epochs(X, targets, rng, self.max_iter, until_clean=True)  # (E, P)
        self.n_mistakes_ = per_epoch.sum(axis=0)
        self.mistakes_ = per_epoch.sum(axis=1)
        self.n_iter_ = len(per_epoch)
        self.converged_ = bool(self.mistakes_[-1] == 0)
        if not self.converged_:
            warnings.warn(
                f"Perceptron did not converge in max_iter={self.max_iter} epochs: the last epoch made "
                f"{self.mistakes_[-1]} mistakes. The data may not be linearly separable.",
                ConvergenceWarning, stacklevel=2,
            )
        self.margin_, self.radius_, self.novikoff_bound_ = self._novikoff(X, targets)
        self._stream_rng = rng  # a later partial_fit shuffles on from here
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> Perceptron:
        """One epoch of the learning rule on (X, y), continuing from the current weights.

        ``classes`` (every label the stream will hold) is required on the first call. After
        partial_fit, ``converged_`` says whether this pass made no mistake, and ``margin_``,
        ``novikoff_bound_`` are NaN: they need the whole data set, which ``fit`` sees.
        """
        first = not hasattr(self, "coef_")
        self._validate_params()
        if first:
            if classes is None:
                raise AttnlabError("classes must be passed on the first call to partial_fit.")
            X, y = self._check_X_y(X, y, reset=True)
            self._set_classes(y, classes)
            n_problems = 1 if len(self.classes_) == 2 else len(self.classes_)
            self.coef_ = np.zeros((n_problems, X.shape[1]))
            self.intercept_ = np.zeros(n_problems)
            self.n_mistakes_ = np.zeros(n_problems, dtype=np.int64)
            self.mistakes_ = np.zeros(0, dtype=np.int64)
            self._stream_rng = self._rng()  # one generator for the whole stream of calls
        else:
            X, y = self._check_X_y(X, y)
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise AttnlabError(f"classes={list(classes)!r} is not the same as classes_="
                                   f"{self.classes_.tolist()!r} of the first call to partial_fit.")
        per_problem = self._epochs(X, self._targets(y), self._stream_rng, 1, until_clean=False)[0]
        self.n_mistakes_ += per_problem
        self.mistakes_ = np.append(self.mistakes_, per_problem.sum())
        self.n_iter_ = len(self.mistakes_)
        self.converged_ = bool(per_problem.sum() == 0)
        self.margin_ = self.novikoff_bound_ = np.full(len(per_problem), np.nan)
        self.radius_ = np.nan
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """a = w · x + b: (N,) for two classes (> 0 means classes_[1]), else (N, K)."""
        self._check_fitted()
        X = self._check_X(X)
        scores = X @ self.coef_.T + self.intercept_  # (N, P)
        return scores[:, 0] if len(self.classes_) == 2 else scores

    def predict(self, X: Any) -> np.ndarray:
        """The step of a for two classes; the class with the largest a otherwise. (N,) labels."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]

    # ---- the learning rule

    def _targets(self, y: np.ndarray) -> np.ndarray:
        """(N,) labels -> (N, P) targets in {-1, +1}: one column per one-vs-rest problem."""
        index = self._encode(y)
        if len(self.classes_) == 2:
            return np.where(index == 1, 1.0, -1.0)[:, None]
        return np.where(index[:, None] == np.arange(len(self.classes_)), 1.0, -1.0)

    def _epochs(self, X: np.ndarray, T: np.ndarray, rng: np.random.Generator, epochs: int, *,
                until_clean: bool) -> np.ndarray:
        """Up to ``epochs`` passes of the learning rule over X (N, F) with targets T (N, P).

        Updates ``coef_`` and ``intercept_``; stops after a pass without a mistake if
        ``until_clean``. Returns the mistakes per epoch and problem, (E, P).

        The bias is the weight of a constant input 1: the rule works on x̃ = (x, 1) and
        w̃ = (w, b), so a = w̃ · x̃ and one update w̃ += η y x̃ moves both (the same numbers as
        w += η y x, b += η y).
        """
        n_features = X.shape[1]
        X_aug = np.hstack([X, np.ones((len(X), 1))]) if self.fit_intercept else X  # (N, F + 1)
        W_aug = np.hstack([self.coef_, self.intercept_[:, None]]) if self.fit_intercept \
            else self.coef_.copy()  # (P, F + 1)
        # The rows y x̃ that _epoch runs on: signed once for one problem; for P one-vs-rest
        # problems signed per epoch, one at a time, since P signed copies would take P times
        # the memory of the data.
        signed = X_aug * T if T.shape[1] == 1 else None  # (N, F + 1)
        history = []
        for _ in range(epochs):
            order = rng.permutation(len(X)) if self.shuffle else np.arange(len(X))
            if signed is not None:
                rows: Iterable[np.ndarray] = [signed[order]]
            else:
                X_order, T_order = X_aug[order], T[order]  # (N, F + 1), (N, P)
                rows = (X_order * T_order[:, p, None] for p in range(T.shape[1]))
            # The P problems share the sample order but not their weights: each makes its own
            # pass. (One pass over all P at once, updating the problems a sample is a mistake
            # for, gives the same weights and measured twice as slow.)
            made = [_epoch(Z, W_aug[p], self.eta0) for p, Z in enumerate(rows)]
            history.append(made)
            if until_clean and not any(made):
                break
        self.coef_ = W_aug[:, :n_features].copy()
        if self.fit_intercept:
            self.intercept_ = W_aug[:, n_features].copy()
        return np.array(history, dtype=np.int64).reshape(-1, T.shape[1])

    def _novikoff(self, X: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """(margin (P,), R, (R / margin)^2 (P,)) in the augmented space (x, 1), Novikoff 1962.

        The margin is that of the learned hyperplane, a valid u for the theorem whenever it
        separates the data; the best hyperplane's margin is at least as large, so its bound is
        at most this one.
        """
        ones = np.ones((len(X), 1 if self.fit_intercept else 0))
        X_aug = np.hstack([X, ones])  # (N, F + 1)
        W_aug = np.hstack([self.coef_, self.intercept_[:, None]]) if self.fit_intercept else self.coef_
        norms = np.linalg.norm(W_aug, axis=1)  # (P,)
        signed = T * (X_aug @ W_aug.T)  # (N, P): y a, all 0 where w = 0
        margin = signed.min(axis=0) / np.where(norms > 0, norms, 1.0)  # (P,)
        radius = float(np.linalg.norm(X_aug, axis=1).max())
        bound = np.full(len(margin), np.nan)
        separated = margin > 0
        bound[separated] = (radius / margin[separated]) ** 2
        return margin, radius, bound


# --------------------------------------------------------------------------- one pass, fast
#
# A pass equals visiting the samples one at a time and updating on y a <= 0 (the naive loop
# in the tests), without a Python step per sample: the sums for the next ``look`` samples are
# one matrix-vector product, so a run of correctly classified samples costs one NumPy call;
# after an update the look-ahead restarts at the following sample, since the weights have
# changed. It doubles while no mistake turns up (late epochs: few, long products) and drops
# to about twice the last gap after one (early epochs: little work thrown away).

MIN_LOOKAHEAD = 64


def _epoch(Z: np.ndarray, w: np.ndarray, eta: float) -> int:
    """One pass of the learning rule over the signed rows Z = y x̃ (N, F + 1), in order.

    y a = y (w̃ · x̃) = (y x̃) · w̃, so with the sign folded into the rows a mistake is
    z · w̃ <= 0 and the update w̃ += η y x̃ is w̃ += η z (y = ±1: the same numbers). Updates
    w̃ (F + 1,) in place and returns the number of mistakes.
    """
    n, pos, look, mistakes = len(Z), 0, MIN_LOOKAHEAD, 0
    while pos < n:
        wrong = Z[pos:pos + look] @ w <= 0  # (L,)
        j = int(wrong.argmax())  # the first mistake, or 0 if none
        if not wrong[j]:
            pos += len(wrong)
            look += look
            continue
        w += eta * Z[pos + j]
        mistakes += 1
        pos += j + 1
        look = 2 * j + 2 if j >= MIN_LOOKAHEAD // 2 else MIN_LOOKAHEAD
    return mistakes
