"""Edwards25519 point arithmetic on Python ints, for the base OT of components/mpc/ot.py:
``cryptography``'s X25519 does the scalar multiplications that need only an x-coordinate but
cannot add points, which the "simplest OT" needs (``bG + c·A``, ``B - A``)."""

from __future__ import annotations

from flow.core.errors import CryptoError

POINT = 32

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
_IDENTITY: _Point = (0, 1, 1, 0)


def _add(p: _Point, q: _Point) -> _Point:
    """Unified addition (Hisil et al., a = -1): also doubles."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * _D * t1 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _neg(p: _Point) -> _Point:
    return (-p[0]) % _P, p[1], p[2], (-p[3]) % _P


def _base() -> _Point:
    y = 4 * pow(5, _P - 2, _P) % _P
    return _decode_xy(y, 0)


def _decode_xy(y: int, sign: int) -> _Point:
    """The point with this y and x's parity ``sign`` (RFC 8032 §5.1.3); CryptoError if none."""
    if y >= _P:
        raise CryptoError("malformed curve point: y is not reduced")
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if v * x * x % _P == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif v * x * x % _P != u:
        raise CryptoError("malformed curve point: not on Curve25519")
    if x == 0 and sign:
        raise CryptoError("malformed curve point: bad sign of x = 0")
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


_TABLE: list[_Point] = []


def _mul_base(k: int) -> _Point:
    """k·G from a table of 2^i·G (built once)."""
    if not _TABLE:
        p = _base()
        for _ in range(256):
            _TABLE.append(p)
            p = _add(p, p)
    acc = _IDENTITY
    for i in range(k.bit_length()):
        if k >> i & 1:
            acc = _add(acc, _TABLE[i])
    return acc


def _encode(p: _Point) -> bytes:
    zi = pow(p[2], _P - 2, _P)
    x, y = p[0] * zi % _P, p[1] * zi % _P
    return (y | (x & 1) << 255).to_bytes(POINT, "little")


def _decode(raw: bytes) -> _Point:
    if len(raw) != POINT:
        raise CryptoError(f"malformed curve point: expected {POINT} bytes, got {len(raw)}")
    n = int.from_bytes(raw, "little")
    return _decode_xy(n & (2**255 - 1), n >> 255)


def _montgomery_u(p: _Point) -> bytes:
    """The X25519 u-coordinate (1 + y) / (1 - y) of an Edwards point."""
    den = (p[2] - p[1]) % _P
    if den == 0:
        raise CryptoError("malformed curve point: the identity")
    return ((p[2] + p[1]) * pow(den, _P - 2, _P) % _P).to_bytes(POINT, "little")
