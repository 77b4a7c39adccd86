"""The perceptron (Rosenblatt 1958) against a naive NumPy loop, scikit-learn, and Novikoff's theorem."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import linear_model
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.preprocessing import StandardScaler

from attnlab.errors import AttnlabError
from attnlab.models.perceptron import ConvergenceWarning, NotFittedError, Perceptron

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([0, 1, 1, 0])


def naive_perceptron(X, t, *, eta, epochs, seed=None, fit_intercept=True):  # noqa: N803
    """The rule, one sample at a time: on y (w·x + b) <= 0, w += η y x and b += η y.

    t in {-1, +1}. With a seed, epoch e visits the samples in the order of the e-th
    ``default_rng(seed).permutation``, as Perceptron does. Returns (w, b, mistakes per epoch).
    """
    rng = np.random.default_rng(seed)
    w, b, mistakes = np.zeros(X.shape[1]), 0.0, []
    for _ in range(epochs):
        order = range(len(X)) if seed is None else rng.permutation(len(X))
        count = 0
        for i in order:
            if t[i] * (w @ X[i] + b) <= 0:
                w = w + eta * t[i] * X[i]
                b = b + eta * t[i] if fit_intercept else b
                count += 1
        mistakes.append(count)
        if count == 0:
            break
    return w, b, mistakes


def separable(n, seed, gap=0.2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4 * n, 3))
    a = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    keep = np.abs(a) > gap
    return X[keep][:n], (a[keep][:n] > 0).astype(int)


@pytest.fixture(scope="module")
def cancer():
    """Breast cancer, standardised with the training statistics: (X_train, X_test, y_train, y_test)."""
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


# ---- the learning rule against a naive loop


@pytest.mark.parametrize("eta, fit_intercept", [(1.0, True), (0.1, True), (0.5, False)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_equals_the_naive_loop(eta, fit_intercept, shuffle):
    X, y = separable(80, seed=1)
    model = Perceptron(eta0=eta, shuffle=shuffle, random_state=7, fit_intercept=fit_intercept).fit(X, y)
    w, b, mistakes = naive_perceptron(X, np.where(y == 1, 1.0, -1.0), eta=eta, epochs=1000,
                                      seed=7 if shuffle else None, fit_intercept=fit_intercept)
    np.testing.assert_allclose(model.coef_[0], w, rtol=0, atol=1e-12)
    assert model.intercept_[0] == pytest.approx(b, abs=1e-12)
    assert model.mistakes_.tolist() == mistakes
    assert model.n_iter_ == len(mistakes) and model.converged_


def test_non_separable_epochs_equal_the_naive_loop(cancer):
    # Many updates per epoch and never converging: the look-ahead in _epoch must not skip any.
    X, _, y, _ = cancer
    X, y = X[:200], y[:200] ^ (np.arange(200) % 9 == 0)  # every 9th label flipped
    with pytest.warns(ConvergenceWarning):
        model = Perceptron(random_state=3, max_iter=15).fit(X, y)
    w, b, mistakes = naive_perceptron(X, np.where(y, 1.0, -1.0), eta=1.0, epochs=15, seed=3)
    np.testing.assert_allclose(model.coef_[0], w, rtol=0, atol=1e-10)
    assert model.intercept_[0] == pytest.approx(b, abs=1e-10)
    assert model.mistakes_.tolist() == mistakes and min(mistakes) > 0


def test_one_vs_rest_shuffled_equals_a_naive_loop_per_class():
    # The K problems share each epoch's sample order and nothing else: class k's weights are
    # those of the naive loop on "k against the rest" with the same permutations.
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Perceptron(eta0=0.5, random_state=5, max_iter=30).fit(X, y)
    per_epoch = np.zeros(model.n_iter_, dtype=int)
    for k in range(3):
        w, b, mistakes = naive_perceptron(X, np.where(y == k, 1.0, -1.0), eta=0.5, epochs=30, seed=5)
        np.testing.assert_allclose(model.coef_[k], w, rtol=0, atol=1e-12)
        assert model.intercept_[k] == pytest.approx(b, abs=1e-12)
        assert model.n_mistakes_[k] == sum(mistakes)
        per_epoch[:len(mistakes)] += mistakes  # a converged problem makes no more mistakes
    assert model.mistakes_.tolist() == per_epoch.tolist()


def test_many_samples_and_rare_mistakes_equal_the_naive_loop():
    # Late epochs with a mistake every few hundred samples: the look-ahead grows well past its
    # minimum of 64 rows, and must still stop at each mistake.
    X, y = separable(1500, seed=3, gap=0.01)
    model = Perceptron(random_state=1).fit(X, y)
    w, b, mistakes = naive_perceptron(X, np.where(y == 1, 1.0, -1.0), eta=1.0, epochs=1000, seed=1)
    assert model.mistakes_.tolist() == mistakes and model.converged_
    assert len(mistakes) > 5 and 0 < min(mistakes[1:-1]) < len(X) / (2 * 64)  # gaps > 2 x 64 rows
    np.testing.assert_allclose(model.coef_[0], w, rtol=0, atol=1e-10)
    assert model.intercept_[0] == pytest.approx(b, abs=1e-10)


# ---- parity with scikit-learn


@pytest.mark.parametrize("epochs", [1, 7, 40])
def test_same_weights_as_sklearn_without_shuffling(cancer, epochs):
    X, _, y, _ = cancer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = Perceptron(shuffle=False, max_iter=epochs).fit(X, y)
        theirs = linear_model.Perceptron(shuffle=False, tol=None, max_iter=epochs).fit(X, y)
    # Same rule (update on y a <= 0, step η y x), same order: the same floating-point sums.
    np.testing.assert_array_equal(ours.coef_, theirs.coef_)
    np.testing.assert_array_equal(ours.intercept_, theirs.intercept_)
    np.testing.assert_array_equal(ours.decision_function(X), theirs.decision_function(X))


def test_multiclass_one_vs_rest_matches_sklearn_with_string_labels():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = Perceptron(shuffle=False, max_iter=25).fit(X, names[y])
        theirs = linear_model.Perceptron(shuffle=False, tol=None, max_iter=25).fit(X, y)
    np.testing.assert_array_equal(ours.coef_, theirs.coef_)
    np.testing.assert_array_equal(ours.intercept_, theirs.intercept_)
    assert ours.classes_.tolist() == names.tolist()
    np.testing.assert_array_equal(ours.predict(X), names[theirs.predict(X)])
    assert ours.decision_function(X).shape == (150, 3)


def test_partial_fit_matches_sklearn(cancer):
    X, _, y, _ = cancer
    ours, theirs = Perceptron(shuffle=False), linear_model.Perceptron(shuffle=False)
    for chunk in np.array_split(np.arange(len(X)), 4):
        ours.partial_fit(X[chunk], y[chunk], classes=[0, 1])
        theirs.partial_fit(X[chunk], y[chunk], classes=[0, 1])
    np.testing.assert_array_equal(ours.coef_, theirs.coef_)
    np.testing.assert_array_equal(ours.intercept_, theirs.intercept_)
    assert ours.n_iter_ == 4 and len(ours.mistakes_) == 4


def test_held_out_accuracy_within_3_points_of_sklearn(cancer):
    X_train, X_test, y_train, y_test = cancer
    ours = Perceptron(random_state=0).fit(X_train, y_train).score(X_test, y_test)
    theirs = linear_model.Perceptron(random_state=0).fit(X_train, y_train).score(X_test, y_test)
    assert ours > 0.9 and abs(ours - theirs) <= 0.03, (ours, theirs)


# ---- convergence and Novikoff's bound


def test_iris_setosa_versus_rest_converges_perfectly():
    X, y = load_iris(return_X_y=True)
    model = Perceptron(random_state=0).fit(X, y == 0)
    assert model.converged_ and model.score(X, y == 0) == 1.0
    assert model.mistakes_[-1] == 0 and model.mistakes_[:-1].min() > 0
    assert 0 < model.n_mistakes_[0] <= model.novikoff_bound_[0]


@pytest.mark.parametrize("seed", range(5))
def test_mistakes_within_novikoff_bound(seed):
    X, y = separable(200, seed)
    model = Perceptron(random_state=seed).fit(X, y)
    assert model.converged_ and model.score(X, y) == 1.0
    # The bound from the generating hyperplane u (margin >= gap / ||u||) and R = max ||(x, 1)||.
    u = np.array([1.0, -2.0, 0.5, 0.3])
    X_aug = np.c_[X, np.ones(len(X))]
    true_margin = (np.where(y == 1, 1, -1) * (X_aug @ u)).min() / np.linalg.norm(u)
    radius = np.linalg.norm(X_aug, axis=1).max()
    assert model.radius_ == pytest.approx(radius)
    assert model.n_mistakes_[0] == model.mistakes_.sum()
    assert model.n_mistakes_[0] <= (radius / true_margin) ** 2
    assert model.n_mistakes_[0] <= model.novikoff_bound_[0]


def test_margin_is_the_learned_hyperplanes_smallest_normalised_distance():
    X, y = separable(60, seed=4)
    model = Perceptron(random_state=0).fit(X, y)
    w = np.append(model.coef_[0], model.intercept_[0])
    expected = min(t * (w @ np.append(x, 1.0)) for x, t in zip(X, np.where(y == 1, 1, -1), strict=True))
    assert model.margin_[0] == pytest.approx(expected / np.linalg.norm(w))


def test_learning_rate_does_not_change_the_mistakes_from_a_zero_start():
    X, y = separable(100, seed=2)
    a = Perceptron(eta0=1.0, random_state=0).fit(X, y)
    b = Perceptron(eta0=0.01, random_state=0).fit(X, y)
    assert a.mistakes_.tolist() == b.mistakes_.tolist()
    np.testing.assert_allclose(b.coef_, 0.01 * a.coef_, rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_xor_never_converges(seed):
    with pytest.warns(ConvergenceWarning, match="may not be linearly separable"):
        model = Perceptron(random_state=seed, max_iter=200).fit(XOR_X, XOR_Y)
    assert not model.converged_ and model.n_iter_ == 200
    assert model.mistakes_.min() >= 1
    assert model.score(XOR_X, XOR_Y) <= 0.75
    assert model.margin_[0] <= 0 and np.isnan(model.novikoff_bound_[0])


# ---- the estimator contract


def test_clone_and_cross_val_score_work():
    X, y = load_iris(return_X_y=True)
    model = Perceptron(eta0=0.5, max_iter=50, random_state=0)
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert is_classifier(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(model, X, y == 0, cv=5)
    assert scores.shape == (5,) and scores.min() == 1.0


def test_get_and_set_params_round_trip():
    model = Perceptron()
    assert model.get_params() == {"eta0": 1.0, "fit_intercept": True, "max_iter": 1000,
                                  "random_state": None, "shuffle": True}
    assert model.set_params(eta0=0.25, shuffle=False) is model
    assert model.eta0 == 0.25 and repr(model) == "Perceptron(eta0=0.25, shuffle=False)"
    with pytest.raises(AttnlabError, match="Invalid parameter 'eta' for estimator Perceptron"):
        model.set_params(eta=1)
    with pytest.raises(TypeError):
        Perceptron(1.0)  # keyword-only, as in sklearn


def test_fit_returns_self_and_is_deterministic():
    X, y = separable(150, seed=5)
    model = Perceptron(random_state=11)
    assert model.fit(X, y) is model
    again = Perceptron(random_state=11).fit(X, y)
    np.testing.assert_array_equal(model.coef_, again.coef_)
    other = Perceptron(random_state=12).fit(X, y)
    assert not np.array_equal(model.coef_, other.coef_)


def test_binary_predict_is_the_step_of_decision_function():
    X, y = separable(50, seed=6)
    labels = np.where(y == 1, "yes", "no")
    model = Perceptron(random_state=0).fit(X, labels)
    scores = model.decision_function(X)
    assert scores.shape == (50,)
    np.testing.assert_array_equal(model.predict(X), np.where(scores > 0, "yes", "no"))
    assert model.n_features_in_ == 3


def test_partial_fit_needs_classes_first_and_keeps_them():
    X, y = separable(40, seed=8)
    model = Perceptron()
    with pytest.raises(AttnlabError, match="classes must be passed on the first call"):
        model.partial_fit(X, y)
    model.partial_fit(X[:20], y[:20], classes=[0, 1, 2])
    assert model.classes_.tolist() == [0, 1, 2] and model.coef_.shape == (3, 3)
    with pytest.raises(AttnlabError, match=r"not in classes_"):
        model.partial_fit(X, np.full(40, 5))
    with pytest.raises(AttnlabError, match=r"is not the same as classes_"):
        model.partial_fit(X, y, classes=[0, 1])


def test_partial_fit_after_fit_continues_from_the_fitted_weights():
    X, y = separable(60, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Perceptron(shuffle=False, max_iter=1).fit(X, y)
    before = model.coef_.copy()
    model.partial_fit(X, y)
    w, b, _ = naive_perceptron(X, np.where(y == 1, 1.0, -1.0), eta=1.0, epochs=2)
    assert not np.array_equal(before, model.coef_)
    np.testing.assert_allclose(model.coef_[0], w, rtol=0, atol=1e-12)
    assert model.n_iter_ == 2 and np.isnan(model.novikoff_bound_).all()


# ---- bad input


@pytest.mark.parametrize(
    "data, y, message",
    [
        ([[0.0, np.nan], [1.0, 1.0]], [0, 1], "Input X contains NaN"),
        ([[0.0, np.inf], [1.0, 1.0]], [0, 1], "Input X contains infinity"),
        ([["a", "b"], ["c", "d"]], [0, 1], "X contains strings"),
        ([["1.5", "2"], ["3", "4"]], [0, 1], "X contains strings"),
        ([1.0, 2.0, 3.0], [0, 1, 0], r"Expected a 2-D array for X, got a 1-D array .* X.reshape\(-1, 1\)"),
        (np.zeros((0, 2)), [], r"Found array with shape \(0, 2\)"),
        ([[0.0], [1.0], [2.0]], [0, 1], r"inconsistent numbers of samples: \[3, 2\]"),
        ([[0.0], [1.0]], [1, 1], "The number of classes has to be greater than one; got 1 class"),
        ([[0.0], [1.0]], [0.5, 1.5], "Unknown label type: continuous"),
        ([[0.0], [1.0]], [0.0, np.nan], "Input y contains NaN"),
        ([[0.0], [1.0]], [[0], [1]], r"y should be a 1-D array.*y.ravel\(\)"),
        ([[0.0], [1.0]], np.array([1, "a"], dtype=object), "cannot be sorted"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(data, y, message):
    with pytest.raises(AttnlabError, match=message):
        Perceptron().fit(data, y)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"eta0": -1}, r"The 'eta0' parameter of Perceptron must be a float in the range \(0.0, inf\). "
                       r"Got -1 instead."),
        ({"max_iter": 0}, r"The 'max_iter' parameter of Perceptron must be an int in the range \[1, inf\)"),
        ({"max_iter": 2.5}, "The 'max_iter' parameter"),
        ({"shuffle": "yes"}, r"The 'shuffle' parameter of Perceptron must be an instance of 'bool'"),
        ({"random_state": "seed"}, "The 'random_state' parameter"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params, message):
    model = Perceptron(**params)  # storing never fails ...
    with pytest.raises(AttnlabError, match=message):
        model.fit(XOR_X, XOR_Y)  # ... fit checks


def test_bad_input_at_predict_is_refused_too():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Perceptron(max_iter=5).fit(XOR_X, XOR_Y)
    for method in (model.predict, model.decision_function):
        with pytest.raises(AttnlabError, match="Input X contains NaN"):
            method([[0.0, np.nan]])
        with pytest.raises(AttnlabError, match="X contains strings"):
            method([["0", "1"]])
    with pytest.raises(AttnlabError, match=r"inconsistent numbers of samples: \[4, 3\]"):
        model.score(XOR_X, XOR_Y[:3])
    # AttnlabError is a ValueError, as scikit-learn raises for bad input.
    with pytest.raises(ValueError, match="Input X contains infinity"):
        Perceptron().fit([[0.0, np.inf], [1.0, 1.0]], [0, 1])


def test_predict_before_fit_and_wrong_feature_count():
    model = Perceptron()
    with pytest.raises(NotFittedError, match="This Perceptron instance is not fitted yet. Call 'fit'"):
        model.predict(XOR_X)
    assert issubclass(NotFittedError, AttnlabError) and issubclass(NotFittedError, AttributeError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(XOR_X, XOR_Y)
    with pytest.raises(AttnlabError, match="X has 3 features, but Perceptron is expecting 2 features"):
        model.predict(np.zeros((2, 3)))
