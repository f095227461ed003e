"""The losses of the vertical linear models: what each party adds up is the whole loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.linear.family import LOGISTIC_TAYLOR, SQUARED_ERROR, QuadraticLoss


@pytest.mark.parametrize("loss", [LOGISTIC_TAYLOR, SQUARED_ERROR], ids=lambda f: f.name)
def test_the_shares_add_up_to_each_rows_loss_and_gradient(loss: QuadraticLoss):
    rng = np.random.default_rng(3)
    for _ in range(200):
        g, h, label = rng.normal(), rng.normal(), float(rng.integers(0, 2)) if loss.classifier else rng.normal()
        t = loss.target(label)
        fore = h + g + loss.k * t  # what the guest sends the hosts, encrypted
        total = loss.guest_part(g, t) + loss.coef(g, t) * fore + loss.c2 * h * h
        assert total == pytest.approx(loss.loss(g + h, t), abs=1e-12)
        eps = 1e-6  # d loss / d s = scale · fore
        numeric = (loss.loss(g + h + eps, t) - loss.loss(g + h - eps, t)) / (2 * eps)
        assert loss.scale * fore == pytest.approx(numeric, abs=1e-6)


def test_the_logistic_loss_is_its_second_order_expansion_and_squared_error_exact():
    for s in np.linspace(-0.5, 0.5, 11):
        for y in (0.0, 1.0):
            exact = math.log1p(math.exp(-(2 * y - 1) * s))
            assert abs(LOGISTIC_TAYLOR.loss(s, LOGISTIC_TAYLOR.target(y)) - exact) < abs(s) ** 4 / 100 + 1e-12
    assert SQUARED_ERROR.loss(1.5, SQUARED_ERROR.target(-0.5)) == pytest.approx(0.5 * 2.0 ** 2)


def test_outputs():
    assert LOGISTIC_TAYLOR.output(0.0, 0.5) == (1.0, 0.5)
    assert LOGISTIC_TAYLOR.output(-2.0, 0.5)[0] == 0.0
    assert SQUARED_ERROR.output(-1.25, 0.5) == (-1.25, -1.25)
