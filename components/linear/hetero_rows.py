"""What the HeteroLR / HeteroLinR parties run on their rows, on the workers (module-level
functions and closures over plain values, so that every computing backend can ship them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from components.activation import sigmoid
from components.base import SAMPLE_WEIGHT, Instance
from components.crypto.paillier import AdditivePublicKey
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


def encrypt(pub: AdditivePublicKey, randomise: bool = True):
    """``randomise``: apply the randomness here, on the workers, rather than when the driver
    encodes the message; False when the driver holds enough factors drawn ahead."""
    def f(v: float):
        return pub.encrypt(v).obfuscate() if randomise else pub.encrypt(v)
    return f


def guest_row(w: np.ndarray, b: float, loss: QuadraticLoss, positive: float | None):
    """Instance -> (wx_g, t, features, sample weight; 1 unweighted). With ``positive`` (one
    model of one-vs-rest) the label is 1 for that class and 0 for every other."""
    def f(inst: Instance) -> tuple[float, float, np.ndarray, float]:
        label = inst.label if positive is None else float(inst.label == positive)
        weight = 1.0 if inst.weight is None else float(inst.weight)
        return float(inst.features @ w) + b, loss.target(label), inst.features, weight
    return f


def check_weights(component: str, data: Any) -> bool:
    """Whether the guest's training rows are sample-weighted; refuses rows whose weights an
    upstream component dropped (training unweighted would silently differ from FATE)."""
    dropped = data.meta.extra.get("sample_weight_dropped_by")
    if dropped:
        raise ComponentError(f"{component}: the sample weights of its data were dropped by {dropped}, which does "
                             "not carry them; connect SampleWeight's output to the model directly")
    if not data.meta.extra.get(SAMPLE_WEIGHT):
        return False
    if any(data.table.apply_partitions(_unweighted)):
        raise ComponentError(f"{component}: some rows of its sample-weighted data have no weight")
    return True


def _unweighted(part: list) -> bool:
    return any(inst.weight is None for _, inst in part)


def check_finite(component: str, data: Any) -> Any:
    """``data``, refused in one line when a feature is NaN or infinite (DataTransform keeps an
    empty cell as NaN, as FATE does): Paillier cannot encode it, and a linear model has no
    missing-value rule."""
    if any(data.table.apply_partitions(_non_finite)):
        raise ComponentError(f"{component}: its data has missing (NaN) or infinite feature values; impute them "
                             "first (FeatureImputation, or DataTransform's missing_fill)")
    return data


def _non_finite(part: list) -> bool:
    return any(not np.isfinite(inst.features).all() for _, inst in part)


def fore(loss: QuadraticLoss):
    """[[D]] = [[wx_h]] + wx_g + k·t: no scalar multiplication on the critical path; the
    loss's scale is applied to the decrypted gradients. Re-randomised, so the host cannot
    recognise its own [[wx_h]] inside."""
    def f(c, t):
        return (c + (t[0] + loss.k * t[1])).obfuscate()
    return f


def guest_columns(loss: QuadraticLoss):
    """([[D]], [v·x_g..., v, coef]) with v the row's sample weight: one dot gives the guest's
    weighted gradient, its intercept and the encrypted share of the (unweighted, as FATE's)
    loss at once."""
    def f(c, t):
        wx, y, x, v = t
        return c, np.concatenate([x * v if v != 1.0 else x, [v, loss.coef(wx, y)]])
    return f


def weigh(c, t):
    """[[D]] -> [[v·D]] for the hosts' gradients, v the row's sample weight (FATE multiplies the
    fore gradient by it); an integral weight multiplies exactly, a weight of 1 costs nothing."""
    v = t[3]
    if v == 1.0:
        return c
    return (c * (int(v) if float(v).is_integer() else v)).obfuscate()  # fresh randomness: a 0 weight hides too


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
        return sum(loss.guest_part(wx, t) for _, (wx, t, *_) in part)
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
