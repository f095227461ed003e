"""Fixed-point reals in the ring Z_2^k, additively shared between two parties (pure, no I/O).

A real ``x`` is the ring element ``round(x · 2^f) mod 2^k`` (``f`` = ``precision_bits``);
the top half of the ring holds the negatives. A value is shared as ``x = s0 + s1 mod 2^k``
with ``s0`` uniform, so either share alone is independent of ``x``. Sums and products by
public integers are local. A product of two encoded values carries ``2f`` fractional bits
and is brought back by truncating each share locally (SecureML, Mohassel–Zhang 2017):
party 0 shifts its share right, party 1 shifts the negation of its own and negates back.
The result is off by at most one unit in the last place, and wrong (off by ``2^(k-f)``)
with probability about ``|x| · 2^(f+1-k)``: at ``k = 64, f = 24`` a product near 10 fails
once in ~2^10 truncations, so models use ``k = 128``, where that is ~2^-70.

Ring arrays are numpy object arrays of Python ints in ``[0, 2^k)``; on the wire they are
uint64 limb arrays (:meth:`FixedPoint.to_wire`), which the federation codec carries.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from flow.core.errors import CryptoError

#: FATE's fractional bits for SSHE models
DEFAULT_PRECISION = 24
DEFAULT_RING_BITS = 64


def _as_ring(values) -> np.ndarray:
    return np.asarray(values, dtype=object)


@dataclass(frozen=True)
class FixedPoint:
    """The encoding and the share arithmetic of one ring ``Z_2^ring_bits``."""

    precision_bits: int = DEFAULT_PRECISION
    ring_bits: int = DEFAULT_RING_BITS

    def __post_init__(self) -> None:
        if self.ring_bits % 64 or not 64 <= self.ring_bits <= 1024:
            raise CryptoError(f"ring_bits must be a multiple of 64 in [64, 1024], got {self.ring_bits}")
        if not 0 < self.precision_bits <= self.ring_bits // 2 - 4:  # a product's 2f bits must fit
            raise CryptoError(f"precision_bits must be in [1, {self.ring_bits // 2 - 4}], got {self.precision_bits}")

    @property
    def modulus(self) -> int:
        return 1 << self.ring_bits

    # ------------------------------------------------------------------ encoding
    def encode(self, x) -> np.ndarray:
        """Reals (any shape) to ring elements."""
        arr = np.asarray(x, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise CryptoError("cannot encode NaN or infinity as fixed point")
        limit = 2.0 ** (self.ring_bits - self.precision_bits - 2)
        if arr.size and np.abs(arr).max() >= limit:
            raise CryptoError(f"value {np.abs(arr).max():g} overflows {self.ring_bits}-bit fixed point "
                              f"with {self.precision_bits} fractional bits")
        m = self.modulus
        scaled = np.ldexp(arr, self.precision_bits)
        if not arr.size or np.abs(scaled).max() < 2.0 ** 62:  # numpy rounds as round() does (half to even)
            return np.rint(scaled).astype(np.int64).astype(object) % m
        out = np.empty(arr.shape, dtype=object)
        out.flat[:] = [int(round(v)) % m for v in scaled.flat]
        return out

    def decode(self, ring) -> np.ndarray:
        """Ring elements to reals (the top half of the ring is negative)."""
        arr, m, half = _as_ring(ring), self.modulus, self.modulus >> 1
        out = np.empty(arr.shape, dtype=np.float64)
        out.flat[:] = [float((v - m) if v >= half else v) for v in arr.flat]
        return np.ldexp(out, -self.precision_bits)

    def encode_int(self, x) -> np.ndarray:
        """Integers (scale 1, no fractional bits) to ring elements: for public multipliers."""
        arr = np.asarray(x, dtype=object)
        return np.vectorize(lambda v: int(v) % self.modulus, otypes=[object])(arr) if arr.size else arr

    # ------------------------------------------------------------------ sharing
    def random(self, shape) -> np.ndarray:
        """Uniform ring elements (a CSPRNG: these are the masks of the shares)."""
        dims = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
        limbs, count = self.ring_bits // 64, int(np.prod(dims, dtype=np.int64))
        raw = np.frombuffer(secrets.token_bytes(8 * limbs * count), dtype="<u8").astype(np.uint64)
        return self.from_wire(raw.reshape(dims + (limbs,)))

    def share(self, ring) -> tuple[np.ndarray, np.ndarray]:
        """Two shares of ``ring``: a uniform mask and the rest."""
        r = self.random(np.shape(ring))
        return self.sub(ring, r), r

    def reconstruct(self, s0, s1) -> np.ndarray:
        return self.add(s0, s1)

    # ------------------------------------------------------------------ arithmetic (mod 2^k)
    def add(self, a, b) -> np.ndarray:
        return (_as_ring(a) + _as_ring(b)) % self.modulus

    def sub(self, a, b) -> np.ndarray:
        return (_as_ring(a) - _as_ring(b)) % self.modulus

    def neg(self, a) -> np.ndarray:
        return (-_as_ring(a)) % self.modulus

    def mul(self, a, b) -> np.ndarray:
        """Elementwise product (broadcasting) of ring arrays; 2f fractional bits if both are encoded."""
        return (_as_ring(a) * _as_ring(b)) % self.modulus

    def matmul(self, a, b) -> np.ndarray:
        return (_as_ring(a) @ _as_ring(b)) % self.modulus

    def add_public(self, share, ring, party: int) -> np.ndarray:
        """A share of ``x + c`` from a share of ``x`` and a public (or own) ring value ``c``:
        only party 0 adds it."""
        return self.add(share, ring) if party == 0 else _as_ring(share) % self.modulus

    def truncate(self, share, party: int, bits: int | None = None) -> np.ndarray:
        """This party's share of ``x / 2^bits`` (default ``f``: after a product), SecureML style."""
        bits = self.precision_bits if bits is None else bits
        s, m = _as_ring(share), self.modulus
        if party == 0:
            return s >> bits
        return (m - ((m - s) % m >> bits)) % m

    def scale(self, share, c, party: int) -> np.ndarray:
        """A share of ``x · c`` for a public real ``c`` (scalar or broadcastable array)."""
        return self.truncate(self.mul(share, self.encode(c)), party)

    # ------------------------------------------------------------------ wire
    def to_wire(self, ring) -> np.ndarray:
        """Ring elements as uint64 limbs (last axis, least significant first)."""
        arr, limbs = _as_ring(ring), self.ring_bits // 64
        mask = (1 << 64) - 1
        out = np.empty(arr.shape + (limbs,), dtype=np.uint64)
        for j in range(limbs):
            out[..., j] = (arr >> (64 * j)) & mask if arr.size else 0
        return out

    def from_wire(self, limbs) -> np.ndarray:
        """The inverse of :meth:`to_wire`, checked: anything else is refused."""
        arr = np.asarray(limbs)
        n = self.ring_bits // 64
        if arr.dtype != np.uint64 or arr.ndim < 1 or arr.shape[-1] != n:
            raise CryptoError(f"a {self.ring_bits}-bit ring array must arrive as uint64 limbs (..., {n}), "
                              f"got {arr.dtype} {arr.shape}")
        out = arr[..., 0].astype(object)
        for j in range(1, n):
            out = out + (arr[..., j].astype(object) << (64 * j))
        return np.asarray(out, dtype=object).reshape(arr.shape[:-1])
