"""The multi-layer perceptron trained by back-propagation (Rumelhart, Hinton & Williams 1986).

    h_0 = x
    h_l = act(h_{l-1} W_l + b_l)          hidden layers, l = 1 .. L-1
    z   = h_{L-1} W_L + b_L               logits, one per class
    p   = softmax(z)                      class probabilities
    loss = cross-entropy(p, y) + alpha / (2 n) Σ_l ||W_l||²      (L2 on weights, not biases)

D. E. Rumelhart, G. E. Hinton & R. J. Williams, "Learning representations by
back-propagating errors", Nature 323, 1986. One hidden layer already computes XOR,
which no single perceptron can (Minsky & Papert 1969). With one hidden layer and
ReLU this is the position-wise feed-forward network of a Transformer block
(:class:`attnlab.nn.feedforward.PositionwiseFeedForward`, eq. 2 of arXiv:1706.03762)
applied to every row: ``coefs_[0]`` is ``fc_in.weight.T``, ``coefs_[1]`` is ``fc_out.weight.T``.

Optimisers: Adam (Kingma & Ba 2015, arXiv:1412.6980) or SGD with momentum, on
mini-batches. Weights start Glorot-uniform (Glorot & Bengio 2010). Everything runs in
float64 on the CPU; the same ``random_state`` gives the same weights, bit for bit.

Dimensions: N samples, F features, H_l units in hidden layer l, K classes.
"""

# X (a matrix) keeps scikit-learn's capital in signatures:
# ruff: noqa: N802, N803

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.models.estimator import Classifier, ConvergenceWarning

