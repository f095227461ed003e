"""Vector operations on Paillier (and OU) ciphertexts: sums and ``X^T · [[d]]`` for the vertical-LR hot path.

Kept apart from :mod:`components.crypto.paillier` (keys, single ciphertexts) because the
matrix product has its own machinery: row blocks, subset tables and a shared-base
multi-exponentiation. Both functions are re-exported by ``paillier`` and by the package.
"""

from __future__ import annotations

from functools import reduce
from typing import Iterable, Sequence

import numpy as np
from gmpy2 import mpz, powmod

from components.crypto.fixed_point import _quantise
from components.crypto.paillier import (
    _ONE,
    DEFAULT_PRECISION,
    AdditivePublicKey,
    EncryptedNumber,
    _new,
    _rescale,
)
from flow.core import metrics_hook
from flow.core.errors import CryptoError

_DOT_ROWS = 2048  # rows per encrypted_dot block: its subset tables stay under ~20 MB at 1024 bits


def _same_key(values: Sequence[EncryptedNumber], what: str) -> AdditivePublicKey:
    """The one public key of a non-empty sequence of ciphertexts, or CryptoError."""
    if not values:
        raise CryptoError(f"{what} needs at least one EncryptedNumber")
    for v in values:
        if not isinstance(v, EncryptedNumber):
            raise CryptoError(f"{what} needs EncryptedNumber items, got {type(v).__name__}")
    key = values[0].public_key
    if any(v.public_key is not key and v.public_key.n != key.n for v in values):
        raise CryptoError("cannot combine ciphertexts encrypted under different Paillier public keys")
    return key


def encrypted_sum(values: Iterable[EncryptedNumber]) -> EncryptedNumber:
    """Σ values: one modular product per item; each distinct exponent is rescaled once."""
    values = list(values)
    key = _same_key(values, "encrypted_sum")
    n2, groups = key._n2, dict[int, mpz]()
    for v in values:
        prev = groups.get(v.exponent)
        groups[v.exponent] = v._c if prev is None else prev * v._c % n2
    e = max(groups)
    return _new(key, reduce(lambda acc, item: acc * _rescale(item[1], e - item[0], n2) % n2, groups.items(), _ONE), e)


def encrypted_dot(cipher: Sequence[EncryptedNumber], X,
                  precision_bits: int = DEFAULT_PRECISION) -> list[EncryptedNumber]:
    """``X^T · [[d]]``: for column j, ``Π_i [[d_i]]^{K_ij}`` with ``K = round(X · 2**p)``.

    Float X uses ``precision_bits`` fractional bits (result exponent = exponent of d + p);
    integer X is exact. Signs: with ``o_j = max(0, -min_i K_ij)`` all exponents
    ``K_ij + o_j`` are non-negative, and the column is corrected once by
    ``(Π_i [[d_i]])^{-o_j}``. The products themselves are a shared-base
    multi-exponentiation, see :func:`_multi_exp`. At 569x30 and 1024 bits this measured
    ~5x faster than one ``powmod`` per entry and 5-10% faster than Pippenger buckets.
    """
    key = _same_key(cipher, "encrypted_dot")
    exponent = max(c.exponent for c in cipher)
    n2 = key._n2
    cs = [_rescale(c._c, exponent - c.exponent, n2) for c in cipher]
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != len(cs):
        raise CryptoError(f"encrypted_dot: X must be 2-D with {len(cs)} rows (one per ciphertext), "
                          f"got shape {np.shape(X)}")
    ints, x_exp = _quantise(arr, precision_bits, key, "encrypted_dot X values")
    if exponent + x_exp > key._bits:  # EncryptedNumber (and so the wire codec) would refuse the results
        raise CryptoError(f"encrypted_dot: precision_bits={precision_bits} makes the result exponent "
                          f"{exponent + x_exp}; a {key._bits}-bit key allows at most {key._bits}")
    offsets = [max(0, -int(v)) for v in ints.min(axis=0)]
    shifted = ints + np.array(offsets, dtype=ints.dtype)
    acc = [_ONE] * arr.shape[1]
    for start in range(0, len(cs), _DOT_ROWS):  # row blocks bound the tables' memory
        part = _multi_exp(cs[start:start + _DOT_ROWS], shifted[start:start + _DOT_ROWS], n2)
        acc = [a * b % n2 for a, b in zip(acc, part)]
    if any(offsets):
        total = reduce(lambda t, c: t * c % n2, cs, _ONE)
        acc = [a * powmod(total, -o, n2) % n2 if o else a for a, o in zip(acc, offsets)]
    metrics_hook.current().paillier("dot_term", int(arr.shape[0] * arr.shape[1]))  # ciphertext x column products
    return [_new(key, a, exponent + x_exp) for a in acc]


def _multi_exp(cs: list[mpz], E: np.ndarray, n2: mpz) -> list[mpz]:
    """``Π_i cs[i]^E[i, j]`` for every column j of a non-negative integer matrix E.

    Rows are cut into groups of ``g``; each group gets the table of all ``2**g`` subset
    products of its ciphertexts, shared by every column and bit. A column is then
    evaluated from its top bit down: square, then per group one lookup of the subset of
    rows whose exponent has that bit set and one multiplication. Cost per block:
    ``(rows/g) · (2**g + Σ_j bits_j)`` modular products; ``g`` minimises it.
    """
    rows, cols = E.shape
    col_bits = [int(v).bit_length() for v in E.max(axis=0)] if rows else [0] * cols
    g = min(range(1, 13), key=lambda g: -(-rows // g) * ((1 << g) + sum(col_bits)))
    tables = _subset_tables(cs, g, n2)
    padded = np.zeros((len(tables) * g, cols), dtype=E.dtype)
    padded[:rows] = E
    blocks = padded.reshape(len(tables), g, cols)
    weights = (1 << np.arange(g, dtype=np.int64))[None, :, None]
    # lookups[j][bit][group] = which subset of the group's rows has that bit set in column j
    planes = [(((blocks >> b) & 1) * weights).sum(axis=1) for b in range(max(col_bits, default=0))]
    lookups = np.array(planes, dtype=np.int64).reshape(len(planes), len(tables), cols).transpose(2, 0, 1).tolist()
    out = []
    for j in range(cols):
        acc = _ONE
        for bit in range(col_bits[j] - 1, -1, -1):
            acc = acc * acc % n2
            for table, t in zip(tables, lookups[j][bit]):
                if t:
                    acc = acc * table[t] % n2
        out.append(acc)
    return out


def _subset_tables(cs: list[mpz], g: int, n2: mpz) -> list[list[mpz]]:
    """For each group of ``g`` ciphertexts, ``table[t] = Π_{bit u of t set} c_u`` (2**g entries)."""
    tables = []
    for start in range(0, len(cs), g):
        table = [_ONE]
        for c in cs[start:start + g]:
            table += [c] + [x * c % n2 for x in table[1:]]
        table += [_ONE] * ((1 << g) - len(table))  # short last group: padded rows are zero
        tables.append(table)
    return tables
