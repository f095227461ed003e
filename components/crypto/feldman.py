"""Feldman verifiable secret sharing over the prime-order subgroup of an RFC 3526 safe prime.

A secret ``s`` in ``Z_q`` is shared among ``n`` parties (x-coordinates ``1..n``) with a random
polynomial ``f`` of degree ``n - 1`` (``f(0) = s``, the other coefficients uniform in ``Z_q``):
every party's share is needed to rebuild it, and any ``n - 1`` shares are uniform and
independent of ``s`` (as FATE's FeldmanVerifiableSum, which shares among all its parties). The
dealer publishes ``C_j = g^(a_j) mod p`` for each coefficient; a holder checks its share
``y = f(x)`` with ``g^y == prod_j C_j^(x^j)``. Shares add up: the sums of the shares a party
holds are shares of the sum of the secrets, checked against the products of the commitments.

``p = 2q + 1`` is the 2048-bit RFC 3526 prime (:func:`components.crypto.dh.modp_prime`) and
``g = 4`` generates its order-``q`` subgroup. The commitment to the constant term is
``g^s``: the shares hide ``s`` perfectly, but the commitment hides it only as far as ``s`` is
hard to guess (a party can test candidate values of a low-entropy secret), as in FATE.

Real numbers go through fixed point (:func:`encode`): ``round(v * 10^q_n)`` from ``v``'s shortest
decimal form, half to even, negative values as ``q - |v|``; a sum is exact in those units and
decoded (:func:`decode`) to a float64, so the result carries ``q_n`` decimals of each input and
float64's ~15-16 significant digits.

Many checks from one sender are batched with the small-exponent test: random 64-bit weights
``r_k`` and one check ``g^(sum r_k y_k) == prod_j (prod_k C_kj^r_k)^(x^j)``; a bad share escapes
it with probability at most ``2^-64`` because every commitment is first checked to lie in the
order-``q`` group (its Jacobi symbol is 1).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Sequence

import gmpy2
import numpy as np

from components.crypto.dh import modp_prime
from flow.core.errors import CryptoError

#: bits of the random weights of the batched check
BATCH_BITS = 64
#: window of the fixed-base tables for ``g``
_WINDOW = 8


@dataclass(frozen=True)
class Group:
    """``p = 2q + 1`` safe prime and ``g`` a generator of its order-``q`` subgroup."""

    p: int
    q: int
    g: int

    @property
    def width(self) -> int:
        """Bytes of one group element or exponent on the wire."""
        return (self.p.bit_length() + 7) // 8


@lru_cache(maxsize=None)
def modp_group(bits: int = 2048) -> Group:
    """The RFC 3526 group of ``bits`` bits with ``g = 4`` (a square, so of order ``q``)."""
    p = modp_prime(bits)
    return Group(p, (p - 1) // 2, 4)


@lru_cache(maxsize=4)
def _table(p: int, g: int, bits: int) -> list[list]:
    """``g^(d * 2^(w*i))`` for each window ``i`` and digit ``d``: ``g^e`` is then one product per window."""
    mp = gmpy2.mpz(p)
    rows, base = [], gmpy2.mpz(g)
    for _ in range((bits + _WINDOW - 1) // _WINDOW):
        row, acc = [gmpy2.mpz(1)], gmpy2.mpz(1)
        for _ in range((1 << _WINDOW) - 1):
            acc = acc * base % mp
            row.append(acc)
        rows.append(row)
        base = acc * base % mp
    return rows


def power_of_g(group: Group, e: int) -> int:
    """``g^e mod p`` with ``0 <= e < q`` from the fixed-base tables (several times a plain powmod)."""
    rows, mp = _table(group.p, group.g, group.q.bit_length()), gmpy2.mpz(group.p)
    acc = gmpy2.mpz(1)
    for i, digit in enumerate(int(e).to_bytes(len(rows), "little")):
        if digit:
            acc = acc * rows[i][digit] % mp
    return int(acc)


def random_coefficients(secret: int, degree: int, group: Group) -> list[int]:
    """``[secret, a_1, ..., a_degree]`` with the ``a_j`` uniform in ``Z_q``."""
    return [secret % group.q] + [secrets.randbelow(group.q) for _ in range(degree)]


def evaluate(coefficients: Sequence[int], x: int, q: int) -> int:
    """``f(x) mod q`` (Horner)."""
    acc = 0
    for a in reversed(coefficients):
        acc = (acc * x + a) % q
    return acc


def commit(coefficients: Sequence[int], group: Group) -> list[int]:
    """Feldman commitments ``g^a_j mod p``."""
    return [power_of_g(group, a % group.q) for a in coefficients]


def share(secret: int, n: int, group: Group, coefficients: Sequence[int] | None = None
          ) -> tuple[list[int], list[int]]:
    """Shares ``f(1..n)`` of ``secret`` (threshold ``n``) and the commitments; ``coefficients``
    (for tests) fixes the polynomial, whose constant term must be ``secret``."""
    if n < 1:
        raise CryptoError("a secret is shared among at least one party")
    coeffs = list(coefficients) if coefficients is not None else random_coefficients(secret, n - 1, group)
    if coeffs[0] % group.q != secret % group.q:
        raise CryptoError("the polynomial's constant term must be the secret")
    return [evaluate(coeffs, x, group.q) for x in range(1, n + 1)], commit(coeffs, group)


def in_group(value: int, group: Group) -> bool:
    """``value`` is an element of the order-``q`` subgroup (1 included)."""
    return 0 < value < group.p and gmpy2.jacobi(value, group.p) == 1


def verify(x: int, y: int, commitments: Sequence[int], group: Group) -> bool:
    """``g^y == prod_j C_j^(x^j)``: ``y`` is the share at ``x`` of the committed polynomial."""
    if not all(in_group(c, group) for c in commitments) or not 0 <= y < group.q:
        return False
    mp, rhs, xj = gmpy2.mpz(group.p), gmpy2.mpz(1), 1
    for c in commitments:
        rhs = rhs * gmpy2.powmod(c, xj, mp) % mp
        xj = xj * x % group.q
    return power_of_g(group, y) == int(rhs)


def verify_batch(x: int, ys: Sequence[int], commitments: Sequence[Sequence[int]], group: Group) -> bool:
    """All ``verify(x, ys[k], commitments[k])`` at once, up to a ``2^-64`` error (module doc)."""
    if len(ys) != len(commitments):
        return False
    if not ys:
        return True
    degree = len(commitments[0])
    mp = gmpy2.mpz(group.p)
    weighted, exponent = [gmpy2.mpz(1)] * degree, 0
    for y, cs in zip(ys, commitments):
        if len(cs) != degree or not 0 <= y < group.q or not all(in_group(c, group) for c in cs):
            return False
        r = secrets.randbits(BATCH_BITS) | 1
        exponent = (exponent + r * y) % group.q
        weighted = [w * gmpy2.powmod(c, r, mp) % mp for w, c in zip(weighted, cs)]
    rhs, xj = gmpy2.mpz(1), 1
    for w in weighted:
        rhs = rhs * gmpy2.powmod(w, xj, mp) % mp
        xj = xj * x % group.q
    return power_of_g(group, exponent) == int(rhs)


def check_shares(sender: str, x: int, ys: Sequence[int], commitments: Sequence[Sequence[int]], group: Group,
                 labels: Sequence[str] | None = None) -> None:
    """Raise a CryptoError naming ``sender`` (and the first bad item's label) unless every share checks."""
    if verify_batch(x, ys, commitments, group):
        return
    bad = next((k for k, (y, cs) in enumerate(zip(ys, commitments)) if not verify(x, y, cs, group)), None)
    where = f" ({labels[bad]})" if bad is not None and labels is not None and bad < len(labels) else ""
    raise CryptoError(f"Feldman verification failed: a share from {sender}{where} does not match its commitments")


def combine_commitments(per_party: Sequence[Sequence[int]], group: Group) -> list[int]:
    """Commitments of the sum of the parties' polynomials: the products of theirs, term by term."""
    mp = gmpy2.mpz(group.p)
    out = [gmpy2.mpz(1)] * len(per_party[0])
    for cs in per_party:
        out = [o * c % mp for o, c in zip(out, cs)]
    return [int(o) for o in out]


def lagrange_weights(xs: Sequence[int], q: int) -> list[int]:
    """Weights ``l_i`` with ``f(0) = sum_i l_i f(x_i)`` for any ``f`` of degree below ``len(xs)``."""
    if len(set(xs)) != len(xs) or any(x % q == 0 for x in xs):
        raise CryptoError("share x-coordinates must be distinct and non-zero")
    out = []
    for i, xi in enumerate(xs):
        num = den = 1
        for j, xj in enumerate(xs):
            if j != i:
                num, den = num * xj % q, den * (xj - xi) % q
        out.append(num * pow(den, -1, q) % q)
    return out


def reconstruct(points: dict[int, int], group: Group) -> int:
    """The secret from the shares ``{x: f(x)}`` (all ``n`` of them for threshold ``n``)."""
    xs = sorted(points)
    return sum(w * points[x] for w, x in zip(lagrange_weights(xs, group.q), xs)) % group.q


def encode(value: float, q_n: int, group: Group) -> int:
    """Fixed point: ``round(value * 10^q_n)`` (half to even) as an element of ``Z_q``."""
    if not np.isfinite(value):
        raise CryptoError(f"cannot share a non-finite value ({value})")
    scaled = int((Decimal(repr(float(value))).scaleb(q_n)).to_integral_value(ROUND_HALF_EVEN))
    if 2 * abs(scaled) >= group.q:
        raise CryptoError(f"value {value} is too large for fixed point with {q_n} decimals")
    return scaled % group.q


def decode(element: int, q_n: int, group: Group) -> float:
    """The float of a fixed-point element (above ``q/2``: negative)."""
    signed = element - group.q if element > group.q // 2 else element
    return float(Decimal(signed).scaleb(-q_n))


def to_bytes(values: Sequence[int], width: int) -> np.ndarray:
    """Integers as an ``(len, width)`` uint8 array (big-endian), for the wire."""
    raw = b"".join(int(v).to_bytes(width, "big") for v in values)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(values), width)


def from_bytes(array: np.ndarray, width: int) -> list[int]:
    """The inverse of :func:`to_bytes`; refuses any other shape."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 2 or array.shape[1] != width:
        raise CryptoError(f"malformed Feldman values: expected an (n, {width}) uint8 array")
    data = array.tobytes()
    return [int.from_bytes(data[i:i + width], "big") for i in range(0, len(data), width)]
