"""Okamoto–Uchiyama encryption on gmpy2 (``encrypt_param.method: "ou"``, FATE 2's name).

Scheme (Okamoto–Uchiyama 1998): ``n = p²·q``; ``g`` in Z_n* with ``g^(p-1) mod p²`` of
order p; ``h = g^n mod n``; ``Enc(m) = g^m · h^r mod n`` for ``m`` in Z_p;
``Dec(c) = L(c^(p-1) mod p²) / L(g^(p-1) mod p²) mod p`` with ``L(x) = (x-1)/p``. It is
additively homomorphic like Paillier, but ciphertexts live modulo n (not n²), so every
homomorphic product, and so ``X^T·[[d]]`` (components/crypto/vector.py), costs about a
quarter of Paillier's at the same key length.

``key_length`` is the size of ``n = p²q`` in bits; p has ``key_length // 3`` bits and q
the rest. Security rests on factoring n = p²q: the number field sieve on n is as hard as
on an RSA modulus of that size, and ECM on the p of a 1024-bit key (341 bits) is far
beyond any recorded ECM factor (~274 bits), so the same bounds as Paillier's apply
(components/crypto/params.py: 1024 bits ~80-bit strength, 2048 recommended for long-lived
data; 256 with ``allow_short_key`` for tests). Semantic security is the p-subgroup
assumption.

Values are encoded exactly as Paillier's (components/crypto/paillier.py): fixed-point in
base 2 with an exponent; a negative ``m`` is ``p - |m|``; the plaintext space is Z_p
with ``max_int = 2**(bits(p) - 2)``, so the linear models do not care which scheme runs:
both produce :class:`~components.crypto.paillier.EncryptedNumber` objects whose key
tells them how to add a plaintext and how to re-randomise.

``g`` is derived from ``n`` by hashing (the key holder draws new primes in the ~2^-300
case where it is unsuitable), so a public key rebuilds from ``n`` alone, as Paillier's
does, and rides the wire codec's key table (components/crypto/paillier_wire.py).
Re-randomisation multiplies by ``h^r`` with ``r`` uniform of bits(n) bits, and ``g^m`` is
read the same way: fixed-base tables of byte windows (Paillier's), one product per byte.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import gmpy2
from gmpy2 import mpz, powmod

from components.crypto.fixed_point import _int_arg
from components.crypto.paillier import AdditivePrivateKey, AdditivePublicKey, _FixedBase, _random_prime
from components.crypto.params import MAX_KEY_BITS
from flow.core.errors import CryptoError

#: the shortest modulus accepted at all (p of 85 bits: tests only)
MIN_OU_BITS = 256


def _g_of(n: int) -> mpz:
    """The generator derived from ``n`` (SHA-256 counter stream reduced mod n)."""
    k = n.bit_length()
    seed = hashlib.sha256(b"fedweave/ou/g/" + n.to_bytes((k + 7) // 8, "big")).digest()
    stream = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(k // 256 + 2))
    g = mpz(int.from_bytes(stream, "big")) % n
    while g < 2 or gmpy2.gcd(g, n) != 1:  # only if g hit a factor of n or 0/1: practically never
        g += 1
    return g


class _Tables:
    """What a modulus's keys share, built once per process: g, h, and tables for h^r, g^m, g^-m."""

    def __init__(self, n: int):
        n_ = mpz(n)
        self.g = _g_of(n)
        self.h = powmod(self.g, n_, n_)
        self.h_table = _FixedBase(n_, self.h, n.bit_length())
        plain_bits = n.bit_length() // 3  # bits of p: every encodable |m| is shorter
        self.g_table = _FixedBase(n_, self.g, plain_bits)
        self.g_inv_table = _FixedBase(n_, gmpy2.invert(self.g, n_), plain_bits)


@lru_cache(maxsize=64)
def _tables_for(n: int) -> _Tables:
    return _Tables(n)


