"""components/mpc/beaver.py: triples made by the two parties with Paillier or by OT
(components/mpc/ot_triples.py), and products of shares through them, run by two threads that
talk through queues (as they would through a federation channel: every message goes through
the wire codec)."""

from __future__ import annotations

import queue
import threading
from functools import lru_cache

import numpy as np
import pytest

from components.crypto.paillier import generate_keypair
from components.mpc import FixedPoint, Session, paillier_cross
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


def run_pair(f0, f1, fp: FixedPoint = FP, bits: int = 512, triples: str = "paillier"):
    """Run f0(session0) and f1(session1) concurrently; their results."""
    (pub0, priv0), (pub1, priv1) = keys(bits)
    a, b = queue.Queue(), queue.Queue()
    sessions = [Session(QueuePeer(a, b), 0, fp, priv0, pub1, triples),
                Session(QueuePeer(b, a), 1, fp, priv1, pub0, triples)]
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


@pytest.mark.parametrize("triples", ["paillier", "ot"])
def test_triples_satisfy_z_equals_uv(triples: str):
    shapes = [(1, 1, 1), (3, 2, 1), (2, 5, 3), (4, 1, 2)] * 5
    owners = [None, 0, 1]

    def make(s):
        return [s.triple(m, k, p, owners[i % 3]) for i, (m, k, p) in enumerate(shapes)]

    t0, t1 = run_pair(make, make, triples=triples)
    for i, (a, b) in enumerate(zip(t0, t1)):
        u, v, z = FP.add(a.u, b.u), FP.add(a.v, b.v), FP.add(a.z, b.z)
        assert z.tolist() == FP.matmul(u, v).tolist()
        owner = owners[i % 3]
        if owner is not None:  # the other party holds no part of U
            assert not any((b if owner == 0 else a).u.flat)


@pytest.mark.parametrize("triples", ["paillier", "ot"])
def test_10000_triples_in_z_2_64(triples: str):
    """c = a·b (mod 2^64) for 10,000 products: a 100x1 by 1x100 triple, both factors shared."""
    fp = FixedPoint(24, 64)
    t0, t1 = run_pair(lambda s: s.triple(100, 1, 100), lambda s: s.triple(100, 1, 100), fp, triples=triples)
    u, v, z = fp.add(t0.u, t1.u), fp.add(t0.v, t1.v), fp.add(t0.z, t1.z)
    assert z.size == 10_000 and len(set(z.flat)) > 9_990
    assert all(int(c) == int(a) * int(b) % 2**64 for a, b, c in zip(np.repeat(u, 100, 1).flat,
                                                                     np.repeat(v, 100, 0).flat, z.flat))


def test_an_ot_provider_needs_no_keys_and_paillier_does():
    Session(None, 0, FP, triples="ot")  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match="private key"):
        Session(None, 0, FP)  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match="triple provider"):
        Session(None, 0, FP, triples="dealer")  # type: ignore[arg-type]


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


@pytest.mark.parametrize("triples", ["paillier", "ot"])
def test_cross_pair_packs_results_and_matches_numpy(triples: str):
    """Both parties' private products in one call; at 1024 bits Paillier packs three results
    into a ciphertext (50 rows: the last one partly filled)."""
    assert paillier_cross.slots_for(50, 3, 1, (1024 - 3) // paillier_cross.slot_bits(128, 3)[1]) == 3
    x0, x1 = RNG.normal(0, 3, (50, 3)), RNG.normal(0, 3, (4, 7))
    y0, y1 = RNG.normal(0, 2, (7, 2)), RNG.normal(0, 2, (3, 1))  # y_o: the right factor of the other's product

    def party(i):
        def f(s):
            a, b = (FP.encode(x0), FP.encode(y0)) if i == 0 else (FP.encode(x1), FP.encode(y1))
            p0, p1 = s.cross_pair(a, b, ((50, 3, 1), (4, 7, 2)))
            return s.reveal(s.fp.truncate(p0, i), 0), s.reveal(s.fp.truncate(p1, i), 0)
        return f

    (p0, p1), _ = run_pair(party(0), party(1), bits=1024, triples=triples)
    assert np.abs(p0 - x0 @ y1).max() < 1e-5
    assert np.abs(p1 - x1 @ y0).max() < 1e-5


def _views(triples: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Party 1's share of party 0's values, its share of X·w (X party 0's private matrix, before
    truncation) and its own share of w."""
    w = np.array([[0.5]])

    def p0(s):
        ws = s.share(0, w, w.shape)
        s.matmul(FP.encode(x), ws, x_owner=0, truncate=False)
        return s.share(0, x, x.shape)

    def p1(s):
        ws = s.share(0, None, w.shape)
        product = s.matmul(None, ws, x_owner=0, truncate=False)
        return s.share(0, None, x.shape), product, int(ws[0, 0])

    return run_pair(p0, p1, triples=triples)[1]


def _correlation(view: np.ndarray, x: np.ndarray) -> float:
    as_real = np.array([float(v) for v in view.flat]) / FP.modulus
    return abs(np.corrcoef(as_real, x.ravel())[0, 1])


def _recovered(product: np.ndarray, w1: int, x: np.ndarray) -> float:
    """The fraction of X that party 1 recovers as its product share / its share of w (mod
    2^(K-a), 2^a the power of two in w_1): exact if it decrypted X·w_1 unmasked."""
    a = (w1 & -w1).bit_length() - 1
    mod = FP.modulus >> a
    inv = pow(w1 >> a, -1, mod)
    guess = np.array([(int(v) >> a) * inv % mod for v in product.flat])
    truth = np.array([int(v) % mod for v in FP.encode(x).flat])
    return float(np.mean(guess == truth))


@pytest.mark.parametrize("triples", ["paillier", "ot"])
def test_a_party_sees_nothing_correlated_with_the_other_partys_values(triples: str):
    """Party 1's share of party 0's values, and its share of a product with party 0's private
    matrix (what it decrypted, mod 2^K), over many draws; dividing out its own share of the
    other factor recovers nothing."""
    x = RNG.normal(0, 1, (4000, 1))
    share, product, w1 = _views(triples, x)
    for view in (share, product):
        assert _correlation(view, x) < 0.05  # 4000 draws: sigma of r ~0.016
    assert _recovered(product, w1, x) < 0.01


def test_with_the_cross_masks_forced_to_zero_party_1_recovers_x(monkeypatch: pytest.MonkeyPatch):
    """Control for the test above: without the Paillier cross masks party 1 decrypts X·w_1
    (plus the public offset 2^T, a multiple of 2^K)."""
    monkeypatch.setattr(paillier_cross, "masks", lambda count, bits: [0] * count)
    x = RNG.normal(0, 1, (500, 1))
    _, product, w1 = _views("paillier", x)
    assert _recovered(product, w1, x) == 1.0


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
