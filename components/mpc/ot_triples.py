"""The cross products of Beaver triples by oblivious transfer (Gilboa's multiplication), as
an alternative to Paillier: no public-key operation once the base OTs have run.

Party ``a_owner`` holds ``A`` (m×k), the other ``B`` (k×p), both in ``Z_2^K``. For every
element ``B[t, j]`` and bit ``l`` of it the holder of ``B`` chooses, by that bit, in one
correlated OT whose correlation is ``Δ = A[:, t]`` (a vector of m ring elements): it
receives ``r + bit·Δ`` and the holder of ``A`` keeps ``r``. Each side multiplies its value
by ``2^l``; summed over ``t`` and ``l`` these are shares of ``(A·B)[:, j]``: ``Σ 2^l·r`` on
one side (negated), ``A·B + Σ 2^l·r`` on the other. Since ``2^l·x mod 2^K`` depends only
on ``x mod 2^(K-l)``, bit ``l``'s OT works in ``Z_2^(K-l)``: its pads are stretched to
the limbs that hold K - l bits and its correction crosses as the ``ceil((K-l)/8)`` bytes
that hold them, about half the bytes and three quarters of the AES of full-width OTs.

The correlated OTs come from the IKNP extension of components/mpc/ot.py: its rows, hashed
by :func:`stretch`, give the pads ``p0, p1`` (sender) and ``p_bit`` (chooser); the sender
sets ``r = p0`` and sends ``d = p0 + Δ - p1``, so the chooser's ``p_bit + bit·d`` is
``r + bit·Δ``; ``d`` is masked by the pad the chooser lacks, so it tells nothing of ``A``. The 128 base OTs run once per
direction of a session; each further product extends on them (the generators read on).
The rows are hashed and stretched to a row of ring elements at once by fixed-key AES.

Ring elements travel and are summed as little-endian uint64 limbs, in numpy, not as Python ints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.mpc.fixedpoint import FixedPoint
from components.mpc.ot import KEY, ExtensionReceiver, ExtensionSender, aes_blocks
from flow.core.errors import CryptoError

#: the public key of the fixed-key AES that stretches a pad (any constant would do)
_FIXED_KEY = bytes(range(16))
_LOW = np.uint64(0xFFFFFFFF)


# ---------------------------------------------------------------- ring arithmetic on limbs


def _halves(x: np.ndarray) -> np.ndarray:
    """(..., L) uint64 limbs → (..., 2L) 32-bit halves in uint64, least significant first."""
    return np.stack([x & _LOW, x >> np.uint64(32)], axis=-1).reshape(x.shape[:-1] + (2 * x.shape[-1],))


def ring_sum(x: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """The sum mod 2^K over ``axis`` of (..., L) limbs (fewer than 2^32 terms)."""
    h = _halves(x).sum(axis=axis, dtype=np.uint64)
    out = np.empty_like(h)
    carry = np.zeros(h.shape[:-1], dtype=np.uint64)
    for i in range(h.shape[-1]):
        v = h[..., i] + carry
        out[..., i], carry = v & _LOW, v >> np.uint64(32)
    return (out[..., 0::2] | (out[..., 1::2] << np.uint64(32)))


def ring_add(x: np.ndarray, y: np.ndarray, carry_in: int = 0) -> np.ndarray:
    """Elementwise ``x + y (+ carry_in)`` mod 2^K of (..., L) limbs (broadcasting)."""
    x, y = np.broadcast_arrays(x, y)
    out = np.empty(x.shape, dtype=np.uint64)
    carry = np.full(x.shape[:-1], carry_in, dtype=np.uint64)
    for i in range(x.shape[-1]):
        s = x[..., i] + y[..., i]
        t = s + carry
        carry = ((s < x[..., i]) | (t < s)).astype(np.uint64)
        out[..., i] = t
    return out


def ring_sub(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x - y`` = ``x + ~y + 1`` mod 2^K."""
    return ring_add(x, ~y, 1)


def ring_neg(x: np.ndarray) -> np.ndarray:
    return ring_sub(np.zeros_like(x), x)