class OUPublicKey(AdditivePublicKey):
    """Public key; rebuilt from ``n`` alone (g and h derive from it)."""

    __slots__ = ("n", "nsquare", "max_int", "_n", "_n2", "_bits", "g", "h")
    scheme = "Okamoto-Uchiyama"

    def __init__(self, n: int):
        n = _int_arg(n, "Okamoto-Uchiyama public key modulus n")
        if n < (1 << (MIN_OU_BITS - 1)) or n % 2 == 0 or n.bit_length() > MAX_KEY_BITS:
            raise CryptoError(f"Okamoto-Uchiyama modulus n must be an odd number of {MIN_OU_BITS} "
                              f"to {MAX_KEY_BITS} bits")
        self.n, self._n = n, mpz(n)
        self._bits = n.bit_length()
        # ciphertexts live modulo n: _n2/nsquare name that modulus for the shared arithmetic
        self._n2, self.nsquare = self._n, n
        self.max_int = (1 << (self._bits // 3 - 2)) - 1  # p >= 3·2**(bits(p)-2): overflow stays detectable
        tables = _tables_for(n)
        self.g, self.h = tables.g, tables.h

    def _obfuscation_table(self) -> _FixedBase:
        """Fresh ``h^r mod n``."""
        return _tables_for(self.n).h_table

    def _add_plain(self, c: mpz, m: int) -> mpz:
        """``c · g^m mod n``, g^m from the fixed-base tables (|m| <= max_int fits them)."""
        return c * self._raw_encrypt(m) % self._n

    def _raw_encrypt(self, m: int) -> mpz:
        """``g^m mod n`` from the fixed-base tables (of g^-1 for a negative m)."""
        tables = _tables_for(self.n)
        return tables.g_table.power(m) if m >= 0 else tables.g_inv_table.power(-m)


class OUPrivateKey(AdditivePrivateKey):
    """Private key ``(p, q)``; decryption is one exponentiation modulo p²."""

    __slots__ = ("public_key", "_p", "_q", "_p2", "_g_inv", "_holder")

    def __init__(self, public_key: OUPublicKey, p: int, q: int):
        if not isinstance(public_key, OUPublicKey):
            raise CryptoError(f"OUPrivateKey needs an OUPublicKey, got {type(public_key).__name__}")
        p_, q_ = mpz(_int_arg(p, "prime p")), mpz(_int_arg(q, "prime q"))
        if p_ == q_ or p_ * p_ * q_ != public_key._n:
            raise CryptoError("private key primes p, q do not match the public key modulus n = p²·q")
        self.public_key, self._p, self._q, self._p2 = public_key, p_, q_, p_ * p_
        lg = self._log(public_key.g)
        if lg == 0:
            raise CryptoError("the generator derived from n is unsuitable for these primes; draw a new key")
        self._g_inv = gmpy2.invert(lg, p_)
        self._holder = None

    def _holder_moduli(self) -> tuple[mpz, mpz, mpz, int]:
        """h modulo p² and q, for the public draw of bits(n) bits: the holder's factor costs
        0.050 ms against the public table's 0.120 at 1024 bits."""
        tables = _tables_for(self.public_key.n)
        return tables.h, self._p2, self._q, tables.h_table.nbytes

    def _log(self, c: mpz) -> mpz:
        """``L(c^(p-1) mod p²) mod p``."""
        return (powmod(c, self._p - 1, self._p2) - 1) // self._p % self._p

    def __reduce__(self):
        return OUPrivateKey, (self.public_key, int(self._p), int(self._q))

    def __repr__(self) -> str:
        return f"OUPrivateKey(for {self.public_key!r})"

    def raw_decrypt(self, ciphertext: int) -> int:
        """The plaintext in ``[0, p)`` of a raw ciphertext integer."""
        return int(self._log(mpz(ciphertext)) * self._g_inv % self._p)

    def _plain_modulus(self) -> int:
        return int(self._p)


def generate_keypair(key_length: int = 1024) -> tuple[OUPublicKey, OUPrivateKey]:
    """A fresh key pair whose modulus ``n = p²q`` has exactly ``key_length`` bits."""
    if isinstance(key_length, bool) or not isinstance(key_length, int) or key_length < MIN_OU_BITS:
        raise CryptoError(f"Okamoto-Uchiyama key_length must be an integer of at least {MIN_OU_BITS} bits, "
                          f"got {key_length!r}")
    plen = key_length // 3
    while True:
        p, q = _random_prime(plen), _random_prime(key_length - 2 * plen)
        n = p * p * q
        if p == q or n.bit_length() != key_length:
            continue
        public = OUPublicKey(int(n))
        try:
            return public, OUPrivateKey(public, int(p), int(q))
        except CryptoError:  # g unsuitable for these primes (probability ~1/p): draw again
            continue
