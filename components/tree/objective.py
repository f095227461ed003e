"""Boosting objectives: first and second derivatives of the loss, initial scores, link.

Scores ``F`` are kept as an (n, k) array: k = 1 for binary and regression, the number
of classes for multiclass (one tree per class per round, softmax link).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from components.activation import sigmoid
from flow.core.errors import ComponentError


class Objective(ABC):
    """A loss: what the guest needs to grow the next tree and to turn scores into outputs."""

    name: ClassVar[str]
    #: whether outputs are classes (predict_result a label) or numbers
    classifier: ClassVar[bool] = True

    def __init__(self, n_classes: int = 1):
        self.n_classes = n_classes

    @property
    def tree_dim(self) -> int:
        """Trees per boosting round."""
        return 1

    @abstractmethod
    def init_score(self, y: np.ndarray) -> np.ndarray:
        """The constant start (length ``tree_dim``), as scikit-learn's prior estimators."""

    @abstractmethod
    def gradients(self, y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(g, h), each of shape (n, tree_dim); h is never negative."""

    @abstractmethod
    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Scores (n, tree_dim) -> probabilities (n, classes) or values (n,)."""

    def loss(self, y: np.ndarray, scores: np.ndarray) -> float:
        """Mean training loss (log loss for classifiers, squared error for regression)."""
        if not self.classifier:
            return float(np.mean((self.predict(scores) - y) ** 2))
        p = self.predict(scores)[np.arange(len(y)), y.astype(int)]
        return float(-np.mean(np.log(np.clip(p, 1e-15, None))))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class BinaryCrossEntropy(Objective):
    """Logistic loss on y in {0, 1}: g = p - y, h = p (1 - p)."""

    name = "binary"

    def init_score(self, y: np.ndarray) -> np.ndarray:
        p = np.clip(y.mean(), 1e-12, 1 - 1e-12)
        return np.array([np.log(p / (1 - p))])

    def gradients(self, y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = sigmoid(scores[:, 0])
        return (p - y)[:, None], (p * (1 - p))[:, None]

    def predict(self, scores: np.ndarray) -> np.ndarray:
        p = sigmoid(scores[:, 0])
        return np.stack([1 - p, p], axis=1)


class SoftmaxCrossEntropy(Objective):
    """Multinomial logistic loss on class indices: g_k = p_k - [y = k], h_k = p_k (1 - p_k)."""

    name = "multiclass"

    @property
    def tree_dim(self) -> int:
        return self.n_classes

    def init_score(self, y: np.ndarray) -> np.ndarray:
        prior = np.bincount(y.astype(int), minlength=self.n_classes) / len(y)
        return np.log(np.clip(prior, 1e-12, None))

    def gradients(self, y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = _softmax(scores)
        onehot = np.eye(self.n_classes)[y.astype(int)]
        return p - onehot, p * (1 - p)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return _softmax(scores)


class LeastSquares(Objective):
    """Squared error (FATE's ``lse``): g = F - y, h = 1."""

    name = "regression"
    classifier = False

    def init_score(self, y: np.ndarray) -> np.ndarray:
        return np.array([float(y.mean())])

    def gradients(self, y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (scores[:, 0] - y)[:, None], np.ones((len(y), 1))

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return scores[:, 0].copy()


OBJECTIVES: dict[str, type[Objective]] = {o.name: o for o in (BinaryCrossEntropy, SoftmaxCrossEntropy, LeastSquares)}


def make_objective(task: str, n_classes: int, component: str) -> Objective:
    """The objective of a resolved task (binary, multiclass, regression) on these labels."""
    if task == "binary" and n_classes > 2:
        raise ComponentError(f"{component}: task_type binary, but the labels have {n_classes} classes; "
                             "use task_type classification or multiclass")
    if task in ("binary", "multiclass") and n_classes < 2:
        raise ComponentError(f"{component}: classification needs at least two classes among the labels")
    return OBJECTIVES[task](n_classes)
