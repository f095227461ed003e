"""Diffie-Hellman commutative encryption for PSI (FATE 1.x ``intersect_method: "dh"``).

The group is the subgroup of quadratic residues of an RFC 3526 MODP safe prime
``p = 2q + 1`` (2048, 3072 or 4096 bits), of prime order ``q``. An id is hashed with the
conf's ``hash_method``, expanded in counter mode to 64 bits more than ``p`` (so that its
value mod ``p`` is near uniform) and squared mod ``p``: a quadratic residue, i.e. a
member of the order-``q`` group. Each party holds a secret exponent ``a`` and sends
``H(x)^a``; the other party raises that to its own ``b``. ``(H(x)^a)^b = (H(x)^b)^a``, so
equal ids meet in the same doubly-encrypted value while one encryption reveals nothing
without the secret (DDH in the QR group).

Points received from the other party must be quadratic residues other than 1: a
non-residue would leak the parity of our exponent (its Legendre symbol) and ``p-1``/1
lie in the order-2/1 subgroups; both are rejected as malformed (the Jacobi symbol is
cheap). Exponents are 512-bit (``2^511 <= a < 2^512``, well below ``q``): short
exponents of twice the group's security level are the RFC 3526 recommendation and
cover the 4096-bit group (~150 bits of security).

The primes are computed from their RFC 3526 definition,
``p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + c)``, and checked by the
unit tests to be safe primes with the RFC's leading digits.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache
from typing import Iterable

import gmpy2

from components.crypto import hashing
from flow.core.errors import CryptoError

#: RFC 3526 group size (bits) -> the constant c of its definition
_RFC3526 = {2048: 124476, 3072: 1690314, 4096: 240904}
#: hash names FATE's DH accepts that this Python can compute (``none`` is refused: the
#: commutative encryption of raw ids would keep their multiplicative relations)
DH_HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sm3")
EXPONENT_BITS = 512


@lru_cache(maxsize=None)
def modp_prime(bits: int) -> int:
    """The RFC 3526 MODP prime of ``bits`` bits (2048, 3072 or 4096)."""
    if bits not in _RFC3526:
        raise CryptoError(f"no RFC 3526 group of {bits} bits (2048, 3072 or 4096)")
    with gmpy2.context(gmpy2.get_context(), precision=bits + 256):
        frac = int(gmpy2.floor(gmpy2.const_pi() * gmpy2.mpz(2) ** (bits - 130)))
    return 2**bits - 2**(bits - 64) - 1 + 2**64 * (frac + _RFC3526[bits])


def group_bits(key_length: int) -> int:
    """The smallest RFC 3526 group of at least ``key_length`` bits and at least 2048."""
    for bits in sorted(_RFC3526):
        if key_length <= bits:
            return bits
    raise CryptoError(f"DH key_length {key_length} is above the largest group (4096 bits)")


def hash_available(name: str) -> bool:
    """``name`` is one of :data:`DH_HASHES` and this Python computes it."""
    return hashing.hash_available(name, DH_HASHES)


def _hasher(name: str):
    if not hash_available(name):
        raise CryptoError(f"DH hash_method '{name}' is not available")
    return lambda data: hashlib.new(name, data).digest()


class DhCipher:
    """A party's secret exponent in the QR group of one RFC 3526 prime.

    ``secret`` is for tests and for the party's own worker processes (pickling carries
    it: never send a pickled cipher to anyone).
    """

    __slots__ = ("bits", "p", "width", "hash_method", "_secret", "_gp", "_hash")

    def __init__(self, bits: int = 2048, hash_method: str = "sha256", secret: int | None = None):
        self.bits = bits
        self.p = modp_prime(bits)
        self.width = (bits + 7) // 8
        self.hash_method = hash_method
        self._hash = _hasher(hash_method)
        if secret is None:
            secret = secrets.randbits(EXPONENT_BITS - 1) | (1 << (EXPONENT_BITS - 1))
        if not isinstance(secret, int) or not 1 < secret < (self.p - 1) // 2:
            raise CryptoError("DH secret must be an integer in 2..q-1")
        self._secret = gmpy2.mpz(secret)
        self._gp = gmpy2.mpz(self.p)

    def __reduce__(self):
        return DhCipher, (self.bits, self.hash_method, int(self._secret))

    def __repr__(self) -> str:
        return f"DhCipher({self.bits} bits, {self.hash_method}, <secret>)"

    def hash_to_group(self, identifier: str | bytes) -> int:
        """The id's hash, expanded to ``bits + 64`` bits, squared mod p (a quadratic residue)."""
        if isinstance(identifier, str):
            identifier = identifier.encode("utf-8")
        elif not isinstance(identifier, (bytes, bytearray, memoryview)):
            raise CryptoError(f"PSI ids must be str or bytes, got {type(identifier).__name__}")
        seed = self._hash(bytes(identifier))
        need = (self.bits + 64 + 7) // 8
        out = b""
        counter = 0
        while len(out) < need:
            out += self._hash(counter.to_bytes(4, "big") + seed)
            counter += 1
        value = gmpy2.mpz(int.from_bytes(out[:need], "big")) % self._gp
        element = gmpy2.powmod(value, 2, self._gp)
        if element <= 1:  # the hash hit 0 or ±1: probability ~2^-2000
            raise CryptoError("an id hashed to a degenerate group element")
        return int(element)

    def encrypt_ids(self, ids: Iterable[str | bytes]) -> list[bytes]:
        """``H(id)^secret mod p`` for each id, in order, as ``width``-byte big-endian values."""
        return [self._to_bytes(gmpy2.powmod(self.hash_to_group(i), self._secret, self._gp)) for i in ids]

    def reencrypt(self, values: Iterable[bytes]) -> list[bytes]:
        """Raise the other party's values to our secret; rejects anything outside the QR group."""
        out = []
        for raw in values:
            if not isinstance(raw, (bytes, bytearray, memoryview)) or len(raw) != self.width:
                raise CryptoError(f"malformed DH value: expected {self.width} bytes")
            v = gmpy2.mpz(int.from_bytes(raw, "big"))
            if not 1 < v < self._gp - 1 or gmpy2.jacobi(v, self._gp) != 1:
                raise CryptoError("malformed DH value: not in the prime-order subgroup")
            out.append(self._to_bytes(gmpy2.powmod(v, self._secret, self._gp)))
        return out

    def _to_bytes(self, v) -> bytes:
        return int(v).to_bytes(self.width, "big")
