"""Paillier and Okamoto–Uchiyama values on the wire: public keys, single ciphertexts and
ciphertext vectors.

The codec (:mod:`federation.codec`) sits below the algorithms and does not know
Paillier; this module, owned by the package that owns the type, registers it there
when :mod:`components.crypto.paillier` is imported, and is the ``paillier`` entry point
of the ``fedweave.codecs`` group for a receiver that decodes before importing it.
Tags: ``k`` public key, ``e`` one ciphertext, ``E`` a list of ciphertexts under one
key, ``O`` an object array of them; keys in the stream's key table (by modulus). OU
ciphertexts (components/crypto/ou.py) are the same :class:`EncryptedNumber` type under an
OU key, with the same layouts under their own tags ``o``/``W``/``Y`` (:data:`SCHEMES`):
the tag, not the modulus, says which scheme rebuilds the key, and their width is that
of n rather than n².

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
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import gmpy2
import numpy as np

from components.crypto.ou import OUPublicKey
from components.crypto.paillier import AdditivePublicKey, EncryptedNumber, PaillierPublicKey, _new
from federation import codec
from federation._arrays import pack_shape, read_shape, size_of
from flow.core.errors import CodecError, FedweaveError

#: key index of an empty vector (it names no key)
NO_KEY = 0xFFFFFFFF
_EXP = np.dtype("<i8")
_U32, _I64 = struct.Struct("<I"), struct.Struct("<q")
_KEY_CACHE: dict[tuple[type, int], AdditivePublicKey] = {}
_public_key_of = attrgetter("public_key")


def build(what: str, make: Callable[..., Any], *args: Any) -> Any:
    """A peer's numbers may be rejected by the constructor (CryptoError...): say so as CodecError."""
    try:
        return make(*args)
    except (FedweaveError, ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"invalid {what}: {exc}") from None


def public_key(n: int, kind: type[AdditivePublicKey] = PaillierPublicKey) -> Any:
    """One key object per scheme and modulus, so ciphertexts decoded together share their key."""
    key = _KEY_CACHE.get((kind, n))
    if key is None:
        if len(_KEY_CACHE) > 64:
            _KEY_CACHE.clear()
        key = _KEY_CACHE[kind, n] = build(f"{kind.scheme} public key", kind, n)
    return key


def width_for(n: int) -> int:
    """Bytes of one Paillier ciphertext of a vector: any value below n² fits."""
    return (2 * int(n).bit_length() + 7) // 8


def width_of(key: AdditivePublicKey) -> int:
    """Bytes of one ciphertext under ``key``: any value below its ciphertext modulus fits
    (for Paillier the same as :func:`width_for`)."""
    return (int(key.nsquare).bit_length() + 7) // 8


def one(key: AdditivePublicKey, ct: int, exp: int, what: str = "ciphertext") -> EncryptedNumber:
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
    """Non-empty, every item a ciphertext of one class under one modulus (one scheme)."""
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


def pack_raw(cts: Sequence[Any], width: int) -> bytes:
    """Integers in ``[0, 2**(8·width))`` as one big-endian block of ``width`` bytes each, item 0
    first (one C call, not a loop over items). OverflowError, TypeError or ValueError for an
    item that does not fit."""
    return gmpy2.pack(list(cts)[::-1], 8 * width).to_bytes(width * len(cts), "big")


def unpack_raw(block: bytes | memoryview, width: int, count: int) -> list[Any]:
    """The ``count`` integers of a :func:`pack_raw` block, unchecked (as mpz)."""
    if not count:
        return []
    values = gmpy2.unpack(gmpy2.mpz.from_bytes(block, "big"), 8 * width)[::-1]
    return [gmpy2.mpz(0)] * (count - len(values)) + values  # leading zero items leave no bits


def encode_vector(seq: Sequence[EncryptedNumber]) -> tuple[AdditivePublicKey, int, bytes, bytes]:
    """(public key, width, ciphertext block, exponent block) of a vector (see the module doc)."""
    key = seq[0].public_key
    width = width_of(key)
    cts = _raw_ciphertexts(seq)
    try:
        exps = np.array([x.exponent for x in seq], dtype=_EXP)
    except (OverflowError, ValueError, TypeError) as exc:
        raise CodecError(f"ciphertext exponents do not fit 64 bits: {exc}") from None
    try:  # element 0 is the most significant: the block reads in order
        block = pack_raw(cts, width)
    except (OverflowError, TypeError, ValueError):
        bad = next((j for j, c in enumerate(cts) if not 0 <= c < 1 << (8 * width)), 0)
        raise CodecError(f"ciphertext #{bad} of the vector does not fit its key ({width} bytes)") from None
    return key, width, block, exps.tobytes()


