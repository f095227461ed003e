"""Cross products ``A·B`` of a two-party session under the Paillier key of ``B``'s holder, several
results packed into each ciphertext.

The holder of ``B`` (k×p) encrypts it under its own key; the holder of ``A`` (m×k) computes
``[[A·B + R]]`` with a fresh mask ``R`` and returns it re-randomised; the one decrypts
``A·B + R``, the other keeps ``-R``, both mod ``2^K``. ``A`` enters as signed integers (ring
elements of the top half of the ring are negative), which gives the same sum mod ``2^K`` and
makes a product by a party's own features, small fixed-point numbers, cost a short exponent
instead of a ``K``-bit one.

Packing: a plaintext of the key holds ``S`` slots of ``W`` bits, ``W`` wide enough for any
``|A·B| < 2^T`` plus a mask (``T = 2K - 1 + bits(k)``, from the public shapes, not from the
data). ``B`` goes encrypted once per slot, shifted by ``s·W``; the ``A``-holder sums row
``g·S + s`` of ``A`` into slot ``s`` of result ``g``. Each slot's mask is ``2^T + r`` with ``r``
uniform of ``T + 40`` bits: the slot is non-negative, the decrypted slot value is within
``2^-39`` of independent of ``A·B``, and ``r``'s range being a multiple of ``2^K`` makes the
key holder's share exactly uniform. ``S`` is chosen from the shapes (encryptions of ``B``
against decryptions of results), so both parties agree on it without a message.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from components.crypto.paillier import EncryptedNumber
from components.crypto.vector import encrypted_dot
from flow.core.errors import CryptoError

#: statistical security of the masks (bits)
MASK_SLACK = 40
#: a decryption and a re-randomisation cost about this many encryptions (measured, 1024-bit keys)
DECRYPT_COST = 3
#: int64 exponents where the centred A fits (numpy bit planes instead of Python ints)
_SMALL = 1 << 61


def masks(count: int, bits: int) -> list[int]:
    """``count`` uniform ``bits``-bit masks (a module function, so a control test can zero them)."""
    return [secrets.randbits(bits) for _ in range(count)]


def slot_bits(ring_bits: int, k: int) -> tuple[int, int]:
    """(T, W): the bound ``|A·B| < 2^T`` for centred ``A`` and ``B < 2^K`` over ``k`` terms, and
    the width of a slot holding ``A·B + 2^T + r``."""
    t = 2 * ring_bits - 1 + max(1, k).bit_length()
    return t, t + MASK_SLACK + 2


def slots_for(m: int, k: int, p: int, capacity: int) -> int:
    """How many results per ciphertext: fewest encryptions plus weighted decryptions."""
    return min(range(1, max(1, capacity) + 1), key=lambda s: k * p * s + DECRYPT_COST * -(-m // s) * p)


def centred(a: Any, modulus: int) -> np.ndarray:
    """Ring elements as signed integers in ``[-2^(K-1), 2^(K-1))``; int64 where they fit."""
    half = modulus >> 1
    arr = np.asarray(a, dtype=object)
    out = np.where(arr >= half, arr - modulus, arr) if arr.size else arr
    if out.size and -_SMALL < min(out.flat) and max(out.flat) < _SMALL:
        return out.astype(np.int64)
    return out


def _dot(enc: list, exponents: np.ndarray) -> list:
    """``encrypted_dot`` by column, the columns of small exponents as int64 (numpy bit planes)
    apart from those of ring-sized ones (Python ints): a private matrix stacked with a share."""
    if exponents.dtype != object or not exponents.size:
        return encrypted_dot(enc, exponents)
    small = np.array([-_SMALL < min(col) and max(col) < _SMALL for col in exponents.T])
    out: list = [None] * exponents.shape[1]
    for mask, dtype in ((small, np.int64), (~small, object)):
        cols = np.flatnonzero(mask)
        if cols.size:
            for i, c in zip(cols, encrypted_dot(enc, exponents[:, cols].astype(dtype))):
                out[i] = c
    return out


class PaillierCross:
    """One party's side of Paillier cross products within a two-party session."""

    def __call__(self, sess: Any, a_owner: int, a: Any, b: Any, m: int, k: int, p: int) -> np.ndarray:
        """This party's share (object ring array, m×p) of ``A·B``; see the module docstring."""
        plan = self._plan(sess, a_owner, m, k, p)
        names = sess._name("cross_b"), sess._name("cross_ab")
        if sess.party != a_owner:
            self._send_b(sess, np.asarray(b, dtype=object).reshape(k, p), plan, names[0])
            return self._decrypt(sess, m, p, plan, names[1])
        return self._compute(sess, np.asarray(a, dtype=object).reshape(m, k), p, plan, names)

    def pair(self, sess: Any, a: Any, b: Any, shapes: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Shares of ``A_0·B_1`` and ``A_1·B_0`` (party ``o`` holds ``A_o``, shapes ``shapes[o]``)
        in one round trip: each party sends its encrypted ``B`` first, then computes."""
        me, other = sess.party, 1 - sess.party
        plans = [self._plan(sess, o, *shapes[o]) for o in (0, 1)]
        names = [(sess._name("cross_b"), sess._name("cross_ab")) for _ in (0, 1)]
        (m, k, p), (m2, k2, p2) = shapes[me], shapes[other]
        self._send_b(sess, np.asarray(b, dtype=object).reshape(k2, p2), plans[other], names[other][0])
        mine = self._compute(sess, np.asarray(a, dtype=object).reshape(m, k), p, plans[me], names[me])
        theirs = self._decrypt(sess, m2, p2, plans[other], names[other][1])
        return (mine, theirs) if me == 0 else (theirs, mine)

    @staticmethod
    def _plan(sess: Any, a_owner: int, m: int, k: int, p: int) -> tuple[int, int, int]:
        """(slots, T, W) of one cross product, from the public shapes and the decrypting key."""
        if sess.private_key is None or sess.public_key is None or sess.peer_key is None:
            raise CryptoError("Paillier triples need this party's private key and the peer's public key")
        key = sess.public_key if sess.party != a_owner else sess.peer_key
        t, w = slot_bits(sess.fp.ring_bits, k)
        capacity = (key.n.bit_length() - 3) // w
        if capacity < 1:
            whose = "this party's" if sess.party != a_owner else "the peer's"
            raise CryptoError(f"{whose} {key.n.bit_length()}-bit Paillier key is too short for "
                              f"{sess.fp.ring_bits}-bit shares (needs about {w + 3} bits)")
        return slots_for(m, k, p, capacity), t, w

    @staticmethod
    def _send_b(sess: Any, b: np.ndarray, plan: tuple[int, int, int], name: str) -> None:
        """Holds B: encrypts it once per slot, shifted into the slot, under its own key."""
        s, _, w = plan
        enc = sess.public_key.encrypt
        sess.peer.send(name, [enc(int(x) << (slot * w)) for j in range(b.shape[1]) for slot in range(s)
                              for x in b[:, j]])

    @staticmethod
    def _decrypt(sess: Any, m: int, p: int, plan: tuple[int, int, int], name: str) -> np.ndarray:
        """Holds B: decrypts and unpacks ``A·B + R``."""
        s, _, w = plan
        groups = -(-m // s)
        got = sess.peer.recv(name)
        if not isinstance(got, list) or len(got) != groups * p:
            raise CryptoError(f"cross product: expected {groups * p} ciphertexts")
        raw = [sess.private_key.raw_decrypt(PaillierCross._mine(sess, c).ciphertext) for c in got]
        width, mod = (1 << w) - 1, sess.fp.modulus
        out = np.empty((p, groups * s), dtype=object)
        out.flat[:] = [(v >> (slot * w) & width) % mod for v in raw for slot in range(s)]
        return np.ascontiguousarray(out[:, :m].T)

    @staticmethod
    def _compute(sess: Any, a: np.ndarray, p: int, plan: tuple[int, int, int], names: tuple[str, str]) -> np.ndarray:
        """Holds A: ``[[A·B + R]]`` by slots, re-randomised; keeps ``-R``."""
        (s, t, w), (m, k) = plan, a.shape
        groups = -(-m // s)
        enc_b = sess.peer.recv(names[0])
        if not isinstance(enc_b, list) or len(enc_b) != k * p * s:
            raise CryptoError(f"cross product: expected {k * p * s} ciphertexts")
        enc_b = [PaillierCross._theirs(sess, c) for c in enc_b]
        signed = centred(a, sess.fp.modulus)
        padded = np.zeros((groups * s, k), dtype=signed.dtype)
        padded[:m] = signed
        # exponents[slot·k + i, g] = A[g·S + slot, i]: column g sums rows g·S.. into its slots
        exponents = padded.reshape(groups, s, k).transpose(1, 2, 0).reshape(s * k, groups)
        r = np.array(masks(groups * s * p, t + MASK_SLACK), dtype=object).reshape(p, groups, s) + (1 << t)
        shifts = np.array([1 << (slot * w) for slot in range(s)], dtype=object)
        packed = (r * shifts).sum(axis=2)
        out = []
        for j in range(p):
            col = _dot(enc_b[j * k * s:(j + 1) * k * s], exponents)
            out += [(c + int(v)).obfuscate() for c, v in zip(col, packed[j])]
        sess.peer.send(names[1], out)
        share = (-r.reshape(p, groups * s)[:, :m].T) % sess.fp.modulus
        return np.ascontiguousarray(share)

    @staticmethod
    def _mine(sess: Any, c: Any) -> EncryptedNumber:
        if not isinstance(c, EncryptedNumber) or c.public_key != sess.public_key or c.exponent != 0:
            raise CryptoError("cross product: a reply is not a ciphertext under this party's key")
        return c

    @staticmethod
    def _theirs(sess: Any, c: Any) -> EncryptedNumber:
        if not isinstance(c, EncryptedNumber) or c.public_key != sess.peer_key or c.exponent != 0:
            raise CryptoError("cross product: an operand is not an integer ciphertext under the peer's key")
        return c
