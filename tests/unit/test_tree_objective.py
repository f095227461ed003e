"""The boosting objectives of components/tree/objective.py against closed forms written out
here, against finite differences of each objective's own loss, and (for the losses and
starting scores) against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import log_loss, mean_squared_error

from components.tree.objective import OBJECTIVES, BinaryCrossEntropy, LeastSquares, SoftmaxCrossEntropy, make_objective
from flow.core.errors import ComponentError

EPS = 1e-4


def plain_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def plain_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sample_derivatives(obj, y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and (diagonal) second derivative of one sample's share of ``obj.loss`` with respect
    to each of its scores, by central differences: the loss is a mean, so sample i's term is
    ``n * loss`` moved by F[i, k] alone."""
    n, k = scores.shape
    d1, d2 = np.zeros((n, k)), np.zeros((n, k))
    base = obj.loss(y, scores)
    for i in range(n):
        for j in range(k):
            up, down = scores.copy(), scores.copy()
            up[i, j] += EPS
            down[i, j] -= EPS
            lu, ld = obj.loss(y, up), obj.loss(y, down)
            d1[i, j] = n * (lu - ld) / (2 * EPS)
            d2[i, j] = n * (lu - 2 * base + ld) / EPS ** 2
    return d1, d2


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(11)


# ---------------------------------------------------------------- binary logistic


def test_binary_gradients_hessians_and_outputs_are_the_logistic_formulas(rng):
    obj = make_objective("binary", 2, "t")
    assert isinstance(obj, BinaryCrossEntropy) and obj.classifier and obj.tree_dim == 1
    y = rng.integers(0, 2, 40).astype(float)
    scores = rng.normal(scale=2.0, size=(40, 1))
    g, h = obj.gradients(y, scores)
    assert g.shape == h.shape == (40, 1)
    p = plain_sigmoid(scores[:, 0])
    np.testing.assert_allclose(g[:, 0], p - y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h[:, 0], p * (1 - p), rtol=1e-12, atol=1e-14)
    assert (h > 0).all()
    prob = obj.predict(scores)
    np.testing.assert_allclose(prob, np.stack([1 - p, p], axis=1), rtol=1e-12, atol=1e-14)
    want = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert obj.loss(y, scores) == pytest.approx(want, rel=1e-12)
    assert obj.loss(y, scores) == pytest.approx(log_loss(y, prob, labels=[0, 1]), rel=1e-9)


def test_binary_gradients_are_the_derivatives_of_its_loss(rng):
    obj = BinaryCrossEntropy(2)
    y = rng.integers(0, 2, 25).astype(float)
    scores = rng.normal(scale=1.5, size=(25, 1))
    g, h = obj.gradients(y, scores)
    d1, d2 = sample_derivatives(obj, y, scores)
    np.testing.assert_allclose(g, d1, atol=1e-7)
    np.testing.assert_allclose(h, d2, atol=1e-4)


def test_binary_init_score_is_the_log_odds_and_the_best_constant(rng):
    obj = BinaryCrossEntropy(2)
    y = (rng.uniform(size=300) < 0.3).astype(float)
    rate = y.mean()
    f0 = obj.init_score(y)
    assert f0.shape == (1,)
    assert f0[0] == pytest.approx(np.log(rate / (1 - rate)), rel=1e-12)
    # the prior scikit-learn's gradient boosting starts from gives the same probabilities
    dummy = DummyClassifier(strategy="prior").fit(np.zeros((len(y), 1)), y)
    scores = np.tile(f0, (len(y), 1))
    np.testing.assert_allclose(obj.predict(scores), dummy.predict_proba(np.zeros((len(y), 1))), rtol=1e-12)
    # the best constant: the gradients at it sum to zero, and a step either way costs loss
    g, _ = obj.gradients(y, scores)
    assert abs(g.sum()) < 1e-9
    for step in (-0.05, 0.05):
        assert obj.loss(y, scores + step) > obj.loss(y, scores)