def shifted(a: np.ndarray, bits: int) -> np.ndarray:
    """(..., L) limbs → (..., bits, L): the value times 2^l for each l < bits (mod 2^K)."""
    return _shift_slices(np.repeat(a[..., None, :], bits, axis=-2), -2)


def _shift_slices(x: np.ndarray, axis: int) -> np.ndarray:
    """Slice ``l`` of ``x`` along ``axis`` (limbs last) times 2^l mod 2^K."""
    n = x.shape[-1]
    moved = np.moveaxis(x, axis, 0)
    out = np.zeros_like(moved)
    for shift in range(moved.shape[0]):
        q, r = divmod(shift, 64)
        for i in range(q, n):
            v = moved[shift, ..., i - q] << np.uint64(r)
            if r and i - q - 1 >= 0:
                v |= moved[shift, ..., i - q - 1] >> np.uint64(64 - r)
            out[shift, ..., i] = v
    return np.moveaxis(out, 0, axis)


def correction_layout(bits: int, limbs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bit l: the limbs that hold K - l bits, and the bytes that do."""
    width = bits - np.arange(bits)
    return -(-width // 64), np.minimum(-(-width // 8), 8 * limbs)


def _sent_bytes(shape: tuple[int, ...]) -> np.ndarray:
    """For corrections of ``shape`` (..., bits, m, L) as bytes (..., bits, m, 8L): which bytes cross."""
    *_, bits, m, limbs = shape
    _, nbytes = correction_layout(bits, limbs)
    keep = (np.arange(8 * limbs)[None, :] < nbytes[:, None])[:, None, :]  # (bits, 1, 8L)
    return np.broadcast_to(keep, tuple(shape[:-1]) + (8 * limbs,))


def pack_corrections(d: np.ndarray) -> np.ndarray:
    """(..., bits, m, L) corrections → uint8: each bit l's low ``ceil((K-l)/8)`` bytes, in order."""
    return np.ascontiguousarray(d).view(np.uint8)[_sent_bytes(d.shape)]  # little-endian limbs


def unpack_corrections(data: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`pack_corrections` for corrections of ``shape`` (..., bits, m, L),
    checked (they come from the peer); the bytes not sent are zero (2^l times them vanishes
    mod 2^K)."""
    sent = _sent_bytes(shape)
    want = int(sent.sum())
    if not (isinstance(data, np.ndarray) and data.ndim == 1 and data.dtype == np.uint8 and data.size == want):
        raise CryptoError(f"OT cross product: expected {want} bytes of corrections, got "
                          f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    raw = np.zeros(sent.shape, dtype=np.uint8)
    raw[sent] = data
    return raw.view("<u8").astype(np.uint64)


def stretch(rows: np.ndarray, round_: int, limbs: int, index: np.ndarray | None = None) -> np.ndarray:
    """IKNP rows (count, 16) → pads (count, limbs) uint64 by the tweakable correlation-robust
    hash of fixed-key AES π (Guo, Katz, Wang and Yu, 2020): block c of row j is
    ``π(π(x) ⊕ i) ⊕ π(x)`` with the tweak ``i = (j, c, round)``; ``index`` gives each row's
    j when the rows are a subset of an extension (default: 0, 1, ...)."""
    count, blocks = len(rows), -(-limbs // 2)
    j = np.arange(count, dtype=np.uint64) if index is None else np.asarray(index, dtype=np.uint64)
    p = aes_blocks(_FIXED_KEY, rows).reshape(count, 1, KEY)
    tweak = np.zeros((count, blocks, 4), dtype="<u4")
    tweak[..., 0] = j[:, None] & np.uint64(0xFFFFFFFF)
    tweak[..., 1] = j[:, None] >> np.uint64(32)
    tweak[..., 2] = np.arange(blocks)[None, :]
    tweak[..., 3] = round_
    x = np.ascontiguousarray(p ^ tweak.view(np.uint8))
    y = aes_blocks(_FIXED_KEY, x) ^ p
    return np.ascontiguousarray(y).view("<u8").reshape(count, blocks * 2)[:, :limbs].astype(np.uint64)


def pads(rows: np.ndarray, round_: int, shape: tuple[int, ...]) -> np.ndarray:
    """Extension rows in (t, j, l) order → pads of ``shape`` (..., bits, m, L): bit l's rows
    stretched to the limbs that hold K - l bits (the others stay zero: 2^l times them vanishes)."""
    *_, bits, m, limbs = shape
    out = np.zeros((len(rows), m, limbs), dtype=np.uint64)
    need, _ = correction_layout(bits, limbs)
    per_row = need[np.arange(len(rows)) % bits]
    for width in np.unique(per_row):
        sel = np.flatnonzero(per_row == width)
        out[sel, :, :width] = stretch(rows[sel], round_, m * int(width), sel).reshape(len(sel), m, int(width))
    return out.reshape(shape)


# ---------------------------------------------------------------- the protocol


class OTCross:
    """One party's side of OT cross products within a two-party session: the base OTs of each
    direction run at the first product that needs them, and are reused after."""

    def __init__(self) -> None:
        self._senders: dict[int, ExtensionSender] = {}
        self._receivers: dict[int, ExtensionReceiver] = {}

    def __call__(self, sess: Any, a_owner: int, a: Any, b: Any, m: int, k: int, p: int) -> np.ndarray:
        """This party's share (object ring array, m×p) of ``A·B``; see the module docstring."""
        fp: FixedPoint = sess.fp
        bits, limbs = fp.ring_bits, fp.ring_bits // 64
        names = [sess._name(w) for w in ("ot_a", "ot_b", "ot_u", "ot_d")]
        if sess.party == a_owner:
            return self._send(sess, a_owner, np.asarray(a, dtype=object).reshape(m, k), (m, k, p), names)
        choices = np.unpackbits(fp.to_wire(np.asarray(b, dtype=object).reshape(k, p)).view(np.uint8),
                                axis=-1, bitorder="little").reshape(-1)  # (t, j, l) order
        rec = self._receivers.get(a_owner)
        if rec is None:
            rec = self._receivers[a_owner] = ExtensionReceiver(choices)
            sess.peer.send(names[0], rec.start())
            sess.peer.send(names[2], rec.extend(sess.peer.recv(names[1])))
        else:
            rec.again(choices)
            sess.peer.send(names[2], rec.extend())
        d = unpack_corrections(sess.peer.recv(names[3]), (k, p, bits, m, limbs))
        rows, round_ = rec.rows()
        got = pads(rows, round_, (k, p, bits, m, limbs))
        got = np.where(choices.reshape(k, p, bits)[..., None, None].astype(bool), ring_add(got, d), got)
        return fp.from_wire(ring_sum(_shift_slices(got, 2), (0, 2)).transpose(1, 0, 2))

    def _send(self, sess: Any, me: int, a: np.ndarray, shape: tuple[int, int, int], names: list[str]) -> np.ndarray:
        fp: FixedPoint = sess.fp
        (m, k, p), bits, limbs = shape, fp.ring_bits, fp.ring_bits // 64
        count = k * p * bits
        snd = self._senders.get(me)
        if snd is None:
            snd = self._senders[me] = ExtensionSender(count)
            sess.peer.send(names[1], snd.respond(sess.peer.recv(names[0])))
        else:
            snd.again(count)
        snd.absorb(sess.peer.recv(names[2]))
        q0, q1, round_ = snd.rows()
        p0 = pads(q0, round_, (k, p, bits, m, limbs))
        p1 = pads(q1, round_, (k, p, bits, m, limbs))
        delta = fp.to_wire(a.T)[:, None, None]  # (k, 1, 1, m, L): A[:, t]
        sess.peer.send(names[3], pack_corrections(ring_sub(ring_add(p0, delta), p1)))
        return fp.from_wire(ring_neg(ring_sum(_shift_slices(p0, 2), (0, 2))).transpose(1, 0, 2))
