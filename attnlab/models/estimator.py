"""The scikit-learn estimator contract of attnlab's classic models (Perceptron, MLPClassifier),
without importing scikit-learn: keyword-only constructors that only store, get_params /
set_params / score, checks at ``fit`` and scikit-learn's error wording."""

# X (a matrix) keeps scikit-learn's capital in signatures:
# ruff: noqa: N802, N803

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np

from attnlab.errors import AttnlabError


class ConvergenceWarning(UserWarning):
    """Training stopped at ``max_iter`` before its stopping criterion was met."""


class NotFittedError(AttnlabError, AttributeError):
    """An estimator was used before ``fit`` (an AttributeError too, as in scikit-learn)."""


class Classifier:
    """get_params / set_params / score / input checks, written to scikit-learn's contract.

    Subclasses take keyword-only constructor arguments and only store them; every check
    happens in ``fit`` so that ``sklearn.base.clone`` and ``set_params`` round-trip.
    """

    _estimator_type = "classifier"  # how scikit-learn < 1.6 recognises a classifier

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, by name (``deep`` is accepted for sklearn; nothing nests)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Classifier:
        """Set constructor arguments by name; they are checked at the next ``fit``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise AttnlabError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        # Like sklearn: only the arguments that differ from their defaults.
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        # Only scikit-learn calls this (is_classifier, cross_val_score), so it is importable
        # here; attnlab itself never imports scikit-learn.
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of ``predict(X)`` against ``y`` (weighted if ``sample_weight``)."""
        X, y = self._check_X_y(X, y)
        correct = (self.predict(X) == y).astype(np.float64)
        if sample_weight is None:
            return float(correct.mean())
        weight = np.asarray(sample_weight, dtype=np.float64)
        if weight.shape != correct.shape:
            raise AttnlabError(f"sample_weight has shape {weight.shape}, expected {correct.shape}.")
        return float((correct * weight).sum() / weight.sum())

    # ---- parameter checks, worded like sklearn's InvalidParameterError

    def _param_error(self, name: str, expected: str) -> AttnlabError:
        return AttnlabError(
            f"The {name!r} parameter of {type(self).__name__} must be {expected}. "
            f"Got {getattr(self, name)!r} instead."
        )

    def _check_int(self, name: str, low: int) -> None:
        value = getattr(self, name)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise self._param_error(name, f"an int in the range [{low}, inf)")

    def _check_float(self, name: str, low: float, *, strict: bool, high: float | None = None) -> None:
        value = getattr(self, name)
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
        ok = ok and (value > low if strict else value >= low) and (high is None or value < high)
        if not ok:
            interval = f"{'(' if strict else '['}{low}, {'inf' if high is None else high})"
            raise self._param_error(name, f"a float in the range {interval}")

    def _check_bool(self, name: str) -> None:
        if not isinstance(getattr(self, name), (bool, np.bool_)):
            raise self._param_error(name, "an instance of 'bool'")

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        if getattr(self, name) not in choices:
            raise self._param_error(name, "a str among {" + ", ".join(map(repr, sorted(choices))) + "}")

    def _rng(self) -> np.random.Generator:
        seed = self.random_state
        if isinstance(seed, np.random.Generator):
            return seed
        if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0):
            return np.random.default_rng(seed)
        raise self._param_error("random_state", "an int >= 0, a numpy Generator or None")

    # ---- input checks, worded like sklearn's check_array / check_X_y

    def _check_X(self, X: Any, *, reset: bool = False) -> np.ndarray:
        name = type(self).__name__
        raw = np.asarray(X)
        # Strings are refused even when they parse as numbers ("1.5"), as in sklearn: they are
        # usually a column read as text by mistake.
        text = raw.dtype.kind in "USV" or (raw.dtype.kind == "O" and any(
            isinstance(value, (str, bytes)) for value in raw.ravel()))
        if text or raw.dtype.kind == "c":
            kind = "strings" if text else "complex numbers"
            raise AttnlabError(f"X contains {kind}; {name} needs real numbers (encode categories as "
                               f"numbers first).")
        try:
            X = raw.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise AttnlabError(f"X must hold numbers only ({error}).") from None
        if X.ndim != 2:
            hint = (" Reshape your data with X.reshape(-1, 1) if it has a single feature or "
                    "X.reshape(1, -1) if it is a single sample.") if X.ndim == 1 else ""
            raise AttnlabError(f"Expected a 2-D array for X, got a {X.ndim}-D array of shape {X.shape} "
                               f"instead.{hint}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise AttnlabError(f"Found array with shape {X.shape} while a minimum of 1 sample and 1 "
                               f"feature is required by {name}.")
        if not np.isfinite(X).all():
            what = "NaN" if np.isnan(X).any() else "infinity or a value too large for dtype('float64')"
            raise AttnlabError(f"Input X contains {what}.")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise AttnlabError(f"X has {X.shape[1]} features, but {name} is expecting "
                               f"{self.n_features_in_} features as input.")
        return X

    def _check_X_y(self, X: Any, y: Any, *, reset: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if not reset:
            self._check_fitted()
        X = self._check_X(X, reset=reset)
        y = np.asarray(y)
        if y.ndim != 1:
            raise AttnlabError(f"y should be a 1-D array, got an array of shape {y.shape} instead"
                               f"{' (use y.ravel())' if y.ndim == 2 and y.shape[1] == 1 else ''}.")
        if len(y) != len(X):
            raise AttnlabError(f"Found input variables with inconsistent numbers of samples: "
                               f"[{len(X)}, {len(y)}].")
        if y.dtype.kind == "f":
            if not np.isfinite(y).all():
                raise AttnlabError("Input y contains NaN or infinity.")
            if (y != np.round(y)).any():
                raise AttnlabError(f"Unknown label type: continuous values in y (e.g. "
                                   f"{y[y != np.round(y)][0]!r}); a classifier needs class labels.")
        if y.dtype.kind == "O" and any(label is None for label in y):
            raise AttnlabError("y contains None; every sample needs a class label.")
        return X, y

    def _set_classes(self, y: np.ndarray, classes: Any = None) -> None:
        try:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
        except TypeError as error:
            raise AttnlabError(f"The labels in y cannot be sorted ({error}); use labels of one type.") \
                from None
        if len(self.classes_) < 2:
            raise AttnlabError(f"The number of classes has to be greater than one; got "
                               f"{len(self.classes_)} class ({self.classes_.tolist()!r}).")

    def _encode(self, y: np.ndarray) -> np.ndarray:
        """Labels -> indices into ``classes_``: (N,) int."""
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise AttnlabError(f"y contains labels not in classes_ {self.classes_.tolist()!r}: "
                               f"{np.unique(y[unknown]).tolist()!r}.")
        return index

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate "
                f"arguments before using this estimator."
            )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return a is b
