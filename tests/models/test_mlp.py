"""The multi-layer perceptron (Rumelhart et al. 1986): XOR, a hand-written back-propagation
oracle, scikit-learn parity, and the Transformer's position-wise FFN as this MLP on every row."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn import neural_network
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.preprocessing import StandardScaler

from attnlab.errors import AttnlabError
from attnlab.models.mlp import MLPClassifier
from attnlab.models.perceptron import ConvergenceWarning, NotFittedError, Perceptron
from attnlab.nn.feedforward import PositionwiseFeedForward

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([0, 1, 1, 0])


def xor_mlp(seed: int, activation: str = "tanh") -> MLPClassifier:
    return MLPClassifier(hidden_layer_sizes=(16,), activation=activation, learning_rate_init=0.05,
                         max_iter=2000, random_state=seed)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# ---- XOR: where one neuron fails and one hidden layer succeeds


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_solves_xor_where_the_perceptron_cannot(seed, activation):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        perceptron = Perceptron(random_state=seed, max_iter=100).fit(XOR_X, XOR_Y)
    mlp = xor_mlp(seed, activation).fit(XOR_X, XOR_Y)
    assert perceptron.score(XOR_X, XOR_Y) <= 0.75
    assert mlp.score(XOR_X, XOR_Y) == 1.0
    np.testing.assert_array_equal(mlp.predict(XOR_X), XOR_Y)
    assert mlp.predict_proba(XOR_X)[np.arange(4), XOR_Y].min() > 0.9


# ---- the forward pass and one back-propagation step against NumPy


def numpy_forward(model, X):  # noqa: N803
    """Hidden layers with the activation, then softmax: (N, F) -> list of activations, probabilities."""
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
           "logistic": lambda z: 1 / (1 + np.exp(-z))}[model.activation]
    hs = [X]
    for layer, (W, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        z = hs[-1] @ W + b
        hs.append(act(z) if layer < len(model.coefs_) - 1 else z)
    z = hs[-1]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return hs, e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_predict_proba_equals_a_numpy_forward_pass(iris, activation):
    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=(7, 5), activation=activation, max_iter=20,
                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba, numpy_forward(model, X)[1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(model.predict(X), model.classes_[proba.argmax(axis=1)])


def test_one_sgd_step_equals_hand_written_backpropagation(iris):
    """The generalised delta rule of Rumelhart et al. (1986), written out for tanh and softmax."""
    X, y = iris
    alpha, lr = 0.3, 0.1
    model = MLPClassifier(hidden_layer_sizes=(6,), activation="tanh", solver="sgd", momentum=0.0,
                          alpha=alpha, learning_rate_init=lr, batch_size=len(X), shuffle=False,
                          random_state=0)
    model.partial_fit(X, y, classes=[0, 1, 2])  # initialises, then one full-batch step
    (W1, W2), (b1, b2) = [a.copy() for a in model.coefs_], [b.copy() for b in model.intercepts_]
    hs, p = numpy_forward(model, X)
    n = len(X)
    delta2 = (p - np.eye(3)[y]) / n  # d loss / d logits, (N, K)
    grad_W2 = hs[1].T @ delta2 + alpha / n * W2  # L2: alpha / (2 n) ||W||^2
    delta1 = (delta2 @ W2.T) * (1 - hs[1] ** 2)  # back through tanh
    grad_W1 = X.T @ delta1 + alpha / n * W1
    expected_loss = -np.log(p[np.arange(n), y]).mean() + alpha / (2 * n) * ((W1**2).sum() + (W2**2).sum())
    model.partial_fit(X, y)
    np.testing.assert_allclose(model.coefs_[0], W1 - lr * grad_W1, rtol=0, atol=1e-14)
    np.testing.assert_allclose(model.coefs_[1], W2 - lr * grad_W2, rtol=0, atol=1e-14)
    np.testing.assert_allclose(model.intercepts_[0], b1 - lr * delta1.sum(axis=0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(model.intercepts_[1], b2 - lr * delta2.sum(axis=0), rtol=0, atol=1e-14)
    assert model.loss_curve_[-1] == pytest.approx(expected_loss, rel=1e-12)


@pytest.mark.parametrize("activation, gain", [("relu", 6), ("logistic", 2)])
def test_adam_steps_equal_the_papers_algorithm(iris, activation, gain):
    """Kingma & Ba (2015), Algorithm 1, by hand, on a softmax regression (no hidden layer)."""
    X, y = iris
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    model = MLPClassifier(hidden_layer_sizes=(), activation=activation, alpha=0.0, learning_rate_init=lr,
                          batch_size=len(X), shuffle=False, random_state=0)
    # The documented start: Glorot-uniform U(-s, s), s = sqrt(gain / (fan_in + fan_out)), W then b.
    rng = np.random.default_rng(0)
    s = np.sqrt(gain / (4 + 3))
    params = [rng.uniform(-s, s, size=(4, 3)), rng.uniform(-s, s, size=3)]
    moments = [[np.zeros_like(p) for p in params] for _ in range(2)]
    for t in (1, 2, 3):
        model.partial_fit(X, y, classes=[0, 1, 2])
        z = X @ params[0] + params[1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        delta = (e / e.sum(axis=1, keepdims=True) - np.eye(3)[y]) / len(X)
        for i, g in enumerate((X.T @ delta, delta.sum(axis=0))):
            moments[0][i] = b1 * moments[0][i] + (1 - b1) * g
            moments[1][i] = b2 * moments[1][i] + (1 - b2) * g * g
            m_hat, v_hat = moments[0][i] / (1 - b1**t), moments[1][i] / (1 - b2**t)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(model.coefs_[0], params[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(model.intercepts_[0], params[1], rtol=0, atol=1e-13)


# ---- the Transformer's position-wise FFN is this MLP on every row


def test_positionwise_ffn_is_the_mlp_applied_to_each_position():
    rng = np.random.default_rng(0)
    d_model, d_ff = 5, 11
    X = rng.normal(size=(60, d_model))
    y = rng.integers(0, d_model, size=60)  # d_model classes, so the MLP maps M -> d_ff -> M
    mlp = MLPClassifier(hidden_layer_sizes=(d_ff,), activation="relu", max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X, y)
    ffn = PositionwiseFeedForward(d_model, d_ff, activation="relu").double()
    with torch.no_grad():  # nn.Linear stores W as (out, in): the transpose of coefs_
        ffn.fc_in.weight.copy_(torch.from_numpy(mlp.coefs_[0].T))
        ffn.fc_in.bias.copy_(torch.from_numpy(mlp.intercepts_[0]))
        ffn.fc_out.weight.copy_(torch.from_numpy(mlp.coefs_[1].T))
        ffn.fc_out.bias.copy_(torch.from_numpy(mlp.intercepts_[1]))
    x = torch.from_numpy(rng.normal(size=(3, 7, d_model)))  # (B, T, M)
    with torch.no_grad():
        out = ffn(x).numpy()  # (B, T, M)
    rows = x.reshape(-1, d_model).numpy()  # (B * T, M): every position a sample
    np.testing.assert_allclose(out.reshape(-1, d_model), mlp.decision_function(rows), rtol=0, atol=1e-13)
    per_position = np.stack([mlp.decision_function(x[b].numpy()) for b in range(3)])
    np.testing.assert_allclose(out, per_position, rtol=0, atol=1e-13)
    probabilities = torch.softmax(torch.from_numpy(out), dim=-1).numpy().reshape(-1, d_model)
    np.testing.assert_allclose(probabilities, mlp.predict_proba(rows), rtol=0, atol=1e-13)


# ---- parity with scikit-learn


def test_digits_held_out_accuracy_matches_sklearn():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    ours = MLPClassifier(hidden_layer_sizes=(64,), max_iter=60, random_state=0)
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=(64,), max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_score = ours.fit(X_train, y_train).score(X_test, y_test)
        theirs_score = theirs.fit(X_train, y_train).score(X_test, y_test)
    assert ours_score >= 0.95 and abs(ours_score - theirs_score) <= 0.03, (ours_score, theirs_score)


def test_clone_and_cross_val_score_work(iris):
    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.02, max_iter=100, random_state=0)
    assert is_classifier(model) and clone(model).get_params() == model.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85


# ---- training behaviour


def test_same_random_state_same_weights_bit_for_bit(iris):
    X, y = iris
    make = lambda seed: MLPClassifier(hidden_layer_sizes=(10,), max_iter=15, random_state=seed)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a, b, c = make(3).fit(X, y), make(3).fit(X, y), make(4).fit(X, y)
    for wa, wb, wc in zip(a.coefs_, b.coefs_, c.coefs_, strict=True):
        assert wa.dtype == np.float64
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)
    assert a.loss_curve_ == b.loss_curve_


def test_loss_curve_and_convergence_warning(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="max_iter=30"):
        model = MLPClassifier(hidden_layer_sizes=(10,), max_iter=30, random_state=0).fit(X, y)
    assert not model.converged_ and model.n_iter_ == 30 and len(model.loss_curve_) == 30
    assert model.loss_curve_[-1] < model.loss_curve_[0] and model.loss_ == model.loss_curve_[-1]


def test_sgd_with_minibatches_learns(iris):
    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.1, batch_size=16,
                          max_iter=300, random_state=0).fit(X, y)
    assert model.converged_ and model.n_iter_ < 300 and model.score(X, y) > 0.95


def test_early_stopping_keeps_the_best_validation_weights(iris):
    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=(10,), early_stopping=True, validation_fraction=0.2,
                          n_iter_no_change=5, learning_rate_init=0.01, max_iter=500, random_state=0)
    model.fit(X, y)
    assert model.converged_ and model.n_iter_ < 500
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    # The held-out part is the first 20% of default_rng(0).permutation: the restored weights
    # score there exactly the best validation score.
    held_out = np.random.default_rng(0).permutation(len(X))[:30]
    assert model.score(X[held_out], y[held_out]) == model.best_validation_score_
    # Training stopped only at the best epoch gives the same weights, bit for bit.
    best_epoch = int(np.argmax(model.validation_scores_)) + 1
    assert best_epoch < model.n_iter_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        stopped = clone(model).set_params(max_iter=best_epoch).fit(X, y)
    for ours, reference in zip(model.coefs_, stopped.coefs_, strict=True):
        np.testing.assert_array_equal(ours, reference)


def test_string_labels_and_classes_order():
    labels = np.array(["no", "yes", "yes", "no"])
    model = xor_mlp(0).fit(XOR_X, labels)
    assert model.classes_.tolist() == ["no", "yes"]
    np.testing.assert_array_equal(model.predict(XOR_X), labels)
    assert model.predict_proba(XOR_X).shape == (4, 2)


def test_partial_fit_continues_training(iris):
    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=(10,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(AttnlabError, match="classes must be passed on the first call"):
        model.partial_fit(X, y)
    for _ in range(30):
        model.partial_fit(X, y, classes=[0, 1, 2])
    assert model.n_iter_ == 30 and model.loss_curve_[-1] < model.loss_curve_[0]


def test_a_pickled_model_trains_on_like_the_original(iris):
    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    copy = pickle.loads(pickle.dumps(model))
    model.partial_fit(X, y)
    copy.partial_fit(X, y)
    for ours, theirs in zip((*model.coefs_, *model.intercepts_), (*copy.coefs_, *copy.intercepts_),
                            strict=True):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(model.predict_proba(X), copy.predict_proba(X))


# ---- bad input


@pytest.mark.parametrize(
    "params, message",
    [
        ({"alpha": -1}, r"The 'alpha' parameter of MLPClassifier must be a float in the range \[0.0, inf\). "
                        r"Got -1 instead."),
        ({"activation": "gelu"}, r"The 'activation' parameter of MLPClassifier must be a str among "
                                 r"\{'logistic', 'relu', 'tanh'\}. Got 'gelu' instead."),
        ({"solver": "lbfgs"}, "The 'solver' parameter"),
        ({"hidden_layer_sizes": (10, 0)}, "The 'hidden_layer_sizes' parameter"),
        ({"batch_size": 0}, r"The 'batch_size' parameter .* or the str 'auto'"),
        ({"learning_rate_init": 0.0}, "The 'learning_rate_init' parameter"),
        ({"validation_fraction": 1.0}, "The 'validation_fraction' parameter"),
        ({"beta_2": 1.0}, "The 'beta_2' parameter"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params, message):
    with pytest.raises(AttnlabError, match=message):
        MLPClassifier(**params).fit(XOR_X, XOR_Y)


@pytest.mark.parametrize(
    "data, y, message",
    [
        ([[0.0, np.nan], [1.0, 1.0]], [0, 1], "Input X contains NaN"),
        ([[0.0, np.inf], [1.0, 1.0]], [0, 1], "Input X contains infinity"),
        ([["a", "b"], ["c", "d"]], [0, 1], "X contains strings"),
        ([[0.0], [1.0], [2.0]], [0, 1], r"inconsistent numbers of samples: \[3, 2\]"),
        ([[0.0], [1.0]], ["x", "x"], "The number of classes has to be greater than one; got 1 class"),
        ([[0.0], [1.0]], [0.5, 1.5], "Unknown label type: continuous"),
        ([1.0, 2.0], [0, 1], "Expected a 2-D array for X"),
    ],
)
def test_bad_training_input_is_a_value_error(data, y, message):
    with pytest.raises(ValueError, match=message):  # AttnlabError, a ValueError
        MLPClassifier().fit(data, y)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_every_prediction_method_checks_fitted_and_features(method):
    with pytest.raises(NotFittedError, match=r"This MLPClassifier instance is not fitted yet. Call 'fit'"):
        getattr(MLPClassifier(), method)(XOR_X)
    model = xor_mlp(0).set_params(max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(XOR_X, XOR_Y)
    with pytest.raises(AttnlabError, match="X has 1 features, but MLPClassifier is expecting 2"):
        getattr(model, method)(np.zeros((4, 1)))
    with pytest.raises(AttnlabError, match="Input X contains NaN"):
        getattr(model, method)([[np.nan, 0.0]])


def test_bad_input_and_predict_before_fit():
    with pytest.raises(NotFittedError, match="This MLPClassifier instance is not fitted yet"):
        MLPClassifier().predict_proba(XOR_X)
    with pytest.raises(AttnlabError, match="Input X contains NaN"):
        MLPClassifier().fit([[np.nan, 0.0], [1.0, 1.0]], [0, 1])
    with pytest.raises(AttnlabError, match="got 1 class"):
        MLPClassifier().fit(XOR_X, [1, 1, 1, 1])
    model = xor_mlp(0).fit(XOR_X, XOR_Y)
    with pytest.raises(AttnlabError, match="X has 3 features, but MLPClassifier is expecting 2"):
        model.predict(np.zeros((1, 3)))
    with pytest.raises(AttnlabError, match="leaves 0 validation"):
        MLPClassifier(early_stopping=True, validation_fraction=0.1).fit(XOR_X, XOR_Y)
