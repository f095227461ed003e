"""What the HeteroLR / HeteroLinR parties run on their rows, on the workers (module-level
functions and closures over plain values, so that every computing backend can ship them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from components.activation import sigmoid
from components.base import Instance
from components.crypto.paillier import PaillierPublicKey
from components.crypto.vector import encrypted_dot
from components.linear.family import QuadraticLoss
from components.linear.ovr import ovr_row
from flow.core.errors import ComponentError

#: fractional bits of the features in the encrypted dot products (error ~1e-7, a third faster than 32)
DOT_PRECISION = 24


def linear(w: np.ndarray, b: float | np.ndarray):
    """Instance -> its score: a float for one weight vector, one per row of a matrix."""
    def f(inst: Instance) -> Any:
        s = w @ inst.features + b
        return float(s) if np.ndim(s) == 0 else s
    return f


def encrypt(pub: PaillierPublicKey):
    def f(v: float):
        return pub.encrypt(v).obfuscate()  # randomise here, on the workers, not when encoding
    return f


def guest_row(w: np.ndarray, b: float, loss: QuadraticLoss, positive: float | None):
    """Instance -> (wx_g, t, features). With ``positive`` (one model of one-vs-rest) the
    label is 1 for that class and 0 for every other."""
    def f(inst: Instance) -> tuple[float, float, np.ndarray]:
        label = inst.label if positive is None else float(inst.label == positive)
        return float(inst.features @ w) + b, loss.target(label), inst.features
    return f


def fore(loss: QuadraticLoss):
    """[[D]] = [[wx_h]] + wx_g + k·t: no scalar multiplication on the critical path; the
    loss's scale is applied to the decrypted gradients. Re-randomised, so the host cannot
    recognise its own [[wx_h]] inside."""
    def f(c, t):
        return (c + (t[0] + loss.k * t[1])).obfuscate()
    return f


def guest_columns(loss: QuadraticLoss):
    """([[D]], [x_g..., 1, coef]): one dot gives the guest's gradient, its intercept and
    the encrypted share of the loss at once."""
    def f(c, t):
        wx, y, x = t
        return c, np.concatenate([x, [1.0, loss.coef(wx, y)]])
    return f


def add(a, b):
    return a + b


def pair_features(c, inst: Instance):
    return c, inst.features


def enc_dot(part):
    if not part:
        return None
    return encrypted_dot([c for _, (c, _) in part], np.stack([x for _, (_, x) in part]), DOT_PRECISION)


def loss_plain(loss: QuadraticLoss):
    """The guest's plaintext part of the loss sum, less what the [[D]] column adds."""
    def f(part):
        return sum(loss.guest_part(wx, t) for _, (wx, t, _) in part)
    return f


def square_sum(part):
    return sum(v * v for _, v in part)


def sum_vectors(parts: list) -> list:
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ComponentError("no rows in this batch")
    total = parts[0]
    for p in parts[1:]:
        total = [a + b for a, b in zip(total, p)]
    return total


def prediction(loss: QuadraticLoss, threshold: float, classes: np.ndarray | None):
    """((wx_g, y), wx_h) -> [predict_result, predict_score] (one model), or with one-vs-rest
    [class, its probability, each class's probability]."""
    def f(t) -> Instance:
        (wx_g, y), wx_h = t
        if classes is None:
            return Instance(np.array(loss.output(wx_g + wx_h, threshold)), y)
        return Instance(ovr_row(sigmoid(np.asarray(wx_g + wx_h, dtype=float)), classes), y)
    return f
