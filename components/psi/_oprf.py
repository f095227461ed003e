"""An oblivious pseudo-random function on Curve25519 (2HashDH), for secure information retrieval.

The host holds a key ``k``; the guest learns ``F(x) = x(k·H(x))`` for its own ids and nothing
else, and the host learns nothing about ``x``. The guest blinds: it sends ``r·H(x)``, the
host returns ``k·r·H(x)``, and the guest multiplies by a scalar ``s`` with ``s·r ≡ 1`` modulo
the group order ℓ. All multiplications are ``cryptography``'s X25519 ladder, whose scalars
are clamped (multiples of the cofactor 8, bit 254 set), which clears the small-subgroup part
of every point; so ``r`` is drawn again until ``s`` is itself a clamped scalar (half the time).
``H`` hashes into the curve proper (not its twist) by try-and-increment, so that the algebra
modulo ℓ holds for every id. The guest's blinded points are uniform in the prime-order
subgroup whatever its ids are: the host's view does not depend on the query.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from flow.core.errors import CryptoError

POINT = 32
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_A = 486662


def hash_to_curve(identifier: str | bytes) -> bytes:
    """u-coordinate of a point of Curve25519 (not of its twist) from SHA-256 of the id."""
    raw = identifier.encode("utf-8") if isinstance(identifier, str) else bytes(identifier)
    for counter in range(256):
        u = int.from_bytes(hashlib.sha256(b"fedweave-sir" + bytes([counter]) + raw).digest(), "little") % _P
        rhs = (u * u * u + _A * u * u + u) % _P
        if rhs and pow(rhs, (_P - 1) // 2, _P) == 1:  # v² = rhs has a root: on the curve
            return u.to_bytes(POINT, "little")
    raise CryptoError("no curve point for this id")  # probability 2^-256


def _clamp(k: int) -> int:
    return (k & ~7 & (2**255 - 1)) | 2**254


def _is_clamped(k: int) -> bool:
    return _clamp(k) == k


def _mul(scalar: bytes, u: bytes) -> bytes:
    try:
        return X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(u))
    except ValueError:  # small-order input: the product is zero
        raise CryptoError("malformed OPRF point: it lies in a small subgroup") from None


def _checked(points: object, what: str) -> list[bytes]:
    if not isinstance(points, np.ndarray) or points.dtype != np.uint8 or points.ndim != 2 or points.shape[1] != POINT:
        raise CryptoError(f"malformed {what}: expected an (n, {POINT}) byte array, "
                          f"got {getattr(points, 'shape', type(points).__name__)}")
    rows = [row.tobytes() for row in np.ascontiguousarray(points)]
    for row in rows:
        if int.from_bytes(row, "little") >= _P:
            raise CryptoError(f"malformed {what}: not a canonical Curve25519 u-coordinate")
    return rows


def _array(rows: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), POINT).copy()


class OprfClient:
    """The guest: ``blind(ids)`` → points to send; ``finalize(evaluated)`` → F(id) per id."""

    def __init__(self) -> None:
        while True:
            r = _clamp(int.from_bytes(os.urandom(POINT), "little"))
            s = 8 * (pow(r, -1, _L) * pow(8, -1, _L) % _L)  # s ≡ r⁻¹ (mod ℓ), s ≡ 0 (mod 8)
            if _is_clamped(s):
                break
        self._r, self._s = r.to_bytes(POINT, "little"), s.to_bytes(POINT, "little")

    def blind(self, ids: Iterable[str | bytes]) -> np.ndarray:
        return _array([_mul(self._r, hash_to_curve(i)) for i in ids])

    def finalize(self, evaluated: np.ndarray, count: int) -> list[bytes]:
        rows = _checked(evaluated, "evaluated OPRF points")
        if len(rows) != count:
            raise CryptoError(f"the host evaluated {len(rows)} points for {count} ids")
        return [_mul(self._s, row) for row in rows]


class OprfServer:
    """The host's key: ``evaluate(blinded)`` for the guest; ``value(ids)`` → F(id) of its own ids."""

    def __init__(self, key: bytes | None = None):
        self._k = key if key is not None else os.urandom(POINT)

    def evaluate(self, blinded: np.ndarray) -> np.ndarray:
        return _array([_mul(self._k, row) for row in _checked(blinded, "blinded OPRF points")])

    def value(self, ids: Iterable[str | bytes]) -> list[bytes]:
        return [_mul(self._k, hash_to_curve(i)) for i in ids]


def tag(value: bytes) -> bytes:
    """What the host publishes beside a row: lets the guest find its ids' rows, and no other."""
    return hashlib.sha256(b"fedweave-sir-tag" + value).digest()[:16]


def keystream(value: bytes, length: int) -> bytes:
    """One-time pad of a row (non-committing: SHA-256 in counter mode of the OPRF value)."""
    blocks = (hashlib.sha256(b"fedweave-sir-key" + c.to_bytes(4, "little") + value).digest()
              for c in range(-(-length // 32)))
    return b"".join(blocks)[:length]