def test_binary_stays_finite_on_one_class_labels_and_huge_scores():
    obj = BinaryCrossEntropy(2)
    ones = np.ones(10)
    f0 = obj.init_score(ones)
    assert np.isfinite(f0).all() and f0[0] > 20  # p clipped just below 1: a large, finite log-odds
    assert np.isfinite(obj.init_score(np.zeros(10))).all() and obj.init_score(np.zeros(10))[0] < -20
    y = np.array([0.0, 1.0, 0.0, 1.0])
    scores = np.array([[800.0], [-800.0], [-800.0], [800.0]])
    g, h = obj.gradients(y, scores)
    np.testing.assert_allclose(g[:, 0], [1, -1, 0, 0], atol=1e-12)
    assert np.isfinite(h).all() and (h >= 0).all()
    assert np.isfinite(obj.loss(y, scores))


# ---------------------------------------------------------------- multiclass softmax


def test_multiclass_gradients_hessians_and_outputs_are_the_softmax_formulas(rng):
    obj = make_objective("multiclass", 4, "t")
    assert isinstance(obj, SoftmaxCrossEntropy) and obj.classifier and obj.tree_dim == 4
    y = rng.integers(0, 4, 50).astype(float)
    scores = rng.normal(scale=2.0, size=(50, 4))
    g, h = obj.gradients(y, scores)
    assert g.shape == h.shape == (50, 4)
    e = np.exp(scores)
    p = e / e.sum(axis=1, keepdims=True)
    onehot = (y[:, None] == np.arange(4)[None, :]).astype(float)
    np.testing.assert_allclose(g, p - onehot, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, p * (1 - p), rtol=1e-12, atol=1e-14)
    assert (h > 0).all()
    np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-12)  # the probabilities sum to one
    np.testing.assert_allclose(obj.predict(scores), p, rtol=1e-12)
    want = -np.mean(np.log(p[np.arange(50), y.astype(int)]))
    assert obj.loss(y, scores) == pytest.approx(want, rel=1e-12)
    assert obj.loss(y, scores) == pytest.approx(log_loss(y, p, labels=[0, 1, 2, 3]), rel=1e-9)


def test_multiclass_gradients_are_the_derivatives_of_its_loss(rng):
    obj = SoftmaxCrossEntropy(3)
    y = rng.integers(0, 3, 15).astype(float)
    scores = rng.normal(size=(15, 3))
    g, h = obj.gradients(y, scores)
    d1, d2 = sample_derivatives(obj, y, scores)
    np.testing.assert_allclose(g, d1, atol=1e-7)
    np.testing.assert_allclose(h, d2, atol=1e-4)  # the diagonal of the Hessian, as each class's tree sees it


def test_multiclass_init_score_is_the_log_prior_and_the_best_constant(rng):
    obj = SoftmaxCrossEntropy(3)
    y = rng.choice(3, size=400, p=[0.5, 0.3, 0.2]).astype(float)
    prior = np.array([(y == k).mean() for k in range(3)])
    f0 = obj.init_score(y)
    assert f0.shape == (3,)
    np.testing.assert_allclose(f0, np.log(prior), rtol=1e-12)
    scores = np.tile(f0, (len(y), 1))
    dummy = DummyClassifier(strategy="prior").fit(np.zeros((len(y), 1)), y)
    np.testing.assert_allclose(obj.predict(scores), dummy.predict_proba(np.zeros((len(y), 1))), rtol=1e-12)
    g, _ = obj.gradients(y, scores)
    np.testing.assert_allclose(g.sum(axis=0), 0, atol=1e-9)
    for k in range(3):
        for step in (-0.05, 0.05):
            moved = scores.copy()
            moved[:, k] += step
            assert obj.loss(y, moved) > obj.loss(y, scores)


def test_multiclass_is_shift_invariant_and_finite_on_huge_scores_and_absent_classes(rng):
    obj = SoftmaxCrossEntropy(3)
    y = np.array([0.0, 1.0, 2.0, 1.0])
    scores = rng.normal(size=(4, 3))
    for shift in (1000.0, -1000.0):
        np.testing.assert_allclose(obj.predict(scores + shift), obj.predict(scores), rtol=1e-9)
        g0, h0 = obj.gradients(y, scores)
        g1, h1 = obj.gradients(y, scores + shift)
        np.testing.assert_allclose(g1, g0, atol=1e-9)
        np.testing.assert_allclose(h1, h0, atol=1e-9)
    f0 = obj.init_score(np.array([0.0, 0.0, 1.0]))  # class 2 absent: a very negative, finite start
    assert np.isfinite(f0).all() and f0[2] < -20
    np.testing.assert_allclose(plain_softmax(f0[None, :])[0, :2], [2 / 3, 1 / 3], atol=1e-9)


