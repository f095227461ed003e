"""components/mpc/ot_triples.py: cross products by correlated OT (Gilboa), and what each party
sees of them: the chooser's corrections and the sender's extension matrix look uniform and do
not follow the other party's values; with the pads forced to zero (a control) they do."""

from __future__ import annotations

import numpy as np
import pytest

from components.mpc import FixedPoint, ot_triples
from components.mpc.ot_triples import (
    correction_layout,
    pack_corrections,
    ring_add,
    ring_neg,
    ring_sub,
    ring_sum,
    shifted,
    unpack_corrections,
)
from tests.unit.test_beaver import run_pair

FP = FixedPoint(24, 128)
RNG = np.random.default_rng(11)
CHI2_15_AT_0_001 = 37.7  # chi-square critical value, 15 degrees of freedom, p = 0.001
#: the bar for "uniform": p = 1e-6 (at 0.001 a uniform source failed one clean-clone run in a thousand,
#: as expected of it); the control with zero pads is ~100 times above either
CHI2_15_AT_1E_6 = 56.5


def _limbs(values) -> np.ndarray:
    return FP.to_wire(np.asarray(values, dtype=object))


def test_limb_arithmetic_matches_python_ints():
    vals = [int(v) for v in FP.random((200,))]
    x, y = _limbs(vals[:100]), _limbs(vals[100:])
    m = FP.modulus
    assert FP.from_wire(ring_add(x, y)).tolist() == [(a + b) % m for a, b in zip(vals[:100], vals[100:])]
    assert FP.from_wire(ring_sub(x, y)).tolist() == [(a - b) % m for a, b in zip(vals[:100], vals[100:])]
    assert FP.from_wire(ring_neg(x)).tolist() == [(-a) % m for a in vals[:100]]
    assert FP.from_wire(ring_sum(x, 0)).tolist() == sum(vals[:100]) % m
    assert FP.from_wire(shifted(x[:3], 128)).tolist() == [[(a << s) % m for s in range(128)] for a in vals[:3]]


def _cross_views(a: np.ndarray, b: np.ndarray):
    """Party 0 holds the encoded A, party 1 the ring B: (shares, corrections d party 1 received,
    extension matrix U party 0 received, party 1's choice bits)."""
    m, k = a.shape
    p = b.shape[1]
    seen: dict[str, np.ndarray] = {}

    def spying(s):
        orig = s.peer.recv

        def spy(name):
            got = orig(name)
            seen[name.split(".")[0]] = got
            return got
        s.peer.recv = spy

    def p0(s):
        spying(s)
        return s.cross(0, a=a, shape=(m, k, p))

    def p1(s):
        spying(s)
        return s.cross(0, b=b, shape=(m, k, p))

    shares = run_pair(p0, p1, triples="ot")
    bits = np.unpackbits(FP.to_wire(b).view(np.uint8), axis=-1, bitorder="little").reshape(-1)
    return shares, seen["ot_d"], seen["ot_u"], bits


def _top_nibbles(d: np.ndarray) -> np.ndarray:
    """(..., bits < 60, m, 2) corrections → for bit l, the top 4 of its K - l bits (high limb)."""
    shifts = (60 - np.arange(d.shape[-3], dtype=np.uint64))[:, None]
    return ((d[..., 1] >> shifts) & np.uint64(15)).astype(np.int64)


def _top_nibble_chi2(d: np.ndarray) -> float:
    counts = np.bincount(_top_nibbles(d).ravel(), minlength=16)
    expected = counts.sum() / 16
    return float(((counts - expected) ** 2 / expected).sum())


def test_ot_cross_products_and_what_each_side_sees(monkeypatch: pytest.MonkeyPatch):
    x = RNG.normal(0, 1, (40, 3))
    a, b = FP.encode(x), FP.random((3, 1))
    (s0, s1), d, u, bits = _cross_views(a, b)
    assert FP.add(s0, s1).tolist() == FP.matmul(a, b).tolist()

    # bit l's correction is K - l bits wide on the wire: about half of 128 bits each
    _, nbytes = correction_layout(128, 2)
    assert d.dtype == np.uint8 and d.size == 3 * 40 * nbytes.sum() == 3 * 40 * 1088 < 3 * 40 * 128 * 16 * 0.54
    # the chooser's corrections: uniform top bits (bits l < 60 keep their high limb's top), nothing of A
    d = unpack_corrections(d, (3, 1, 128, 40, 2))[:, 0, :60]
    assert _top_nibble_chi2(d) < CHI2_15_AT_1E_6
    as_real = _top_nibbles(d).astype(np.float64)
    delta = np.broadcast_to(x.T[:, None, :], (3, 60, 40))
    assert abs(np.corrcoef(as_real.ravel(), delta.ravel())[0, 1]) < 0.05
    # the sender's extension matrix: balanced bits, not following the chooser's choices
    u_bits = np.unpackbits(u, axis=1, bitorder="little")[:, :len(bits)]
    assert abs(u_bits.mean() - 0.5) < 0.01
    assert abs(np.corrcoef(u_bits.ravel(), np.tile(bits, 128))[0, 1]) < 0.05

    # control: with the pads forced to zero the corrections are A in the clear and fail
    monkeypatch.setattr(ot_triples, "stretch", lambda rows, _, limbs, index=None: np.zeros((len(rows), limbs),
                                                                                          np.uint64))
    (c0, c1), d0, _, _ = _cross_views(a, b)
    assert FP.add(c0, c1).tolist() == FP.matmul(a, b).tolist()
    assert _top_nibble_chi2(unpack_corrections(d0, (3, 1, 128, 40, 2))[:, 0, :60]) > 10 * CHI2_15_AT_0_001


def test_corrections_pack_to_k_minus_l_bits_and_back():
    d = RNG.integers(0, 2 ** 63, (2, 3, 128, 5, 2), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    back = unpack_corrections(pack_corrections(d), d.shape)
    # 2^l times a correction is what counts: equal mod 2^K once shifted, whatever bytes were left out
    np.testing.assert_array_equal(ot_triples._shift_slices(back, 2), ot_triples._shift_slices(d, 2))
    assert (back[..., 64:, :, 1] == 0).all() and (back[..., :8, :, :] == d[..., :8, :, :]).all()
    from flow.core.errors import CryptoError

    for bad in (pack_corrections(d)[:-1], pack_corrections(d).tolist(), "bytes"):  # a peer's message: anything
        with pytest.raises(CryptoError, match="bytes of corrections"):
            unpack_corrections(bad, d.shape)


def test_malformed_corrections_are_refused():
    from flow.core.errors import CryptoError

    def p0(s):
        names = [s._name(w) for w in ("ot_a", "ot_b", "ot_u", "ot_d")]
        from components.mpc.ot import ExtensionSender
        snd = ExtensionSender(128)
        s.peer.send(names[1], snd.respond(s.peer.recv(names[0])))
        s.peer.recv(names[2])
        s.peer.send(names[3], np.zeros(7, dtype=np.uint8))

    with pytest.raises(CryptoError, match="corrections"):
        run_pair(p0, lambda s: s.cross(0, b=FP.random((1, 1)), shape=(1, 1, 1)), triples="ot")
