"""HeteroSSHELR's training on secret shares (components/linear/sshe_protocol.py), guest and
host as two threads, against the same Taylor-approximated gradient descent run centrally."""

from __future__ import annotations

import math
import queue
import threading
from functools import lru_cache

import numpy as np
import pytest
from pydantic import ValidationError

from components.crypto.paillier import generate_keypair
from components.linear import sshe_protocol
from components.linear.family import LOGISTIC_TAYLOR, SQUARED_ERROR, QuadraticLoss
from components.linear.sshe_gram import worth_it
from components.linear.sshe_lr import SSHE_FIXED_POINT
from components.linear.sshe_params import HeteroSSHELinRParams, HeteroSSHELRParams
from components.linear.sshe_protocol import Rows, Trainer
from components.mpc import Session
from federation import codec
from tests.e2e.conftest import joined

ROWS = 120  # of breast_hetero, for speed; the e2e test trains on all of it


@lru_cache(maxsize=None)
def keys():
    return generate_keypair(512), generate_keypair(512)


class QueuePeer:
    def __init__(self, inbox: queue.Queue, outbox: queue.Queue):
        self.inbox, self.outbox = inbox, outbox

    def send(self, name, obj):
        self.outbox.put((name, codec.encode(obj)))

    def recv(self, name):
        got, data = self.inbox.get(timeout=120)
        assert got == name, (got, name)
        return codec.decode(data)


def breast(standardise: bool = True):
    _, x, y, g, _ = joined("breast_hetero", standardise=standardise)
    return x[:ROWS, :len(g)], x[:ROWS, len(g):], y[:ROWS]


def train(p: HeteroSSHELRParams, loss: QuadraticLoss, xg, xh, y, batches=None, starts=None):
    """Both parties' Fit (guest weights include the intercept last)."""
    (pub0, priv0), (pub1, priv1) = keys()
    a, b = queue.Queue(), queue.Queue()
    batches = batches or [np.arange(len(y))]
    xg1 = np.hstack([xg, np.ones((len(y), 1))])
    dims = (xg1.shape[1], xh.shape[1])
    pen = (np.r_[np.ones(xg.shape[1]), 0.0], np.ones(dims[1]))
    starts = starts or ((np.zeros(dims[0]), 0), (np.zeros(dims[1]), 0))

    def guest():
        s = Session(QueuePeer(a, b), 0, SSHE_FIXED_POINT, priv0, pub1, triples=p.triple_provider)
        t = [np.array([loss.target(v) for v in y[i]]) for i in batches]
        return Trainer(s, p, loss, dims, pen).fit(Rows([xg1[i] for i in batches], t), starts[0][0],
                                                  start=starts[0][1])

    def host():
        s = Session(QueuePeer(b, a), 1, SSHE_FIXED_POINT, priv1, pub0, triples=p.triple_provider)
        return Trainer(s, p, loss, dims, pen).fit(Rows([xh[i] for i in batches]), starts[1][0],
                                                  start=starts[1][1])

    return run_threads([guest, host])


def run_threads(fns: list) -> list:
    """Each party's function in its own thread; their results, or the first error raised."""
    out: list = [None] * len(fns)
    errors: list = []

    def safe(i: int):
        try:
            out[i] = fns[i]()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=safe, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    if errors:
        raise errors[0]
    return out


def central(p: HeteroSSHELRParams, loss: QuadraticLoss, x, y, fit_intercept=True, batches=None):
    """Plain gradient descent on the same quadratic loss: weights, intercept, losses."""
    t = np.array([loss.target(v) for v in y])
    w, b, losses = np.zeros(x.shape[1]), 0.0, []
    batches = batches or [np.arange(len(y))]
    for it in range(p.max_iter):
        lr = p.learning_rate / math.sqrt(1 + p.decay * it)
        batch_losses = []
        for i in batches:
            s = x[i] @ w + b
            batch_losses.append(float(np.mean(loss.loss(s, t[i]))) + 0.5 * p.alpha * float(w @ w))
            e = loss.scale * (s + loss.k * t[i])
            w = w - lr * (x[i].T @ e / len(i) + p.alpha * w)
            b = b - lr * float(e.mean()) if fit_intercept else 0.0
        losses.append(float(np.mean(batch_losses)))
    return w, b, losses


