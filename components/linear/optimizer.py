"""Weight initialisation, optimizers and penalties shared by the linear models.

Learning rate decays as FATE's does: ``lr / sqrt(1 + decay * t)`` (``decay_sqrt``) or
``lr / (1 + decay * t)``, where ``t`` is the iteration. The L2 penalty adds
``alpha * w`` to the gradient; the intercept is never penalised.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict


class InitParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
        return 0.0

    def step(self, w: np.ndarray, grad: np.ndarray, t: int) -> np.ndarray:
        """New weights from the (unpenalised) mean gradient at iteration ``t``."""
        g = self.regularize(w, grad)
        lr = self.lr_at(t)
        self.steps += 1
        if self.kind == "rmsprop":
            self.v = 0.99 * self.v + 0.01 * g * g
            return w - lr * g / (np.sqrt(self.v) + 1e-6)
        if self.kind == "adam":
            b1, b2 = 0.9, 0.999
            self.m = b1 * self.m + (1 - b1) * g
            self.v = b2 * self.v + (1 - b2) * g * g
            m_hat = self.m / (1 - b1 ** self.steps)
            v_hat = self.v / (1 - b2 ** self.steps)
            return w - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        return w - lr * g
