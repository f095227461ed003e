"""Weight initialisation, optimizers and penalties shared by the linear models.

Learning rate decays as FATE's does: ``lr / sqrt(1 + decay * t)`` (``decay_sqrt``) or
``lr / (1 + decay * t)``, where ``t`` is the iteration. The L2 penalty adds
``alpha * w`` to the gradient; the L1 penalty shrinks each weight towards zero by
``lr_t * alpha`` after the step (soft thresholding, so weights reach exactly zero); the
intercept is never penalised. The update rules are FATE's optimizer names: sgd, rmsprop,
adam, adagrad and nesterov_momentum_sgd (momentum 0.9).
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict


class InitParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    init_method: Literal["zeros", "ones", "const", "random_uniform", "random_normal"] = "random_uniform"
    init_const: float = 1.0
    fit_intercept: bool = True
    random_seed: int | None = None


def init_weights(p: InitParam, size: int, seed_offset: int = 0) -> np.ndarray:
    rng = np.random.default_rng(None if p.random_seed is None else p.random_seed + seed_offset)
    makers = {
        "zeros": lambda: np.zeros(size),
        "ones": lambda: np.ones(size),
        "const": lambda: np.full(size, p.init_const),
        "random_uniform": lambda: rng.uniform(0, 1, size),
        "random_normal": lambda: rng.normal(0, 1, size),
    }
    return makers[p.init_method]()


class Optimizer:
    """One party's optimizer state over its own weights (``penalized`` masks the intercept out)."""

    def __init__(self, kind: str, learning_rate: float, alpha: float, penalty: str,
                 decay: float, decay_sqrt: bool, penalized: np.ndarray):
        self.kind, self.lr, self.alpha, self.penalty = kind, learning_rate, alpha, penalty.upper()
        self.decay, self.decay_sqrt = decay, decay_sqrt
        self.penalized = penalized.astype(float)
        self.m = np.zeros_like(self.penalized)
        self.v = np.zeros_like(self.penalized)
        self.steps = 0

    def lr_at(self, t: int) -> float:
        denom = 1 + self.decay * t
        return self.lr / (np.sqrt(denom) if self.decay_sqrt else denom)

    def regularize(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.penalty == "L2":
            return grad + self.alpha * w * self.penalized
        return grad

    def loss_penalty(self, w: np.ndarray) -> float:
        if self.penalty == "L2":
            return 0.5 * self.alpha * float(np.sum((w * self.penalized) ** 2))
        if self.penalty == "L1":
            return self.alpha * float(np.sum(np.abs(w * self.penalized)))
        return 0.0

    def step(self, w: np.ndarray, grad: np.ndarray, t: int) -> np.ndarray:
        """New weights from the (unpenalised) mean gradient at iteration ``t``."""
        lr = self.lr_at(t)
        self.steps += 1
        new = w - UPDATES[self.kind](self, self.regularize(w, grad), lr)
        if self.penalty == "L1":
            shrunk = np.sign(new) * np.maximum(np.abs(new) - lr * self.alpha, 0.0)
            new = np.where(self.penalized > 0, shrunk, new)
        return new


def _sgd(opt: Optimizer, g: np.ndarray, lr: float) -> np.ndarray:
    return lr * g


def _rmsprop(opt: Optimizer, g: np.ndarray, lr: float) -> np.ndarray:
    opt.v = 0.99 * opt.v + 0.01 * g * g
    return lr * g / (np.sqrt(opt.v) + 1e-6)


def _adam(opt: Optimizer, g: np.ndarray, lr: float) -> np.ndarray:
    b1, b2 = 0.9, 0.999
    opt.m = b1 * opt.m + (1 - b1) * g
    opt.v = b2 * opt.v + (1 - b2) * g * g
    m_hat, v_hat = opt.m / (1 - b1 ** opt.steps), opt.v / (1 - b2 ** opt.steps)
    return lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def _adagrad(opt: Optimizer, g: np.ndarray, lr: float) -> np.ndarray:
    opt.v = opt.v + g * g
    return lr * g / (np.sqrt(opt.v) + 1e-7)


def _nesterov(opt: Optimizer, g: np.ndarray, lr: float, mu: float = 0.9) -> np.ndarray:
    velocity = mu * opt.m - lr * g
    delta = mu * opt.m - (1 + mu) * velocity
    opt.m = velocity
    return delta


#: optimizer name (FATE's) -> the step to subtract from the weights, given the gradient and rate
UPDATES: dict[str, Callable[[Optimizer, np.ndarray, float], np.ndarray]] = {
    "sgd": _sgd, "rmsprop": _rmsprop, "adam": _adam, "adagrad": _adagrad, "nesterov_momentum_sgd": _nesterov,
}
