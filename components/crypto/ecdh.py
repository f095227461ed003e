"""ECDH private-set-intersection primitives on Curve25519 (X25519 of ``cryptography``).

Each party holds a secret scalar ``a``. An id is hashed with SHA-256 (or the conf's
``hash_method``: SHA-384/512 digests are cut to their first 32 bytes, SM3's are 32) and
the digest (top bit cleared, as RFC 7748 masks it) is read as an x-coordinate ``u``; the party
sends ``x(a·U)``. The other party multiplies by its own ``b``. As the X25519 ladder
computes ``x(k·P)`` from ``x(P)`` alone, on the curve and on its twist (both groups,
Curve25519 being twist-secure), ``x(a·x(b·U)) = x(b·x(a·U))``: equal ids meet in the
same doubly-encrypted value, while a single encryption reveals nothing without the
secret. Clamped scalars are multiples of the cofactor, so small-subgroup inputs
collapse to zero, which X25519 refuses: such points are rejected as malformed.

Speed: one private-key object per cipher and one ``exchange`` per point (~35 µs,
OpenSSL's constant-time ladder); the only per-point object is the peer public key.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from components.crypto import hashing
from flow.core.errors import CryptoError

POINT_BYTES = 32
_P = 2**255 - 19
#: FATE 1.x's ECDH hash methods (digests of at least 32 bytes)
ECDH_HASHES = ("sha256", "sha384", "sha512", "sm3")


def hash_available(name: str) -> bool:
    """``name`` is one of :data:`ECDH_HASHES` and this Python computes it."""
    return hashing.hash_available(name, ECDH_HASHES)


def hash_to_point(identifier: str | bytes, hash_method: str = "sha256") -> bytes:
    """The id's digest (UTF-8 for str) as a 32-byte u-coordinate with bit 255 cleared."""
    if isinstance(identifier, str):
        identifier = identifier.encode("utf-8")
    elif not isinstance(identifier, (bytes, bytearray, memoryview)):
        raise CryptoError(f"PSI ids must be str or bytes, got {type(identifier).__name__}")
    if hash_method == "sha256":
        digest = bytearray(hashlib.sha256(identifier).digest())
    elif hash_available(hash_method):
        digest = bytearray(hashlib.new(hash_method, bytes(identifier)).digest()[:POINT_BYTES])
    else:
        raise CryptoError(f"ECDH hash_method '{hash_method}' is not available")
    digest[31] &= 0x7F
    return bytes(digest)


class EcdhCipher:
    """A party's secret X25519 scalar: encrypts its own ids, re-encrypts the peer's points.

    ``secret`` (32 bytes) is for tests and for rebuilding the cipher in the party's own
    worker processes (pickling carries it: never send a pickled cipher to anyone).
    """

    __slots__ = ("_secret", "_key", "hash_method")

    def __init__(self, secret: bytes | None = None, hash_method: str = "sha256"):
        if secret is None:
            secret = os.urandom(POINT_BYTES)
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != POINT_BYTES:
            raise CryptoError(f"ECDH secret must be {POINT_BYTES} bytes")
        self._secret = bytes(secret)
        self._key = X25519PrivateKey.from_private_bytes(self._secret)
        if not hash_available(hash_method):
            raise CryptoError(f"ECDH hash_method '{hash_method}' is not available")
        self.hash_method = hash_method

    def __reduce__(self):
        return EcdhCipher, (self._secret, self.hash_method)

    def __repr__(self) -> str:
        return "EcdhCipher(<secret>)"

    def _multiply(self, point: bytes) -> bytes:
        try:
            return self._key.exchange(X25519PublicKey.from_public_bytes(point))
        except ValueError:  # low-order point: the shared value would be all zero
            raise CryptoError("malformed ECDH point: it lies in a small subgroup") from None

    def encrypt_ids(self, ids: Iterable[str | bytes]) -> list[bytes]:
        """``x(secret · H(id))`` for each id, in order."""
        return [self._multiply(hash_to_point(i, self.hash_method)) for i in ids]

    def reencrypt(self, points: Iterable[bytes]) -> list[bytes]:
        """Multiply points received from the other party by our secret; rejects malformed ones."""
        out = []
        for point in points:
            if not isinstance(point, (bytes, bytearray, memoryview)):
                raise CryptoError(f"malformed ECDH point: expected bytes, got {type(point).__name__}")
            if len(point) != POINT_BYTES:
                raise CryptoError(f"malformed ECDH point: expected {POINT_BYTES} bytes, got {len(point)}")
            if int.from_bytes(point, "little") >= _P:  # X25519 only ever outputs canonical values
                raise CryptoError("malformed ECDH point: not a canonical Curve25519 u-coordinate")
            out.append(self._multiply(bytes(point)))
        return out
