"""HeteroSecureBoost in regression mode against scikit-learn's histogram gradient boosting,
configured alike, on the diabetes data (442 rows, 10 features; bundled with scikit-learn).

Guest and host run through the in-process protocol harness of test_secureboost_protocol
(real Paillier, real wire codec). The reference is independent of components.tree: a
wrong gradient sign, hessian or start score moves our errors by 9 % to 700 % (checked by
breaking components/tree/objective.py by hand), far outside the tolerances below, while the
remaining differences (quantile thresholds vs scikit-learn's bin midpoints, our minimum
gain of 1e-3) stay within about 1 %.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor

from tests.unit.test_secureboost_protocol import predictions, run_parties

TREES, DEPTH, RATE, BINS, L2 = 10, 3, 0.1, 32, 0.1
TRAIN = 300


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2))


@pytest.fixture(scope="module")
def diabetes():
    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    # the target's mean (~150) is far from 0 and the boosting is short (0.9^10 of the start is
    # left), so a wrong start score shows; the guest holds 5 columns, the host the other 5
    return (x[:TRAIN], y[:TRAIN]), (x[TRAIN:], y[TRAIN:])


@pytest.fixture(scope="module")
def ours(diabetes):
    (xt, yt), (xv, yv) = diabetes
    p = {"task_type": "regression", "objective_param": {"objective": "lse"}, "num_trees": TREES,
         "learning_rate": RATE, "bin_num": BINS, "n_iter_no_change": False,
         "encrypt_param": {"key_length": 512, "allow_short_key": True},
         "tree_param": {"max_depth": DEPTH, "criterion_param": [L2]}}
    out, _ = run_parties(xt[:, :5], xt[:, 5:], yt, p)
    got = predictions(out["guest"])
    fit = np.array([got[f"id{i:04d}"][0] for i in range(len(yt))])
    again, _ = run_parties(xv[:, :5], xv[:, 5:], yv, p, model=(out["guest"].model, out["host"].model))
    got = predictions(again["guest"])
    holdout = np.array([got[f"id{i:04d}"][0] for i in range(len(yv))])
    return fit, holdout


@pytest.fixture(scope="module")
def sklearn_model(diabetes):
    """Squared error, the same trees, depth (edges root to leaf), learning rate, L2 on leaf
    weights and number of bins; no leaf-size floor, no leaf-count cap, no early stop."""
    (xt, yt), _ = diabetes
    return HistGradientBoostingRegressor(loss="squared_error", max_iter=TREES, max_depth=DEPTH, learning_rate=RATE,
                                         max_bins=BINS, l2_regularization=L2, min_samples_leaf=1,
                                         max_leaf_nodes=None, early_stopping=False).fit(xt, yt)


def test_regression_errors_match_scikit_learns_gradient_boosting(diabetes, ours, sklearn_model):
    (xt, yt), (xv, yv) = diabetes
    fit, holdout = ours
    ref_fit, ref_holdout = sklearn_model.predict(xt), sklearn_model.predict(xv)
    # a broken hessian (x2 or x0.5) moves the training error by 25-35 %, a zero start by 95 %
    assert mse(fit, yt) == pytest.approx(mse(ref_fit, yt), rel=0.05)
    assert mse(holdout, yv) == pytest.approx(mse(ref_holdout, yv), rel=0.05)
    # the model learnt something: well below the variance the start score (the mean) leaves
    assert mse(fit, yt) < 0.6 * yt.var()


def test_regression_predictions_follow_scikit_learns_row_by_row(diabetes, ours, sklearn_model):
    """Not only the same error: nearly the same prediction for each row (a broken objective
    puts the two at least 0.18 standard deviations of y apart on average)."""
    (xt, yt), (xv, yv) = diabetes
    fit, holdout = ours
    assert np.sqrt(mse(fit, sklearn_model.predict(xt))) < 0.1 * yt.std()
    assert np.sqrt(mse(holdout, sklearn_model.predict(xv))) < 0.1 * yv.std()
    assert abs(fit.mean() - sklearn_model.predict(xt).mean()) < 0.02 * yt.std()
