"""Fixed-point encoding shared by the additive schemes (components/crypto/paillier.py, ou.py):
a value is ``round(value · 2**exponent)``; ints are exact (exponent 0), floats carry the
requested fractional bits, and every encoded magnitude is checked against the key's
``max_int`` so that negatives (stored as ``modulus - |m|``) stay apart from overflow."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gmpy2 import mpz

from flow.core.errors import CryptoError

_MPZ = type(mpz(1))


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer, _MPZ)) and not isinstance(value, (bool, np.bool_))


def _int_arg(value, what: str) -> int:
    if not _is_int(value):
        raise CryptoError(f"{what} must be an integer, got {type(value).__name__}")
    return int(value)


def _check_precision(precision_bits) -> int:
    if not _is_int(precision_bits) or not 0 <= precision_bits <= 1024:
        raise CryptoError(f"precision_bits must be an integer in [0, 1024], got {precision_bits!r}")
    return int(precision_bits)


def _exponent_for(value, precision_bits) -> int:
    """Floats are fixed-point with ``precision_bits`` fractional bits; ints are exact (0)."""
    return _check_precision(precision_bits) if isinstance(value, (float, np.floating)) else 0


def _scaled(value, exponent: int) -> int:
    """Exact ``round(value · 2**exponent)`` for Python/numpy ints and floats."""
    if _is_int(value):
        return int(value) << exponent
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            raise CryptoError(f"cannot encode the non-finite value {v!r}")
        try:
            return round(math.ldexp(v, exponent))
        except OverflowError:  # beyond float range: exact integer arithmetic
            num, den = v.as_integer_ratio()
            return (num << exponent) // den
    raise CryptoError(f"cannot encode a {type(value).__name__} value; expected an int or a float")


def _quantise(arr: np.ndarray, precision_bits, key: Any, what: str) -> tuple[np.ndarray, int]:
    """Array → (``round(x · 2**e)`` as int64 where it fits, else Python ints; e)."""
    if arr.dtype.kind == "O":
        if all(_is_int(v) for v in arr.flat):
            arr = arr.astype(object if arr.size else np.int64)
        else:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise CryptoError(f"{what} must be numbers; found a non-numeric item") from None
    kind = arr.dtype.kind
    if kind in "Obiu":  # exact integers; int64 only while sums of two cannot overflow it
        small = kind == "b" or (kind in "iu" and (not arr.size or -(2**61) < arr.min() and arr.max() < 2**61))
        ints, exponent = arr.astype(np.int64 if small else object), 0
    elif kind == "f":
        exponent = _check_precision(precision_bits)
        if not np.isfinite(arr).all():
            raise CryptoError(f"{what} contain NaN or infinity")
        with np.errstate(over="ignore"):  # inf here means "too big for int64": exact path below
            scaled = np.ldexp(arr.astype(np.float64), exponent)
        if not arr.size or np.abs(scaled).max() < 2.0**61:
            ints = np.rint(scaled).astype(np.int64)
        else:
            ints = np.array([_scaled(float(v), exponent) for v in arr.flat], dtype=object).reshape(arr.shape)
    else:
        raise CryptoError(f"{what} must be numeric, got dtype {arr.dtype}")
    if ints.dtype == object and ints.size and max(abs(int(v)) for v in ints.flat) > key.max_int:
        raise CryptoError(f"{what} overflow the {key._bits}-bit {key.scheme} plaintext space at 2**{exponent} scaling")
    return ints, exponent