# ---------------------------------------------------------------- regression (least squares)


def test_least_squares_gradients_hessians_and_outputs(rng):
    obj = make_objective("regression", 1, "t")
    assert isinstance(obj, LeastSquares) and not obj.classifier and obj.tree_dim == 1
    y = rng.normal(loc=5.0, scale=3.0, size=30)
    scores = rng.normal(size=(30, 1))
    g, h = obj.gradients(y, scores)
    assert g.shape == h.shape == (30, 1)
    np.testing.assert_allclose(g[:, 0], scores[:, 0] - y, rtol=1e-12)
    np.testing.assert_array_equal(h, np.ones((30, 1)))
    np.testing.assert_array_equal(obj.predict(scores), scores[:, 0])
    assert obj.predict(scores).shape == (30,)
    assert obj.loss(y, scores) == pytest.approx(np.mean((scores[:, 0] - y) ** 2), rel=1e-12)
    assert obj.loss(y, scores) == pytest.approx(mean_squared_error(y, scores[:, 0]), rel=1e-12)


def test_least_squares_gradients_are_those_of_half_the_reported_squared_error(rng):
    """g, h are the derivatives of ½(F - y)² (XGBoost's convention); the reported loss is the
    mean squared error, twice that: the Newton step -g/h is the loss's own either way."""
    obj = LeastSquares(1)
    y = rng.normal(size=12)
    scores = rng.normal(size=(12, 1))
    g, h = obj.gradients(y, scores)
    d1, d2 = sample_derivatives(obj, y, scores)
    np.testing.assert_allclose(g, d1 / 2, atol=1e-7)
    np.testing.assert_allclose(h, d2 / 2, atol=1e-4)
    np.testing.assert_allclose(-g / h, -d1 / d2, atol=1e-4)


def test_least_squares_init_score_is_the_mean_and_the_best_constant(rng):
    obj = LeastSquares(1)
    y = rng.normal(loc=-7.0, scale=2.0, size=200)
    f0 = obj.init_score(y)
    assert f0.shape == (1,) and f0[0] == pytest.approx(y.sum() / len(y), rel=1e-12)
    scores = np.tile(f0, (len(y), 1))
    assert abs(obj.gradients(y, scores)[0].sum()) < 1e-9
    for step in (-0.05, 0.05):
        assert obj.loss(y, scores + step) > obj.loss(y, scores)


def test_newton_step_from_the_start_improves_every_objective(rng):
    """One Newton step per sample (-g/h, damped) from any scores lowers the loss: the signs of
    g and h agree with the loss being minimised."""
    y2 = rng.integers(0, 2, 60).astype(float)
    y3 = rng.integers(0, 3, 60).astype(float)
    yr = rng.normal(size=60)
    for obj, y in ((BinaryCrossEntropy(2), y2), (SoftmaxCrossEntropy(3), y3), (LeastSquares(1), yr)):
        scores = rng.normal(size=(60, obj.tree_dim))
        g, h = obj.gradients(y, scores)
        assert obj.loss(y, scores - 0.3 * g / h) < obj.loss(y, scores), obj.name


# ---------------------------------------------------------------- the registry


def test_objectives_by_name_and_refused_tasks():
    assert OBJECTIVES == {"binary": BinaryCrossEntropy, "multiclass": SoftmaxCrossEntropy,
                          "regression": LeastSquares}
    assert make_objective("multiclass", 5, "t").n_classes == 5
    assert make_objective("binary", 2, "t").n_classes == 2
    with pytest.raises(ComponentError, match="sbt_0: task_type binary, but the labels have 3 classes"):
        make_objective("binary", 3, "sbt_0")
    for task in ("binary", "multiclass"):
        with pytest.raises(ComponentError, match="sbt_0: classification needs at least two classes"):
            make_objective(task, 1, "sbt_0")
    assert isinstance(make_objective("regression", 1, "t"), LeastSquares)
