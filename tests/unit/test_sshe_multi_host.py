"""HeteroSSHELR's training with a guest and two hosts (components/mpc/group.py), the three
parties as threads with one queue pair per pair of parties, against the central Taylor descent;
and ``encrypted_reveal_in_host``: the hosts' weights end encrypted under the guest's key, and
the partial scores the guest decrypts are the plain ones."""

from __future__ import annotations

import queue
from functools import lru_cache

import numpy as np
import pytest

from components.crypto.paillier import generate_keypair
from components.linear.family import LOGISTIC_TAYLOR, SQUARED_ERROR, QuadraticLoss
from components.linear.sshe_lr import SSHE_FIXED_POINT
from components.linear.sshe_params import HeteroSSHELinRParams, HeteroSSHELRParams
from components.linear.sshe_protocol import Rows, Trainer
from components.linear.sshe_reveal import guest_decrypt, host_model, host_scores, load_host
from components.mpc import Session
from components.mpc.group import Group
from flow.core.errors import CryptoError
from tests.unit.test_sshe_lr import QueuePeer, breast, central, run_threads

SHORT = {"key_length": 512, "allow_short_key": True}
PAIRS = [(0, 1), (0, 2), (1, 2)]


@lru_cache(maxsize=None)
def keys():
    return [generate_keypair(512) for _ in range(3)]


def groups(triples: str) -> list[Group]:
    """Each party's group: sessions over one queue pair per pair of parties (lower = party 0)."""
    ks = keys()
    sessions: list[dict[int, Session]] = [{}, {}, {}]
    for i, j in PAIRS:
        ij, ji = queue.Queue(), queue.Queue()
        sessions[i][j] = Session(QueuePeer(ji, ij), 0, SSHE_FIXED_POINT, ks[i][1], ks[j][0], triples)
        sessions[j][i] = Session(QueuePeer(ij, ji), 1, SSHE_FIXED_POINT, ks[j][1], ks[i][0], triples)
    return [Group(me, 3, sessions[me]) for me in range(3)]


def three_way():
    xg, xh, y = breast()
    return [np.hstack([xg, np.ones((len(y), 1))]), xh[:, :5], xh[:, 5:]], y


def train(p: HeteroSSHELRParams, loss: QuadraticLoss, xs: list[np.ndarray], y: np.ndarray):
    dims = tuple(x.shape[1] for x in xs)
    pen = (np.r_[np.ones(dims[0] - 1), 0.0], np.ones(dims[1]), np.ones(dims[2]))
    t = [np.array([loss.target(v) for v in y])]

    def party(g: Group):
        return lambda: Trainer(g, p, loss, dims, pen).fit(Rows([xs[g.me]], t if g.me == 0 else None),
                                                          np.zeros(dims[g.me]))

    return run_threads([party(g) for g in groups(p.triple_provider)])


@pytest.mark.parametrize("reveal, triples", [(True, "paillier"), (False, "ot")])
def test_two_hosts_match_central_taylor_gradient_descent(reveal: bool, triples: str):
    xs, y = three_way()
    p = HeteroSSHELRParams(max_iter=3, learning_rate=0.15, alpha=0.01, reveal_every_iter=reveal, early_stop="abs",
                           tol=1e-9, encrypt_param=SHORT, triple_provider=triples)
    g, h1, h2 = train(p, LOGISTIC_TAYLOR, xs, y)
    w, b, losses = central(p, LOGISTIC_TAYLOR, np.hstack([xs[0][:, :-1], xs[1], xs[2]]), y)
    d0, d1 = xs[0].shape[1] - 1, xs[1].shape[1]
    assert np.abs(g.w[:-1] - w[:d0]).max() < 1e-3 and abs(g.w[-1] - b) < 1e-3
    assert np.abs(h1.w - w[d0:d0 + d1]).max() < 1e-3 and np.abs(h2.w - w[d0 + d1:]).max() < 1e-3
    assert g.iters == h1.iters == h2.iters == 3 and h1.losses is None and h2.losses is None
    assert np.allclose(g.losses, losses, atol=1e-3) and np.abs(w[d0 + d1:]).max() > 0.02


def test_two_hosts_linear_regression_with_weight_diff_on_shares():
    xs, _ = three_way()
    y = xs[0][:, 0] * 0.5 - xs[2][:, 1] + 0.3
    p = HeteroSSHELinRParams(max_iter=2, learning_rate=0.1, alpha=0.01, early_stop="weight_diff", tol=1e-9,
                             encrypt_param=SHORT)
    g, h1, h2 = train(p, SQUARED_ERROR, xs, y)
    w, b, _ = central(p, SQUARED_ERROR, np.hstack([xs[0][:, :-1], xs[1], xs[2]]), y)
    assert np.abs(np.r_[g.w[:-1], h1.w, h2.w] - w).max() < 1e-3 and abs(g.w[-1] - b) < 1e-3
    assert g.iters == h1.iters == h2.iters == 2 and not g.converged


def test_encrypted_reveal_in_host_gives_the_plain_scores_to_the_guest_only():
    xs, y = three_way()
    plain = HeteroSSHELRParams(max_iter=2, learning_rate=0.15, alpha=0.01, reveal_every_iter=False,
                               encrypt_param=SHORT)
    hidden = plain.model_copy(update={"reveal_strategy": "encrypted_reveal_in_host"})
    ref = train(plain, LOGISTIC_TAYLOR, xs, y)
    got = train(hidden, LOGISTIC_TAYLOR, xs, y)
    assert np.abs(got[0].w - ref[0].w).max() < 1e-5  # the guest's own weights as before
    guest_key = keys()[0][1]
    decrypt = guest_decrypt(guest_key, SSHE_FIXED_POINT)
    for h in (1, 2):
        w = got[h].w
        assert w.dtype == object and all(c.public_key == guest_key.public_key for c in w)
        stored = load_host("hetero_sshe_lr_0", host_model(w))  # through the model record and back
        score = host_scores(stored, SSHE_FIXED_POINT)

        class Row:
            def __init__(self, features: np.ndarray):
                self.features = features
        part = [(f"id{i}", Row(xs[h][i])) for i in range(5)]  # a partition: one multi-exponentiation
        got_scores = score(part)
        assert [k for k, _ in got_scores] == [k for k, _ in part]
        assert np.abs(np.array([decrypt(c) for _, c in got_scores]) - xs[h][:5] @ ref[h].w).max() < 1e-5
        assert score([]) == []
        # the host cannot read them: a ciphertext is no ring element of its weights
        assert all(int(c.ciphertext) > 2 ** 256 for c in w)


def test_a_group_refuses_missing_sessions():
    with pytest.raises(CryptoError, match="needs sessions with"):
        Group(2, 3, {0: groups("ot")[2].sessions[0]})
