"""Paillier values on the wire: public keys, single ciphertexts and ciphertext vectors.

The codec (:mod:`federation.codec`) sits below the algorithms and does not know
Paillier; this module, owned by the package that owns the type, registers it there
when :mod:`components.crypto.paillier` is imported, and is the ``paillier`` entry point
of the ``fedweave.codecs`` group for a receiver that decodes before importing it.
Tags: ``k`` public key, ``e`` one ciphertext, ``E`` a list of ciphertexts under one
key, ``O`` an object array of them; keys in the stream's key table (by modulus).

A vector of ciphertexts under one key (what every encrypted gradient or residual is)
goes columnar: one block of fixed-width big-endian ciphertexts (``width`` bytes each,
enough for any value below n²) followed by the exponents as one little-endian int64
array. Both directions convert the whole block at once (gmpy2 ``pack``/``unpack``), and
the receiver checks every ciphertext's range and exponent with numpy before it builds
a single object, so what a ciphertext costs is GMP's byte conversion and one object, not
a Python loop over its bytes. Everything here is checked as a peer's number: CodecError,
never a crash, for a value out of range or a block that does not match its key.
"""

from __future__ import annotations

import gc
import struct
from contextlib import contextmanager
from itertools import repeat
from operator import attrgetter
from typing import Any, Callable, Iterator, Sequence

import gmpy2
import numpy as np

from components.crypto.paillier import EncryptedNumber, PaillierPublicKey, _new
from federation import codec
from federation._arrays import pack_shape, read_shape, size_of
from flow.core.errors import CodecError, FedweaveError

#: key index of an empty vector (it names no key)
NO_KEY = 0xFFFFFFFF
_EXP = np.dtype("<i8")
_U32, _I64 = struct.Struct("<I"), struct.Struct("<q")
_KEY_CACHE: dict[int, PaillierPublicKey] = {}
_public_key_of = attrgetter("public_key")


def build(what: str, make: Callable[..., Any], *args: Any) -> Any:
    """A peer's numbers may be rejected by the constructor (CryptoError...): say so as CodecError."""
    try:
        return make(*args)
    except (FedweaveError, ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"invalid {what}: {exc}") from None


def public_key(n: int) -> PaillierPublicKey:
    """One key object per modulus, so ciphertexts decoded together share their key."""
    key = _KEY_CACHE.get(n)
    if key is None:
        if len(_KEY_CACHE) > 64:
            _KEY_CACHE.clear()
        key = _KEY_CACHE[n] = build("Paillier public key", PaillierPublicKey, n)
    return key


def width_for(n: int) -> int:
    """Bytes of one ciphertext of a vector: any value below n² fits."""
    return (2 * int(n).bit_length() + 7) // 8


def one(key: PaillierPublicKey, ct: int, exp: int, what: str = "ciphertext") -> EncryptedNumber:
    """A received ciphertext, checked here (range of c and of the exponent) and then built
    without the constructor's generic argument checks: they are the ones that matter for
    a peer's numbers, and this is the hot path of every encrypted table."""
    n = int(key.n)
    if not 0 < ct < key.nsquare:
        raise CodecError(f"{what} out of range for its public key")
    if not 0 <= exp <= n.bit_length():
        raise CodecError(f"{what}: exponent {exp} out of range for a {n.bit_length()}-bit key")
    return _new(key, gmpy2.mpz(ct), int(exp), True)


# ----------------------------------------------------------------------------- vectors


def is_vector(seq: Sequence[Any]) -> bool:
    """Non-empty, every item a ciphertext of one class under one modulus."""
    if not len(seq) or not isinstance(seq[0], EncryptedNumber):
        return False
    if len(set(map(type, seq))) != 1:
        return False
    if len(set(map(id, map(_public_key_of, seq)))) == 1:  # the usual case: one key object
        return True
    return len({int(k.n) for k in map(_public_key_of, seq)}) == 1


def _raw_ciphertexts(seq: Sequence[EncryptedNumber]) -> list[Any]:
    """Each item's ciphertext as sent: ``.ciphertext`` re-randomises a value on first
    exposure; an item already exposed gives its stored number without the int copy."""
    return [x._c if x._obfuscated else x.ciphertext for x in seq]


def encode_vector(seq: Sequence[EncryptedNumber]) -> tuple[PaillierPublicKey, int, bytes, bytes]:
    """(public key, width, ciphertext block, exponent block) of a vector (see the module doc)."""
    key = seq[0].public_key
    width = width_for(key.n)
    cts = _raw_ciphertexts(seq)
    try:
        exps = np.array([x.exponent for x in seq], dtype=_EXP)
    except (OverflowError, ValueError, TypeError) as exc:
        raise CodecError(f"ciphertext exponents do not fit 64 bits: {exc}") from None
    try:  # element 0 is the most significant: the block reads in order
        block = gmpy2.pack(cts[::-1], 8 * width).to_bytes(width * len(cts), "big")
    except (OverflowError, TypeError, ValueError):
        bad = next((j for j, c in enumerate(cts) if not 0 <= c < 1 << (8 * width)), 0)
        raise CodecError(f"ciphertext #{bad} of the vector does not fit its key ({width} bytes)") from None
    return key, width, block, exps.tobytes()


