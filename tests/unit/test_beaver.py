"""components/mpc/beaver.py: triples made by the two parties with Paillier, and products of
shares through them, run by two threads that talk through queues (as they would through a
federation channel: every message goes through the wire codec)."""

from __future__ import annotations

import queue
import threading
from functools import lru_cache

import numpy as np
import pytest

from components.crypto.paillier import generate_keypair
from components.mpc import FixedPoint, Session
from federation import codec
from flow.core.errors import CryptoError

FP = FixedPoint(24, 128)
RNG = np.random.default_rng(3)


@lru_cache(maxsize=None)
def keys(bits: int = 512):
    return generate_keypair(bits), generate_keypair(bits)


class QueuePeer:
    def __init__(self, inbox: queue.Queue, outbox: queue.Queue):
        self.inbox, self.outbox = inbox, outbox

    def send(self, name, obj):
        self.outbox.put((name, codec.encode(obj)))

    def recv(self, name):
        got, data = self.inbox.get(timeout=60)
        assert got == name, f"expected message {name}, got {got}"
        return codec.decode(data)


def run_pair(f0, f1, fp: FixedPoint = FP, bits: int = 512):
    """Run f0(session0) and f1(session1) concurrently; their results."""
    (pub0, priv0), (pub1, priv1) = keys(bits)
    a, b = queue.Queue(), queue.Queue()
    sessions = [Session(QueuePeer(a, b), 0, fp, priv0, pub1), Session(QueuePeer(b, a), 1, fp, priv1, pub0)]
    out: list = [None, None]
    errors: list = []

    def go(i, f):
        try:
            out[i] = f(sessions[i])
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
            (b if i == 0 else a).put(("error", codec.encode(None)))

    threads = [threading.Thread(target=go, args=(i, f)) for i, f in enumerate((f0, f1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return out


def test_triples_from_paillier_satisfy_z_equals_uv():
    shapes = [(1, 1, 1), (3, 2, 1), (2, 5, 3), (4, 1, 2)] * 5
    owners = [None, 0, 1]

    def make(s):
        return [s.triple(m, k, p, owners[i % 3]) for i, (m, k, p) in enumerate(shapes)]

    t0, t1 = run_pair(make, make)
    for i, (a, b) in enumerate(zip(t0, t1)):
        u, v, z = FP.add(a.u, b.u), FP.add(a.v, b.v), FP.add(a.z, b.z)
        assert z.tolist() == FP.matmul(u, v).tolist()
        owner = owners[i % 3]
        if owner is not None:  # the other party holds no part of U
            assert not any((b if owner == 0 else a).u.flat)


def test_matmul_of_shares_matches_numpy():
    x, y = RNG.normal(0, 2, (6, 4)), RNG.normal(0, 2, (4, 2))

    def party(i):
        def f(s):
            xs = s.share(0, x if i == 0 else None, x.shape)
            ys = s.share(1, y if i == 1 else None, y.shape)
            both = s.reveal(s.matmul(xs, ys), 0)
            own = s.reveal(s.matmul(FP.encode(x) if i == 0 else None, ys, x_owner=0), 0)
            return both, own
        return f

    (both, own), _ = run_pair(party(0), party(1))
    assert np.abs(both - x @ y).max() < 1e-5
    assert np.abs(own - x @ y).max() < 1e-5


def test_a_party_sees_nothing_correlated_with_the_other_partys_values():
    """Party 1's share of party 0's values, and what it receives opened in a product
    with a private matrix (E = X - U), over many draws."""
    x = RNG.normal(0, 1, (4000, 1))
    w = np.array([[0.5]])

    def p0(s):
        ws = s.share(0, w, w.shape)
        s.matmul(FP.encode(x), ws, x_owner=0)
        return s.share(0, x, x.shape)

    def p1(s):
        ws = s.share(0, None, w.shape)
        seen = []
        orig = s.peer.recv

        def spy(name):
            got = orig(name)
            if name.startswith("open_x"):
                seen.append(FP.from_wire(got))
            return got
        s.peer.recv = spy
        s.matmul(None, ws, x_owner=0)
        return s.share(0, None, x.shape), seen[0]

    _, (share, opened) = run_pair(p0, p1)
    for view in (share, opened):
        as_real = np.array([float(v) for v in view.flat]) / FP.modulus
        assert abs(np.corrcoef(as_real, x.ravel())[0, 1]) < 0.05  # 4000 draws: sigma of r ~0.016


def test_short_keys_are_refused_for_wide_rings():
    with pytest.raises(CryptoError, match="too short"):
        run_pair(lambda s: s.triple(1, 1, 1), lambda s: s.triple(1, 1, 1), FixedPoint(24, 256), 512)


def test_a_reply_under_the_wrong_key_is_refused():
    (pub0, _), _ = keys()

    def p0(s):
        s.peer.send("cross_b.1", [pub0.encrypt(1)])
        return None

    with pytest.raises(CryptoError, match="peer's key"):
        run_pair(p0, lambda s: s.cross(1, a=np.array([[1]], dtype=object), shape=(1, 1, 1)))