__all__ = ["MLPClassifier"]

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "logistic": torch.sigmoid}


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread, then restore the previous count.

    Mini-batches of at most a few hundred rows are too small to split; worse, idle OpenMP
    workers spin-wait between the many tiny ops and, on a busy machine, starve the main
    thread (measured: 10-50x slower fits on 2 shared cores, and no gain when idle).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def forward(x: Tensor, weights: list[Tensor], biases: list[Tensor], activation: str) -> Tensor:
    """The network: (N, F) -> (N, K) logits, activation after every layer but the last."""
    h = x
    for layer, (W, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ W + b  # (N, H_l)
        if layer < len(weights) - 1:
            h = ACTIVATIONS[activation](h)
    return h


class MLPClassifier(Classifier):
    """A feed-forward network with a softmax output, trained on the cross-entropy.

    Parameters (keyword-only, stored untouched and checked at ``fit``; names as in sklearn):
        hidden_layer_sizes: units per hidden layer, e.g. ``(100,)`` or ``(64, 32)``.
        activation: ``"relu"``, ``"tanh"`` or ``"logistic"`` for the hidden layers.
        solver: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        alpha: L2 penalty on the weights, scaled by 1 / (2 * batch size) as in sklearn.
        batch_size: samples per mini-batch, or ``"auto"`` = min(200, N).
        learning_rate_init: the step size (constant).
        max_iter: the most epochs; ``n_iter_no_change`` epochs without an improvement of
            more than ``tol`` in the training loss (or, with ``early_stopping``, in the
            accuracy on the held-out ``validation_fraction``) stop training first.
        shuffle, random_state: fresh sample order per epoch; seed for it and the weights.
        momentum: for sgd. beta_1, beta_2, epsilon: for adam.

    Fitted attributes: classes_, coefs_ (list of (H_{l-1}, H_l) arrays), intercepts_
    (list of (H_l,)), n_features_in_, n_iter_, converged_, loss_, loss_curve_ (mean
    training loss per epoch), best_loss_, and with early stopping validation_scores_
    and best_validation_score_ (the weights are those of the best validation epoch).

    Unlike sklearn's MLPClassifier, two classes also get a softmax over two logits (not one
    logistic unit), so one code path covers every K.
    """

    def __init__(self, *, hidden_layer_sizes: tuple[int, ...] = (100,), activation: str = "relu",
                 solver: str = "adam", alpha: float = 1e-4, batch_size: int | str = "auto",
                 learning_rate_init: float = 1e-3, max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.Generator | None = None, tol: float = 1e-4,
                 momentum: float = 0.9, early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _validate_params(self) -> None:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, (int, np.integer)) else sizes
        if not isinstance(sizes, (tuple, list)) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise self._param_error("hidden_layer_sizes", "a tuple of ints >= 1")
        self._check_choice("activation", tuple(ACTIVATIONS))
        self._check_choice("solver", ("adam", "sgd"))
        self._check_float("alpha", 0.0, strict=False)
        size = self.batch_size
        auto = isinstance(size, str) and size == "auto"
        count = isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1
        if not (auto or count):
            raise self._param_error("batch_size", "an int in the range [1, inf) or the str 'auto'")
        self._check_float("learning_rate_init", 0.0, strict=True)
        self._check_int("max_iter", 1)
        self._check_bool("shuffle")
        self._check_float("tol", 0.0, strict=False)
        self._check_float("momentum", 0.0, strict=False, high=1.0)
        self._check_bool("early_stopping")
        self._check_float("validation_fraction", 0.0, strict=True, high=1.0)
        self._check_int("n_iter_no_change", 1)
        self._check_float("beta_1", 0.0, strict=False, high=1.0)
        self._check_float("beta_2", 0.0, strict=False, high=1.0)
        self._check_float("epsilon", 0.0, strict=True)

    # ---- training

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train from fresh Glorot-uniform weights until the stopping rule or ``max_iter``."""
        self._validate_params()
        rng = self._rng()
        X, y = self._check_X_y(X, y, reset=True)
        self._set_classes(y)
        labels = self._encode(y)
        X_val = labels_val = None
        if self.early_stopping:
            order = rng.permutation(len(X))
            n_val = int(round(self.validation_fraction * len(X)))
            if n_val < 1 or len(X) - n_val < 1:
                raise AttnlabError(
                    f"early_stopping with validation_fraction={self.validation_fraction} leaves "
                    f"{n_val} validation and {len(X) - n_val} training samples of {len(X)}; both "
                    f"must be >= 1."
                )
            X_val, labels_val = X[order[:n_val]], labels[order[:n_val]]
            X, labels = X[order[n_val:]], labels[order[n_val:]]
        self._initialise(X.shape[1], rng)
        self.loss_curve_: list[float] = []
        self.validation_scores_: list[float] | None = [] if self.early_stopping else None
        self.best_loss_ = np.inf
        self.best_validation_score_ = -np.inf if self.early_stopping else None
        best_weights = None
        stale = 0  # epochs in a row without an improvement greater than tol
        self.converged_ = False
        for _ in range(self.max_iter):
            loss = self._epoch(X, labels, rng)
            self.loss_curve_.append(loss)
            if self.early_stopping:
                score = float((self._logits(X_val).argmax(axis=1) == labels_val).mean())
                self.validation_scores_.append(score)
                improved = score > self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_weights = [w.copy() for w in (*self.coefs_, *self.intercepts_)]
            else:
                improved = loss < self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, loss)
            stale = 0 if improved else stale + 1
            if stale >= self.n_iter_no_change:
                self.converged_ = True
                break
        self.n_iter_ = len(self.loss_curve_)
        self.loss_ = self.loss_curve_[-1]
        self._stream_rng = rng  # a later partial_fit shuffles on from here
        if best_weights is not None:
            # Back to the weights of the best validation epoch.
            for array, best in zip((*self.coefs_, *self.intercepts_), best_weights, strict=True):
                array[...] = best
        if not self.converged_:
            warnings.warn(
                f"MLPClassifier: max_iter={self.max_iter} epochs reached and the optimisation has not "
                f"converged yet (last loss {self.loss_:.6f}).", ConvergenceWarning, stacklevel=2,
            )
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y) from the current weights and optimiser state.

        ``classes`` is required on the first call. No stopping rule is applied.
        """
        self._validate_params()
        if not hasattr(self, "coefs_"):
            if classes is None:
                raise AttnlabError("classes must be passed on the first call to partial_fit.")
            X, y = self._check_X_y(X, y, reset=True)
            self._set_classes(y, classes)
            self._stream_rng = self._rng()
            self._initialise(X.shape[1], self._stream_rng)
            self.loss_curve_ = []
        else:
            X, y = self._check_X_y(X, y)
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise AttnlabError(f"classes={list(classes)!r} is not the same as classes_="
                                   f"{self.classes_.tolist()!r} of the first call to partial_fit.")
        self.loss_ = self._epoch(X, self._encode(y), self._stream_rng)
        self.loss_curve_.append(self.loss_)
        self.n_iter_ = len(self.loss_curve_)
        return self

    def _initialise(self, n_features: int, rng: np.random.Generator) -> None:
        """Glorot-uniform weights and biases, U(-s, s) with s = sqrt(c / (fan_in + fan_out)).

        c = 6 for relu and tanh, 2 for the logistic, whose slope at 0 is 1/4 (Glorot & Bengio 2010).
        """
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, (int, np.integer)) else tuple(sizes)
        widths = [n_features, *map(int, sizes), len(self.classes_)]
        gain = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            bound = np.sqrt(gain / (fan_in + fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)))  # (H_{l-1}, H_l)
            self.intercepts_.append(rng.uniform(-bound, bound, size=fan_out))  # (H_l,)
        # Optimiser state, as NumPy arrays like the weights so that a fitted model pickles and
        # deep-copies whole: first and second moments (adam) or velocity (sgd), and the step count.
        self._moments = [[np.zeros_like(a) for a in (*self.coefs_, *self.intercepts_)] for _ in range(2)]
        self._steps = 0

    def _step(self, params: list[Tensor], moments: list[list[Tensor]]) -> None:
        """One optimiser step on the gradients of ``params``, in place.

        adam (Kingma & Ba 2015, Algorithm 1): m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
        θ <- θ - lr m̂ / (sqrt(v̂) + eps) with the bias corrections m̂ = m / (1 - b1^t),
        v̂ = v / (1 - b2^t). sgd: u <- momentum u - lr g, θ <- θ + u.
        """
        self._steps += 1
        lr, t = self.learning_rate_init, self._steps
        with torch.no_grad():
            for p, m, v in zip(params, *moments, strict=True):
                g = p.grad
                if self.solver == "adam":
                    m.mul_(self.beta_1).add_(g, alpha=1 - self.beta_1)
                    v.mul_(self.beta_2).addcmul_(g, g, value=1 - self.beta_2)
                    m_hat, v_hat = m / (1 - self.beta_1**t), v / (1 - self.beta_2**t)
                    p.sub_(lr * m_hat / (v_hat.sqrt() + self.epsilon))
                else:
                    m.mul_(self.momentum).sub_(g, alpha=lr)
                    p.add_(m)
                p.grad = None

    def _epoch(self, X: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> float:
        """One pass of mini-batch gradient steps; returns the mean loss over the samples."""
        with _one_thread():
            return self._epoch_steps(X, labels, rng)

    def _epoch_steps(self, X: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> float:
        n = len(X)
        batch = min(200, n) if self.batch_size == "auto" else min(self.batch_size, n)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(labels)
        # torch.from_numpy shares memory: the in-place optimiser steps update coefs_ and
        # intercepts_ themselves, and weights set by hand are the ones trained.
        params = [torch.from_numpy(a).requires_grad_() for a in (*self.coefs_, *self.intercepts_)]
        moments = [[torch.from_numpy(m) for m in group] for group in self._moments]
        n_layers = len(self.coefs_)
        total = 0.0
        for start in range(0, n, batch):
            rows = torch.from_numpy(order[start:start + batch])
            weights, biases = params[:n_layers], params[n_layers:]
            logits = forward(X_t[rows], weights, biases, self.activation)  # (n_b, K)
            l2 = sum((w * w).sum() for w in weights) * (self.alpha / (2 * len(rows)))
            loss = F.cross_entropy(logits, y_t[rows]) + l2
            loss.backward()
            self._step(params, moments)
            total += loss.item() * len(rows)
        return total / n

    def _logits(self, X: np.ndarray) -> np.ndarray:
        # From coefs_/intercepts_ themselves (as_tensor shares, never copies), so weights set
        # by hand are the ones used.
        with torch.no_grad(), _one_thread():
            z = forward(torch.from_numpy(X), [torch.as_tensor(W) for W in self.coefs_],
                        [torch.as_tensor(b) for b in self.intercepts_], self.activation)
        return z.numpy()

    # ---- inference

    def decision_function(self, X: Any) -> np.ndarray:
        """The logits z before the softmax, (N, K)."""
        self._check_fitted()
        return self._logits(self._check_X(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """softmax(z): (N, K), each row sums to 1, columns in the order of ``classes_``."""
        return torch.softmax(torch.from_numpy(self.decision_function(X)), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The class of the largest logit, (N,) labels."""
        index = self.decision_function(X).argmax(axis=1)  # checks fitted first: classes_ may not exist
        return self.classes_[index]