def decode_vector(key: PaillierPublicKey, width: int, count: int, block: memoryview,
                  exps_raw: memoryview) -> list[EncryptedNumber]:
    """The ciphertexts of a vector block, every one checked: 0 < c < n² and
    0 <= exponent <= bits(n). CodecError names the first bad item."""
    n = int(key.n)
    bits, nsq = n.bit_length(), n * n
    if width != width_for(n):
        raise CodecError(f"ciphertext width {width} bytes does not match a {bits}-bit key ({width_for(n)} bytes)")
    if len(block) != count * width or len(exps_raw) != 8 * count:
        raise CodecError(f"ciphertext vector of {count} items has {len(block)} + {len(exps_raw)} bytes")
    exps = np.frombuffer(exps_raw, dtype=_EXP)
    bad = np.flatnonzero((exps < 0) | (exps > bits))
    if bad.size:
        j = int(bad[0])
        raise CodecError(f"ciphertext #{j}: exponent {int(exps[j])} out of range for a {bits}-bit key")
    rows = np.frombuffer(block, dtype=np.uint8).reshape(count, width)
    # the leading 8 bytes decide the range of almost every row; the rest are checked exactly
    lead = np.ascontiguousarray(rows[:, :8]).view(">u8").ravel()
    limit = int.from_bytes(nsq.to_bytes(width, "big")[:8], "big")
    for j in np.flatnonzero((lead >= limit) | (lead == 0)).tolist():
        if not 0 < int.from_bytes(rows[j].tobytes(), "big") < nsq:
            raise CodecError(f"ciphertext #{j} out of range for its public key")
    if not count:
        return []
    values = gmpy2.unpack(gmpy2.mpz.from_bytes(block, "big"), 8 * width)[::-1]
    with _collector_paused():
        return list(map(_new, repeat(key), values, exps.tolist(), repeat(True)))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Build many objects at once without the cyclic collector rescanning every live one
    again and again meanwhile (it would triple the time); they form no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ----------------------------------------------------------------------------- codec glue


def enc_public_key(w: Any, key: PaillierPublicKey) -> None:
    w.parts.append(b"k")
    w.big(key.n)


def enc_one(w: Any, x: EncryptedNumber) -> None:
    w.parts += [b"e", _U32.pack(w.key_index(x.public_key))]
    w.big(x.ciphertext)
    try:
        w.parts.append(_I64.pack(int(x.exponent)))
    except struct.error:
        raise CodecError(f"ciphertext exponent {x.exponent} does not fit 64 bits") from None


def enc_vector(w: Any, seq: Sequence[EncryptedNumber]) -> None:
    """key index | count | width | ciphertext block | exponent block."""
    key, width, block, exps = encode_vector(seq)
    w.parts += [_U32.pack(w.key_index(key)), _U32.pack(len(seq)), _U32.pack(width), block, exps]


def enc_columnar(w: Any, items: Sequence[Any], shape: tuple[int, ...] | None) -> bool:
    """The codec's vector hook: a list of ciphertexts as ``E``, an object array of them
    (or an empty one) as ``O`` with its shape; anything else is declined."""
    if shape is None:
        if not is_vector(items):
            return False
        w.parts.append(b"E")
        enc_vector(w, items)
        return True
    if len(items) and not is_vector(items):
        return False
    w.parts += [b"O", pack_shape(shape)]
    if len(items):
        enc_vector(w, items)
    else:
        w.parts += [_U32.pack(NO_KEY), _U32.pack(0), _U32.pack(0)]
    return True


def dec_one(r: Any) -> EncryptedNumber:
    key = r.key(r.unpack(_U32))
    ct, exp = r.big(), r.unpack(_I64)
    return one(key, ct, exp)


def dec_vector(r: Any) -> list[EncryptedNumber]:
    index, count, width = r.unpack(_U32), r.count(8), r.unpack(_U32)
    if index == NO_KEY and count == 0:
        return []
    key = r.key(index)
    if count * width > len(r.mv) - r.pos:
        raise CodecError(f"truncated data: {count} ciphertexts of {width} bytes announced at offset {r.pos}")
    return decode_vector(key, width, count, r.take(count * width), r.take(count * 8))


def dec_object_array(r: Any) -> np.ndarray:
    shape = read_shape(r)
    items = dec_vector(r)
    if size_of(shape) != len(items):
        raise CodecError(f"ciphertext array of shape {shape} holds {len(items)} values")
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr.reshape(shape)


def register() -> None:
    """Put Paillier keys and ciphertexts on the wire (idempotent; the entry point)."""
    codec.register_type(EncryptedNumber, enc_one)
    codec.register_type(PaillierPublicKey, enc_public_key)
    codec.register_vector(enc_columnar)
    codec.register_key(public_key)
    codec.register_tag(b"k", lambda r: public_key(r.big()))
    codec.register_tag(b"e", dec_one)
    codec.register_tag(b"E", dec_vector)
    codec.register_tag(b"O", dec_object_array)


register()