def decode_vector(key: AdditivePublicKey, width: int, count: int, block: memoryview,
                  exps_raw: memoryview) -> list[EncryptedNumber]:
    """The ciphertexts of a vector block, every one checked: 0 < c < n² (n for OU) and
    0 <= exponent <= bits(n). CodecError names the first bad item."""
    n = int(key.n)
    bits, nsq = n.bit_length(), int(key.nsquare)
    if width != width_of(key):
        raise CodecError(f"ciphertext width {width} bytes does not match a {bits}-bit key ({width_of(key)} bytes)")
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
    values = unpack_raw(block, width, count)
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
    w.parts += [_scheme_of(x.public_key).one, _U32.pack(w.key_index(x.public_key))]
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
        w.parts.append(_scheme_of(items[0].public_key).vector)
        enc_vector(w, items)
        return True
    if len(items) and not is_vector(items):
        return False
    tag = _scheme_of(items[0].public_key).array if len(items) else b"O"
    w.parts += [tag, pack_shape(shape)]
    if len(items):
        enc_vector(w, items)
    else:
        w.parts += [_U32.pack(NO_KEY), _U32.pack(0), _U32.pack(0)]
    return True


def _ou_key(r: Any, index: int) -> Any:
    """OU key #index of the stream's key table (the table holds moduli only; the tag said OU)."""
    if index >= len(r.keys):
        raise CodecError(f"ciphertext names public key #{index}, stream has {len(r.keys)}")
    return public_key(int(r.keys[index]), OUPublicKey)


def dec_one(r: Any, key_of: Callable[[Any, int], Any] = lambda r, i: r.key(i)) -> EncryptedNumber:
    key = key_of(r, r.unpack(_U32))
    ct, exp = r.big(), r.unpack(_I64)
    return one(key, ct, exp)


def dec_vector(r: Any, key_of: Callable[[Any, int], Any] = lambda r, i: r.key(i)) -> list[EncryptedNumber]:
    index, count, width = r.unpack(_U32), r.count(8), r.unpack(_U32)
    if index == NO_KEY and count == 0:
        return []
    key = key_of(r, index)
    if count * width > len(r.mv) - r.pos:
        raise CodecError(f"truncated data: {count} ciphertexts of {width} bytes announced at offset {r.pos}")
    return decode_vector(key, width, count, r.take(count * width), r.take(count * 8))


def dec_object_array(r: Any, key_of: Callable[[Any, int], Any] = lambda r, i: r.key(i)) -> np.ndarray:
    shape = read_shape(r)
    items = dec_vector(r, key_of)
    if size_of(shape) != len(items):
        raise CodecError(f"ciphertext array of shape {shape} holds {len(items)} values")
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr.reshape(shape)


class _Tags(NamedTuple):
    """The tags of one scheme's ciphertexts: one, a list, an object array."""

    one: bytes
    vector: bytes
    array: bytes


#: key type -> its ciphertexts' tags (a registry: a scheme adds a row, not a branch)
SCHEMES: dict[type, _Tags] = {PaillierPublicKey: _Tags(b"e", b"E", b"O"), OUPublicKey: _Tags(b"o", b"W", b"Y")}


def _scheme_of(key: Any) -> _Tags:
    tags = SCHEMES.get(type(key))
    if tags is None:
        raise CodecError(f"no wire format for ciphertexts under a {type(key).__name__}")
    return tags


def _dec_ou_one(r: Any) -> EncryptedNumber:
    return dec_one(r, _ou_key)


def _dec_ou_vector(r: Any) -> list[EncryptedNumber]:
    return dec_vector(r, _ou_key)


def _dec_ou_array(r: Any) -> np.ndarray:
    return dec_object_array(r, _ou_key)


def register() -> None:
    """Put Paillier and OU keys and ciphertexts on the wire (idempotent; the entry point)."""
    codec.register_type(EncryptedNumber, enc_one)
    codec.register_type(PaillierPublicKey, enc_public_key)
    codec.register_vector(enc_columnar)
    codec.register_key(public_key)
    codec.register_tag(b"k", lambda r: public_key(r.big()))
    codec.register_tag(b"e", dec_one)
    codec.register_tag(b"E", dec_vector)
    codec.register_tag(b"O", dec_object_array)
    codec.register_tag(b"o", _dec_ou_one)
    codec.register_tag(b"W", _dec_ou_vector)
    codec.register_tag(b"Y", _dec_ou_array)


register()
