"""The linear models' optimizers and penalties against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from components.linear.optimizer import UPDATES, Optimizer
from components.linear.params import LinearParams


def make(kind: str = "sgd", penalty: str = "none", alpha: float = 0.0, lr: float = 0.1, decay: float = 0.0,
         size: int = 4) -> Optimizer:
    penalized = np.r_[np.ones(size - 1), 0.0]  # the last weight is the intercept
    return Optimizer(kind, lr, alpha, penalty, decay, True, penalized)


def test_l1_steps_reach_the_lasso_solution_and_leave_the_intercept_alone():
    # f(w) = 0.5 * |w - c|^2 with an L1 penalty: the minimiser is the soft-thresholded c
    c, alpha = np.array([3.0, -0.2, 0.5, -2.0]), 0.7
    opt, w = make(penalty="L1", alpha=alpha, lr=0.2), np.zeros(4)
    for t in range(300):
        w = opt.step(w, w - c, t)
    want = np.r_[np.sign(c[:3]) * np.maximum(np.abs(c[:3]) - alpha, 0.0), c[3]]
    np.testing.assert_allclose(w, want, atol=1e-9)
    assert w[1] == 0.0  # exactly zero, not merely small
    assert opt.loss_penalty(w) == pytest.approx(alpha * np.abs(want[:3]).sum())


def test_one_l1_step_is_the_gradient_step_then_shrinkage():
    opt = make(penalty="l1", alpha=0.5, lr=0.1, decay=1.0)
    w, g = np.array([1.0, 0.02, -1.0, 0.3]), np.array([0.5, 0.0, -0.5, 1.0])
    lr = 0.1 / np.sqrt(1 + 1.0 * 3)
    raw = w - lr * g
    want = np.r_[np.sign(raw[:3]) * np.maximum(np.abs(raw[:3]) - lr * 0.5, 0), raw[3]]
    np.testing.assert_allclose(opt.step(w, g, 3), want, atol=1e-15)


@pytest.mark.parametrize("kind", sorted(UPDATES))
def test_every_optimizer_minimises_a_quadratic(kind):
    c = np.array([1.5, -0.5, 2.0, 0.25])
    opt, w = make(kind, lr=0.5, decay=1.0), np.zeros(4)
    for t in range(3000):
        w = opt.step(w, w - c, t)
    np.testing.assert_allclose(w, c, atol=5e-3)


def test_adagrad_and_nesterov_first_steps():
    g = np.array([2.0, -0.5, 0.0, 1.0])
    ada = make("adagrad", lr=0.1)
    np.testing.assert_allclose(ada.step(np.zeros(4), g, 0), -0.1 * g / (np.abs(g) + 1e-7))
    nes, w = make("nesterov_momentum_sgd", lr=0.1), np.zeros(4)
    w1 = nes.step(w, g, 0)  # no momentum yet: (1 + 0.9) * lr * g
    np.testing.assert_allclose(w1, -1.9 * 0.1 * g)
    v1 = -0.1 * g
    w2 = nes.step(w1, g, 0)  # v2 = 0.9 v1 - lr g; w += -0.9 v1 + 1.9 v2
    v2 = 0.9 * v1 - 0.1 * g
    np.testing.assert_allclose(w2, w1 - 0.9 * v1 + 1.9 * v2)


def test_fate_penalty_and_optimizer_names_are_accepted():
    for penalty in ("L1", "l1", "L2", "none"):
        for optimizer in UPDATES:
            assert LinearParams.model_validate({"penalty": penalty, "optimizer": optimizer}).optimizer == optimizer
