"""Paillier encryption on gmpy2, tuned for the vertical-LR hot path.

Scheme: ``g = n + 1``, so ``Enc(m) = (1 + m·n) · ρ mod n²`` where ``ρ`` is the
obfuscator. Values are fixed-point in base 2: an :class:`EncryptedNumber` with exponent
``e`` holds ``round(value · 2**e) mod n``; negatives are stored as ``n - |m|`` and
plaintexts in ``(max_int, n - max_int)`` mean overflow.

Obfuscation (Damgård–Jurik–Nielsen 2010, §4.2): instead of ``r^n`` with a 1024-bit
exponent, ``ρ = h_n^a mod n²`` with the public ``h_n = h^n``, ``h = -x² mod n`` and
``a`` uniform with ``8·⌈⌈k/2⌉/8⌉`` bits (512 at k = 1024). Like ``r^n`` it is a random
n-th residue; semantic security rests on DCR plus the short-exponent assumption for
``<h_n>`` (DJN; Koshiba–Kurosawa), and a ``k/2``-bit exponent keeps generic (kangaroo)
attacks at ``2^(k/4)`` work, far above the key's factoring strength. ``x`` is derived from
``n`` by hashing, so the key rebuilds from ``n`` alone and no discrete log of ``h`` is known.
``h_n`` is fixed, so ``h_n^a`` uses a fixed-base table of byte windows: 63 modular
multiplications instead of a 512-bit exponentiation.

Obfuscation is lazy: arithmetic works on raw values, and every ciphertext gets fresh
randomness when it is first exposed through :attr:`EncryptedNumber.ciphertext` (what
the wire codec reads). So a value never leaves the party without randomness its
receiver does not know, and intermediates never pay for it twice.

Keys and ciphertexts cross a party line through :mod:`components.crypto.paillier_wire`,
imported at the end of this module so that whoever holds these objects can send them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import weakref
from functools import lru_cache
from typing import Iterable

import gmpy2
import numpy as np
from gmpy2 import mpz, powmod

from components.crypto.fixed_point import _exponent_for, _int_arg, _is_int, _quantise, _scaled
from components.crypto.params import MAX_KEY_BITS
from flow.core import metrics_hook
from flow.core.errors import CryptoError

#: fractional bits used to encode floats (plaintexts and scalars); 2**-32 ≈ 2.3e-10
DEFAULT_PRECISION = 32
_ONE = mpz(1)
_WINDOW = 8  # bits per fixed-base table window: one table row per random byte


class _Obfuscator:
    """Fixed-base table for ``h_n^a``: ``rows[k][v] = h_n^(v · 256^k) mod n²``."""

    def __init__(self, n: mpz, n2: mpz):
        self.n2 = n2
        k = int(n.bit_length())
        self.nbytes = -(-((k + 1) // 2) // _WINDOW)
        seed = hashlib.sha256(b"fedweave/paillier/h/" + int(n).to_bytes((k + 7) // 8, "big")).digest()
        stream = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(k // 256 + 2))
        x = mpz(int.from_bytes(stream, "big")) % n
        while gmpy2.gcd(x, n) != 1:  # only if x hit a factor of n: practically never
            x += 1
        self.h_n = powmod(n - x * x % n, n, n2)
        self._rows: list[list[mpz]] | None = None
        self._reserve: list[mpz] = []

    def _build(self) -> list[list[mpz]]:
        rows, base, n2 = [], self.h_n, self.n2
        for _ in range(self.nbytes):
            row = [_ONE, base]
            for _ in range(2, 1 << _WINDOW):
                row.append(row[-1] * base % n2)
            rows.append(row)
            base = row[-1] * base % n2
        self._rows = rows
        return rows

    def factor(self) -> mpz:
        """A fresh ``h_n^a`` for uniform ``a`` of ``8·nbytes`` bits: one :meth:`prepare` drew
        ahead (taken out, so used once), else drawn now."""
        try:
            return self._reserve.pop()
        except IndexError:
            return self._draw()

    def _draw(self) -> mpz:
        rows, n2, acc = self._rows or self._build(), self.n2, _ONE
        for row, byte in zip(rows, os.urandom(self.nbytes)):
            if byte:
                acc = acc * row[byte] % n2
        return acc

    def prepare(self, count: int, up_to: int) -> bool:
        """Draw up to ``count`` factors ahead of need, holding at most ``up_to``: work for the
        moments a party only waits for a peer. Whether it holds fewer than ``up_to``.
        Held factors stay in this process: a forked child drops its copy (no randomness
        may serve two ciphertexts), and the tables are never pickled."""
        reserve = self._reserve
        _RESERVES.add(self)
        for _ in range(min(count, up_to - len(reserve))):
            reserve.append(self._draw())
        return len(reserve) < up_to


class _FixedBase(_Obfuscator):
    """Powers of any fixed base modulo any modulus from the same byte-window table:
    ``power(e)`` is ``base^e`` for ``0 <= e < 2**(8·nbytes)``, one product per non-zero byte."""

    def __init__(self, modulus: mpz, base: mpz, bits: int):  # not Paillier's h_n: the base is given
        self.n2, self.h_n, self._rows = modulus, base % modulus, None
        self._reserve = []
        self.nbytes = (bits + 7) // 8

    def power(self, e: int) -> mpz:
        rows, m, acc = self._rows or self._build(), self.n2, _ONE
        for row, byte in zip(rows, e.to_bytes(self.nbytes, "little")):
            if byte:
                acc = acc * row[byte] % m
        return acc


#: the tables holding factors drawn ahead, emptied in a forked child (os.register_at_fork below)
_RESERVES: weakref.WeakSet[_Obfuscator] = weakref.WeakSet()


def _forget_reserves() -> None:
    for table in list(_RESERVES):
        table._reserve.clear()


os.register_at_fork(after_in_child=_forget_reserves)


def _crt(xp: mpz, mp: mpz, xq: mpz, mq: mpz, mq_inv: mpz) -> mpz:
    """The x modulo mp·mq with x = xp (mod mp) and x = xq (mod mq), by Garner's recombination;
    ``mq_inv`` = mq^-1 mod mp."""
    return xq + mq * ((xp - xq) * mq_inv % mp)


@lru_cache(maxsize=64)
def _obfuscator_for(n: int) -> _Obfuscator:
    """One table per modulus and process, shared by every key object with that ``n``."""
    n_ = mpz(n)
    return _Obfuscator(n_, n_ * n_)


class AdditivePublicKey:
    """What :class:`EncryptedNumber` needs of a scheme's public key, so that Paillier and
    Okamoto–Uchiyama (components/crypto/ou.py) share one ciphertext type and one
    ``encrypted_dot``. ``_n2`` is the modulus ciphertexts live in (n² for Paillier, n for
    OU), ``max_int`` the largest encodable magnitude, ``_bits`` the size of n."""

    __slots__ = ()
    n: int
    nsquare: int
    max_int: int
    _n: mpz
    _n2: mpz
    _bits: int
    #: the scheme's name in messages ("Paillier", "Okamoto-Uchiyama")
    scheme = "Paillier"

    def encode(self, value: float | int, exponent: int) -> int:
        """``round(value · 2**exponent)`` as a signed int, checked against ``max_int``."""
        m = _scaled(value, exponent)
        if abs(m) > self.max_int:
            raise CryptoError(f"value {value!r} scaled by 2**{exponent} overflows the {self._bits}-bit "
                              f"{self.scheme} plaintext space (limit ±2**{self.max_int.bit_length()})")
        return m

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.n == self.n

    def __hash__(self) -> int:
        return hash((self.scheme, self.n))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._bits} bits, {self.fingerprint()})"

    def __reduce__(self):
        return type(self), (self.n,)

    def obfuscator(self) -> mpz:
        """A fresh random factor that re-randomises a ciphertext (the scheme's own table)."""
        return self._obfuscation_table().factor()

    def prepare_obfuscators(self, count: int, up_to: int) -> bool:
        """Draw up to ``count`` of :meth:`obfuscator`'s factors now, for later encryptions,
        holding at most ``up_to`` (in this process); whether it holds fewer."""
        return self._obfuscation_table().prepare(count, up_to)

    def prepared_obfuscators(self) -> int:
        """How many factors :meth:`prepare_obfuscators` holds now, in this process."""
        return len(self._obfuscation_table()._reserve)

    def _obfuscation_table(self) -> _Obfuscator:
        raise NotImplementedError

    def _raw_encrypt(self, m: int) -> mpz:
        """The (not yet re-randomised) ciphertext of the encoded plaintext ``m``."""
        raise NotImplementedError

    def encrypt(self, value: float | int, precision_bits: int = DEFAULT_PRECISION) -> EncryptedNumber:
        """Encrypt ``value``; floats carry ``precision_bits`` fractional bits, ints are exact."""
        exponent = _exponent_for(value, precision_bits)
        m = self.encode(value, exponent)
        metrics_hook.current().paillier("encrypt")
        return _new(self, self._raw_encrypt(m), exponent)

    def encrypt_many(self, values, precision_bits: int = DEFAULT_PRECISION) -> list[EncryptedNumber]:
        """Encrypt a 1-D array or list; one exponent for all (``precision_bits``, 0 for int arrays)."""
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise CryptoError(f"encrypt_many needs a 1-D array or list, got shape {arr.shape}")
        ints, exponent = _quantise(arr, precision_bits, self, "encrypt_many values")
        raw = self._raw_encrypt
        metrics_hook.current().paillier("encrypt", len(ints))
        return [_new(self, raw(m), exponent) for m in ints.tolist()]

    def fingerprint(self) -> str:
        """Short stable id of the key (SHA-256 of n, 32 hex digits) for logs and checks."""
        return hashlib.sha256(self.n.to_bytes((self._bits + 7) // 8, "big")).hexdigest()[:32]

    def _add_plain(self, c: mpz, m: int) -> mpz:
        """The ciphertext of ``Dec(c) + m`` (``m`` an encoded plaintext), not re-randomised."""
        raise NotImplementedError


class PaillierPublicKey(AdditivePublicKey):
    """Public key; rebuilt from ``n`` alone. Construction is cheap (table is cached)."""

    __slots__ = ("n", "nsquare", "max_int", "_n", "_n2", "_bits")

    def __init__(self, n: int):
        n = _int_arg(n, "Paillier public key modulus n")
        if n < (1 << 127) or n % 2 == 0 or n.bit_length() > MAX_KEY_BITS:
            raise CryptoError(f"Paillier public key modulus n must be an odd number of 128 to {MAX_KEY_BITS} bits")
        self.n, self._n = n, mpz(n)
        self._n2 = self._n * self._n
        self.nsquare = int(self._n2)
        self.max_int = n // 3 - 1
        self._bits = n.bit_length()

    def _obfuscation_table(self) -> _Obfuscator:
        """Random n-th residues ``h_n^a mod n²`` (see the module docstring)."""
        return _obfuscator_for(self.n)

    def _add_plain(self, c: mpz, m: int) -> mpz:
        """``c · (1 + m·n) = c + n · (c·m mod n)  (mod n²)``."""
        n = self._n
        return (c + n * (c * m % n)) % self._n2

    def _raw_encrypt(self, m: int) -> mpz:
        """``g^m = 1 + m·n  (mod n²)`` with ``g = n + 1``."""
        return 1 + m % self._n * self._n


class EncryptedNumber:
    """A ciphertext of ``round(value · 2**exponent)`` under ``public_key``. Immutable in value."""

    __slots__ = ("public_key", "_c", "exponent", "_obfuscated")
    __array_priority__ = 100  # so ``numpy_scalar * enc`` defers to our __rmul__

    def __init__(self, public_key: AdditivePublicKey, ciphertext: int, exponent: int):
        if not isinstance(public_key, AdditivePublicKey):
            raise CryptoError(f"EncryptedNumber needs a PaillierPublicKey, got {type(public_key).__name__}")
        c = _int_arg(ciphertext, "ciphertext")
        if not 0 < c < public_key.nsquare:
            raise CryptoError("ciphertext is out of range for its public key (must be in (0, n²) for Paillier)")
        e = _int_arg(exponent, "exponent")
        if not 0 <= e <= public_key._bits:
            raise CryptoError(f"exponent {e} is out of range [0, {public_key._bits}] for this key")
        self.public_key, self._c, self.exponent = public_key, mpz(c), e
        self._obfuscated = True  # a ciphertext given from outside is exposed as it is

    @property
    def ciphertext(self) -> int:
        """The ciphertext to send; re-randomised once, on first access, if it is not yet."""
        if not self._obfuscated:
            self._c = self._c * self.public_key.obfuscator() % self.public_key._n2
            self._obfuscated = True
        return int(self._c)

    def obfuscate(self) -> EncryptedNumber:
        """Apply the fresh randomness now (e.g. inside a worker process); returns self."""
        self.ciphertext  # noqa: B018 - the property does the work
        return self

    def __reduce__(self):  # local worker processes only; the wire uses paillier_wire.py
        return _new, (self.public_key, self._c, self.exponent, self._obfuscated)

    def __repr__(self) -> str:
        return f"EncryptedNumber(exponent={self.exponent}, key={self.public_key.fingerprint()[:8]})"

    def _key_of(self, other: EncryptedNumber) -> AdditivePublicKey:
        if other.public_key is not self.public_key and other.public_key.n != self.public_key.n:
            raise CryptoError("cannot combine ciphertexts encrypted under different Paillier public keys")
        return self.public_key

    def __add__(self, other) -> EncryptedNumber:
        key = self.public_key
        if isinstance(other, EncryptedNumber):
            if other.public_key is not key:
                self._key_of(other)
            if other.exponent == self.exponent:
                return _new(key, self._c * other._c % key._n2, self.exponent)
            n2, e = key._n2, max(self.exponent, other.exponent)  # align: scale the lower one up
            return _new(key, _rescale(self._c, e - self.exponent, n2) * _rescale(other._c, e - other.exponent, n2)
                        % n2, e)
        return self._plus(key.encode(other, self.exponent))

    __radd__ = __add__

    def _plus(self, m: int) -> EncryptedNumber:
        """Add the encoded plaintext ``m`` (the key's scheme says how)."""
        if m == 0:
            return self
        return _new(self.public_key, self.public_key._add_plain(self._c, m), self.exponent)

    def __neg__(self) -> EncryptedNumber:
        try:
            return _new(self.public_key, gmpy2.invert(self._c, self.public_key._n2), self.exponent)
        except ZeroDivisionError:
            raise CryptoError("ciphertext is not invertible modulo n²: it is malformed") from None

    def __sub__(self, other) -> EncryptedNumber:
        if isinstance(other, EncryptedNumber):
            return self + (-other)
        return self._plus(-self.public_key.encode(other, self.exponent))

    def __rsub__(self, other) -> EncryptedNumber:
        return (-self) + other

    def multiply(self, scalar: float | int, precision_bits: int = DEFAULT_PRECISION) -> EncryptedNumber:
        """``self · scalar``: floats are encoded with ``precision_bits`` (exponents add), ints exactly."""
        if isinstance(scalar, EncryptedNumber):
            raise CryptoError("Paillier cannot multiply two ciphertexts; multiply by a plain number")
        key = self.public_key
        exponent = _exponent_for(scalar, precision_bits)
        k = _scaled(scalar, exponent)
        if abs(k) > key.max_int:
            raise CryptoError(f"scalar {scalar!r} overflows the {key._bits}-bit Paillier plaintext space")
        try:
            c = powmod(self._c, k, key._n2)  # negative k: gmpy2 inverts, no ~n-sized exponent
        except ZeroDivisionError:
            raise CryptoError("ciphertext is not invertible modulo n²: it is malformed") from None
        metrics_hook.current().paillier("multiply")
        return _new(key, c, self.exponent + exponent)

    def __mul__(self, scalar) -> EncryptedNumber:
        return self.multiply(scalar)

    __rmul__ = __mul__

    def __truediv__(self, scalar) -> EncryptedNumber:
        if not (_is_int(scalar) or isinstance(scalar, (float, np.floating))) or scalar == 0:
            raise CryptoError("an EncryptedNumber can only be divided by a non-zero plain int or float")
        return self.multiply(1.0 / float(scalar))


def _new(key: AdditivePublicKey, c: mpz, exponent: int, obfuscated: bool = False) -> EncryptedNumber:
    """Unchecked constructor for results of our own arithmetic (never obfuscated yet)."""
    obj = _alloc(EncryptedNumber)
    obj.public_key = key
    obj._c = c
    obj.exponent = exponent
    obj._obfuscated = obfuscated
    return obj


_alloc = object.__new__


def _rescale(c: mpz, shift: int, n2: mpz) -> mpz:
    """Multiply the plaintext by ``2**shift`` (raise the exponent by ``shift``)."""
    return powmod(c, _ONE << shift, n2) if shift else c


class AdditivePrivateKey:
    """Decoding shared by the schemes' private keys: a plaintext in ``[0, modulus)`` above
    ``max_int`` is negative, unless it lies in the gap between the two (overflow)."""

    __slots__ = ()
    public_key: AdditivePublicKey
    _p: mpz
    _q: mpz
    _holder: tuple[_FixedBase, _FixedBase, mpz, int] | None  # built on the first obfuscator()

    def raw_decrypt(self, ciphertext: int) -> int:
        raise NotImplementedError

    def _plain_modulus(self) -> int:
        """The modulus of the plaintext space (n for Paillier, p for OU)."""
        raise NotImplementedError

    def _holder_moduli(self) -> tuple[mpz, mpz, mpz, int]:
        """The public factor's base, the moduli over p and over q whose product is the
        ciphertext modulus, and the public draw's width in bytes."""
        raise NotImplementedError

    def obfuscator(self) -> mpz:
        """What the public key's ``obfuscator()`` returns, computed by the key holder modulo
        the prime factors and recombined: the base has order dividing p-1 over p's modulus
        and q-1 over q's, so the draw reduces to a prime's size on each side. The same value
        for the same random draw, so the same distribution of ciphertexts."""
        if self._holder is None:
            base, mod_p, mod_q, nbytes = self._holder_moduli()
            self._holder = (_FixedBase(mod_p, base, int(self._p.bit_length())),
                            _FixedBase(mod_q, base, int(self._q.bit_length())), gmpy2.invert(mod_q, mod_p), nbytes)
        tp, tq, mod_q_inv, nbytes = self._holder
        a = int.from_bytes(os.urandom(nbytes), "little")
        return _crt(tp.power(a % int(self._p - 1)), tp.n2, tq.power(a % int(self._q - 1)), tq.n2, mod_q_inv)

    def encrypt(self, value: float | int, precision_bits: int = DEFAULT_PRECISION) -> EncryptedNumber:
        """``public_key.encrypt(value)`` with its randomness applied now, by :meth:`obfuscator`:
        for a party that encrypts under its own key (SecureBoost's guest)."""
        c = self.public_key.encrypt(value, precision_bits)
        c._c = c._c * self.obfuscator() % self.public_key._n2
        c._obfuscated = True
        return c

    @property
    def plain_modulus(self) -> int:
        """The modulus of the plaintext space: a raw decryption above half of it is a negative value."""
        return self._plain_modulus()

    def decrypt(self, value: EncryptedNumber) -> float:
        """Decrypt and decode to a float; raises CryptoError on a wrong key or overflow."""
        if not isinstance(value, EncryptedNumber):
            raise CryptoError(f"decrypt needs an EncryptedNumber, got {type(value).__name__}")
        key = self.public_key
        if value.public_key is not key and value.public_key.n != key.n:
            raise CryptoError("cannot decrypt: the ciphertext was encrypted under a different public key")
        m = self.raw_decrypt(value._c)
        metrics_hook.current().paillier("decrypt")
        if m > key.max_int:
            modulus = self._plain_modulus()
            if m < modulus - key.max_int:
                raise CryptoError(f"decryption overflow: the encrypted result exceeds the {key.scheme} plaintext "
                                  "space (too large values or too many fractional bits)")
            m -= modulus
        try:
            return m / (1 << value.exponent) if value.exponent else float(m)
        except OverflowError:
            raise CryptoError("decrypted value is too large for a float") from None

    def decrypt_many(self, values: Iterable[EncryptedNumber]) -> np.ndarray:
        return np.array([self.decrypt(v) for v in values], dtype=np.float64)


class PaillierPrivateKey(AdditivePrivateKey):
    """Private key ``(p, q)``; decrypts with the CRT (two half-size exponentiations)."""

    __slots__ = ("public_key", "_p", "_q", "_p2", "_q2", "_hp", "_hq", "_q_inv", "_holder")

    def __init__(self, public_key: PaillierPublicKey, p: int, q: int):
        if not isinstance(public_key, PaillierPublicKey):
            raise CryptoError(f"PaillierPrivateKey needs a PaillierPublicKey, got {type(public_key).__name__}")
        p_, q_ = mpz(_int_arg(p, "prime p")), mpz(_int_arg(q, "prime q"))
        if p_ == q_ or p_ * q_ != public_key._n:
            raise CryptoError("private key primes p, q do not match the public key modulus n = p·q")
        self.public_key, self._p, self._q = public_key, p_, q_
        self._p2, self._q2 = p_ * p_, q_ * q_
        self._hp = self._h(p_, self._p2)
        self._hq = self._h(q_, self._q2)
        self._q_inv = gmpy2.invert(q_, p_)
        self._holder = None

    def _holder_moduli(self) -> tuple[mpz, mpz, mpz, int]:
        """h_n modulo p² and q²: at 1024 bits the holder's factor costs about what the public
        table's does (0.14 ms each, measured twice); OU's gains more (ou.py)."""
        table = _obfuscator_for(self.public_key.n)
        return table.h_n, self._p2, self._q2, table.nbytes

    def _h(self, prime: mpz, prime2: mpz) -> mpz:
        """``L_p(g^(p-1) mod p²)^-1 mod p`` with ``L_p(x) = (x-1)/p``."""
        return gmpy2.invert((powmod(self.public_key._n + 1, prime - 1, prime2) - 1) // prime, prime)

    def __reduce__(self):  # the holder's tables are rebuilt where needed
        return PaillierPrivateKey, (self.public_key, int(self._p), int(self._q))

    def __repr__(self) -> str:
        return f"PaillierPrivateKey(for {self.public_key!r})"

    def raw_decrypt(self, ciphertext: int) -> int:
        """The plaintext in ``[0, n)`` of a raw ciphertext integer."""
        c = mpz(ciphertext)
        p, q = self._p, self._q
        mp = (powmod(c, p - 1, self._p2) - 1) // p * self._hp % p
        mq = (powmod(c, q - 1, self._q2) - 1) // q * self._hq % q
        return int(_crt(mp, p, mq, q, self._q_inv))

    def _plain_modulus(self) -> int:
        return self.public_key.n


def _random_prime(bits: int) -> mpz:
    """A random prime of exactly ``bits`` bits with the top two bits set (so |p·q| is exact)."""
    while True:
        p = gmpy2.next_prime(mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)) | 1)
        if p.bit_length() == bits and gmpy2.is_prime(p, 40):
            return p


def generate_keypair(key_length: int = 1024) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """A fresh key pair whose modulus has exactly ``key_length`` bits (even, at least 256)."""
    if isinstance(key_length, bool) or not isinstance(key_length, int) or key_length < 256 or key_length % 2:
        raise CryptoError(f"Paillier key_length must be an even integer of at least 256 bits, got {key_length!r}")
    half = key_length // 2
    while True:
        p, q = _random_prime(half), _random_prime(half)
        if p != q and (p * q).bit_length() == key_length:
            public = PaillierPublicKey(int(p * q))
            return public, PaillierPrivateKey(public, int(p), int(q))


# last: the wire codec of these types needs them defined (it imports this module back)
from components.crypto import paillier_wire as _paillier_wire  # noqa: E402,F401
