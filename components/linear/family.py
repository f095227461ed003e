"""The losses vertical linear models train on, each quadratic in the linear score.

HeteroLR and HeteroLinR run one protocol: the guest adds its part of the score and the
label to the hosts' encrypted parts and sends the result back, every party multiplies
it into its own features, the arbiter unmasks the sums. That only works for a loss that
is a quadratic polynomial of the score s = w·x + b, per row, with target t:

    loss(s, t) = c0 + c0_t2·t² + c1·t·s + c2·s²
    d loss/ds  = c1·t + 2·c2·s = scale·(s + k·t)    with scale = 2·c2, k = c1 / scale

The guest sends [[s + k·t]] (no scalar multiplication on the critical path); each party
scales its decrypted sum by ``scale``. The logistic loss enters as its second-order
Taylor expansion around s = 0 (FATE's HeteroLR), squared error exactly (HeteroLinR).

:class:`PoissonLoss` (HeteroPoisson, log link) is not quadratic in the score: its
gradient needs exp(s) = exp(wx_g)·exp(wx_h), a product, so the hosts send
[[exp(wx_h)]] and the guest scales it by exp(wx_g + offset) (hetero_poisson.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from components.activation import sigmoid


@dataclass(frozen=True)
class QuadraticLoss:
    name: str
    c0: float
    c0_t2: float
    c1: float
    c2: float
    #: whether outputs are classes (a score in [0, 1] and a thresholded label)
    classifier: bool

    @property
    def scale(self) -> float:
        return 2.0 * self.c2

    @property
    def k(self) -> float:
        return self.c1 / self.scale

    def target(self, label: float) -> float:
        """t: y in {-1, +1} for the logistic loss, y itself for squared error."""
        return 2.0 * label - 1.0 if self.classifier else float(label)

    def loss(self, s: np.ndarray | float, t: np.ndarray | float) -> np.ndarray | float:
        return self.c0 + self.c0_t2 * t * t + self.c1 * t * s + self.c2 * s * s

    def coef(self, s_guest: float, t: float) -> float:
        """What multiplies [[s_host]] in the loss: c1·t + 2·c2·s_guest."""
        return self.c1 * t + 2.0 * self.c2 * s_guest

    def guest_part(self, s_guest: float, t: float) -> float:
        """The loss with s = s_guest, less what coef·[[s_host + s_guest + k·t]] adds: with
        that product and c2·[[s_host²]] it makes the whole row's loss."""
        return float(self.loss(s_guest, t)) - self.coef(s_guest, t) * (s_guest + self.k * t)

    def output(self, s: float, threshold: float) -> tuple[float, float]:
        """(predict_result, predict_score) of a row's score."""
        if not self.classifier:
            return s, s
        p = float(sigmoid(s))
        return (1.0 if p >= threshold else 0.0), p


LOGISTIC_TAYLOR = QuadraticLoss("logistic", c0=math.log(2.0), c0_t2=0.0, c1=-0.5, c2=0.125, classifier=True)
SQUARED_ERROR = QuadraticLoss("squared_error", c0=0.0, c0_t2=0.5, c1=-1.0, c2=0.5, classifier=False)


@dataclass(frozen=True)
class PoissonLoss:
    """Poisson regression with the log link: mu = exp(eta), eta = w·x + b + log(exposure).

    Per row the loss is the negative log-likelihood less log(y!) (which no weight changes),
    mu - y·eta, and d loss/d eta = mu - y."""

    name: str = "poisson"
    classifier: bool = False
    #: log of an exposure of 0 (FATE's: log(1e-7)), so such a row still has a finite offset
    zero_exposure: float = math.log(1e-7)

    def offset(self, exposure: float) -> float:
        """log(exposure); exposure must not be negative."""
        return self.zero_exposure if exposure == 0 else math.log(exposure)

    @staticmethod
    def loss(eta: np.ndarray | float, y: np.ndarray | float) -> np.ndarray | float:
        return np.exp(eta) - y * eta

    @staticmethod
    def output(eta: float) -> tuple[float, float]:
        """(predict_result, predict_score): both the expected count mu."""
        mu = math.exp(eta)
        return mu, mu


POISSON = PoissonLoss()