@pytest.fixture(params=["rows", "gram"])
def path(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each epoch on the rows (shares of z) or on the shared Gram matrix (sshe_gram.py), whatever
    the number of epochs would choose."""
    gram = request.param == "gram"
    monkeypatch.setattr(sshe_protocol, "worth_it", lambda size, dims, epochs: gram and size == 2)
    return request.param


def test_the_gram_path_is_taken_when_the_epochs_repay_it():
    assert worth_it(2, (11, 20), 20) and not worth_it(2, (11, 20), 3) and not worth_it(3, (11, 20, 5), 20)


@pytest.mark.parametrize("reveal, triples", [(True, "paillier"), (False, "paillier"), (False, "ot")])
def test_weights_match_central_taylor_gradient_descent(reveal: bool, triples: str, path: str):
    """Both triple providers give the central descent's weights (the OT run: same data, same steps)."""
    xg, xh, y = breast()
    p = HeteroSSHELRParams(max_iter=3, learning_rate=0.15, alpha=0.01, reveal_every_iter=reveal, early_stop="abs",
                           tol=1e-9, encrypt_param={"key_length": 512, "allow_short_key": True},
                           triple_provider=triples)
    g, h = train(p, LOGISTIC_TAYLOR, xg, xh, y)
    w, b, losses = central(p, LOGISTIC_TAYLOR, np.hstack([xg, xh]), y)
    assert np.abs(g.w[:-1] - w[:xg.shape[1]]).max() < 1e-3 and abs(g.w[-1] - b) < 1e-3
    assert np.abs(h.w - w[xg.shape[1]:]).max() < 1e-3
    assert g.iters == h.iters == 3 and h.losses is None and np.abs(w).max() > 0.02
    assert np.allclose(g.losses, losses, atol=1e-3)


def test_linear_regression_with_minibatches_matches_central(path: str):
    xg, xh, _ = breast()
    y = xg[:, 0] * 0.5 - xh[:, 1] + 0.3
    p = HeteroSSHELinRParams(max_iter=2, learning_rate=0.1, alpha=0.0, batch_size=50, early_stop="abs", tol=1e-9,
                             encrypt_param={"key_length": 512, "allow_short_key": True})
    batches = [np.arange(0, 60), np.arange(60, ROWS)]
    g, h = train(p, SQUARED_ERROR, xg, xh, y, batches)
    w, b, _ = central(p, SQUARED_ERROR, np.hstack([xg, xh]), y, batches=batches)
    assert np.abs(np.r_[g.w[:-1], h.w] - w).max() < 1e-3 and abs(g.w[-1] - b) < 1e-3


def test_weight_diff_convergence_on_shares_stops_both_parties(path: str):
    xg, xh, y = breast()
    p = HeteroSSHELRParams(max_iter=5, learning_rate=0.15, alpha=0.01, reveal_every_iter=False,
                           early_stop="weight_diff", tol=10.0, encrypt_param={"key_length": 512,
                                                                             "allow_short_key": True})
    g, h = train(p, LOGISTIC_TAYLOR, xg, xh, y)
    assert g.iters == h.iters == 1 and g.converged and h.converged


@pytest.mark.parametrize("conf, message", [
    ({"reveal_strategy": "all_reveal_in_guest"}, "reveal_strategy"),
    ({"reveal_strategy": "encrypted_reveal_in_host"}, "needs reveal_every_iter false"),
    ({"triple_provider": "dealer"}, "triple_provider"),
    ({"reveal_every_iter": False, "optimizer": "adam"}, "optimizer must be 'sgd'"),
    ({"reveal_every_iter": False, "penalty": "L1"}, "penalty must be 'L2'"),
    ({"early_stop": "diff", "compute_loss": False}, "needs the loss"),
    ({"encrypt_param": {"key_length": 256, "allow_short_key": True}}, "at least 512"),
    ({"epochs": 3, "max_iter": 3}, "same setting"),
])
def test_bad_params_are_refused(conf: dict, message: str):
    with pytest.raises(ValidationError, match=message):
        HeteroSSHELRParams(**conf)


def test_fate2_spellings_are_aliases():
    p = HeteroSSHELRParams(epochs=7, reveal_every_epoch=False, threshold=0.3, reveal_loss_freq=2, penalty=None)
    assert (p.max_iter, p.reveal_every_iter, p.predict_param.threshold, p.penalty_name) == (7, False, 0.3, "NONE")


def test_warm_start_goes_on_from_the_stored_iteration():
    """One iteration, then a warm start from its weights at iteration 1 up to max_iter 2, is
    the central two-iteration descent (learning rate decayed as far)."""
    xg, xh, y = breast()
    short = {"key_length": 512, "allow_short_key": True}
    p1 = HeteroSSHELRParams(max_iter=1, learning_rate=0.15, alpha=0.01, early_stop="abs", tol=1e-9,
                            encrypt_param=short, reveal_every_iter=False)
    g1, h1 = train(p1, LOGISTIC_TAYLOR, xg, xh, y)
    p2 = p1.model_copy(update={"max_iter": 2})
    g2, h2 = train(p2, LOGISTIC_TAYLOR, xg, xh, y, starts=((g1.w, 1), (h1.w, 1)))
    w, b, _ = central(p2, LOGISTIC_TAYLOR, np.hstack([xg, xh]), y)
    assert g2.iters == h2.iters == 2
    assert np.abs(np.r_[g2.w[:-1], h2.w] - w).max() < 1e-3 and abs(g2.w[-1] - b) < 1e-3


def test_feature_counts_from_a_peer_are_checked_before_use():
    from types import SimpleNamespace

    from components.linear.sshe_lr import HeteroSSHELR
    from federation.api import Party
    from flow.core.errors import ComponentError

    ctx, guest = SimpleNamespace(component="hetero_sshe_lr_0"), Party("guest", "9999")
    assert HeteroSSHELR._peer_dims(ctx, [11, 20, 5], 3, guest) == [11, 20, 5]
    for bad in ([11, 20], [11, -1, 5], [11, 10**7, 5], [11, True, 5], [11, 2.0, 5], "11,20,5"):
        with pytest.raises(ComponentError, match="hetero_sshe_lr_0: guest:9999 sent malformed feature counts"):
            HeteroSSHELR._peer_dims(ctx, bad, 3, guest)
