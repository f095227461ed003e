"""Paillier values on the wire: public keys, single ciphertexts and ciphertext vectors.

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
import importlib
import struct
import sys
from contextlib import contextmanager
from itertools import repeat
from operator import attrgetter
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from federation._arrays import pack_shape, read_shape, size_of, type_name
from flow.core.errors import CodecError, FedweaveError

try:
    import gmpy2
except ImportError:  # Paillier needs it; the codec's tests of the contract alone do not
    gmpy2 = None

PAILLIER = "components.crypto.paillier"
#: key index of an empty vector (it names no key)
NO_KEY = 0xFFFFFFFF
_EXP = np.dtype("<i8")
_U32, _I64 = struct.Struct("<I"), struct.Struct("<q")
_KEY_CACHE: dict[int, Any] = {}
_public_key_of = attrgetter("public_key")


def paillier() -> Any:
    """The Paillier module, imported on first use (the codec never needs it otherwise)."""
    mod = sys.modules.get(PAILLIER)
    if mod is not None:
        return mod
    try:
        return importlib.import_module(PAILLIER)
    except ImportError as exc:
        raise CodecError(f"cannot decode Paillier values: {PAILLIER} is not importable ({exc})") from None


def build(what: str, make: Callable, *args: Any) -> Any:
    """A peer's numbers may be rejected by the constructor (CryptoError...): say so as CodecError."""
    try:
        return make(*args)
    except (FedweaveError, ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"invalid {what}: {exc}") from None


def public_key(n: int) -> Any:
    """One key object per modulus, so ciphertexts decoded together share their key."""
    key = _KEY_CACHE.get(n)
    if key is None or not isinstance(key, paillier().PaillierPublicKey):
        if len(_KEY_CACHE) > 64:
            _KEY_CACHE.clear()
        key = _KEY_CACHE[n] = build("Paillier public key", paillier().PaillierPublicKey, n)
    return key


def width_for(n: int) -> int:
    """Bytes of one ciphertext of a vector: any value below n² fits."""
    return (2 * int(n).bit_length() + 7) // 8


def _maker() -> Callable[[Any, Any, int, bool], Any]:
    """An unchecked constructor (the codec checks first); the class itself where there is none."""
    mod = paillier()
    new = getattr(mod, "_new", None)
    return new if new is not None else (lambda key, c, e, _obfuscated: mod.EncryptedNumber(key, int(c), e))


def _number(ct: int) -> Any:
    return gmpy2.mpz(ct) if gmpy2 is not None else ct


def one(key: Any, ct: int, exp: int, what: str = "ciphertext") -> Any:
    """A received ciphertext, checked here (range of c and of the exponent) and then built
    without the constructor's generic argument checks: they are the ones that matter for
    a peer's numbers, and this is the hot path of every encrypted table."""
    n = int(key.n)
    if not 0 < ct < getattr(key, "nsquare", n * n):
        raise CodecError(f"{what} out of range for its public key")
    if not 0 <= exp <= n.bit_length():
        raise CodecError(f"{what}: exponent {exp} out of range for a {n.bit_length()}-bit key")
    return _maker()(key, _number(ct), int(exp), True)


# ----------------------------------------------------------------------------- vectors


def is_vector(seq: Sequence[Any]) -> bool:
    """Non-empty, every item a ciphertext of one class under one modulus."""
    cls = getattr(sys.modules.get(PAILLIER), "EncryptedNumber", None)
    if cls is None or not len(seq) or not isinstance(seq[0], cls):
        return False
    if len(set(map(type, seq))) != 1:
        return False
    if len(set(map(id, map(_public_key_of, seq)))) == 1:  # the usual case: one key object
        return True
    return len({int(k.n) for k in map(_public_key_of, seq)}) == 1


def _raw_ciphertexts(seq: Sequence[Any]) -> list[Any]:
    """Each item's ciphertext as sent: ``.ciphertext`` re-randomises a value on first
    exposure; an item already exposed gives its stored number without the int copy."""
    try:
        return [x._c if x._obfuscated else x.ciphertext for x in seq]
    except AttributeError:  # another implementation of the Paillier contract
        return [x.ciphertext for x in seq]


def encode_vector(seq: Sequence[Any]) -> tuple[Any, int, bytes, bytes]:
    """(public key, width, ciphertext block, exponent block) of a vector (see the module doc)."""
    key = seq[0].public_key
    width = width_for(key.n)
    cts = _raw_ciphertexts(seq)
    try:
        exps = np.array([x.exponent for x in seq], dtype=_EXP)
    except (OverflowError, ValueError, TypeError) as exc:
        raise CodecError(f"ciphertext exponents do not fit 64 bits: {exc}") from None
    try:
        if gmpy2 is not None:  # element 0 is the most significant: the block reads in order
            block = gmpy2.pack(cts[::-1], 8 * width).to_bytes(width * len(cts), "big")
        else:
            block = b"".join(int(c).to_bytes(width, "big") for c in cts)
    except (OverflowError, TypeError, ValueError):
        bad = next((j for j, c in enumerate(cts) if not 0 <= c < 1 << (8 * width)), 0)
        raise CodecError(f"ciphertext #{bad} of the vector does not fit its key ({width} bytes)") from None
    return key, width, block, exps.tobytes()


def decode_vector(key: Any, width: int, count: int, block: memoryview, exps_raw: memoryview) -> list:
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
    if gmpy2 is not None and count:
        values = gmpy2.unpack(gmpy2.mpz.from_bytes(block, "big"), 8 * width)[::-1]
    else:
        values = [int.from_bytes(block[j * width : (j + 1) * width], "big") for j in range(count)]
    with _collector_paused():
        return list(map(_maker(), repeat(key), values, exps.tolist(), repeat(True)))


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
# (writer/reader of :mod:`federation.codec`; tags "k" key, "e" ciphertext, "E" vector, "O" array)


def enc_public_key(w: Any, key: Any) -> None:
    w.parts.append(b"k")
    w.big(key.n)


def enc_one(w: Any, x: Any) -> None:
    w.parts += [b"e", _U32.pack(w.key_index(x.public_key))]
    w.big(x.ciphertext)
    try:
        w.parts.append(_I64.pack(int(x.exponent)))
    except struct.error:
        raise CodecError(f"ciphertext exponent {x.exponent} does not fit 64 bits") from None


def enc_vector(w: Any, seq: Sequence[Any]) -> None:
    """key index | count | width | ciphertext block | exponent block."""
    key, width, block, exps = encode_vector(seq)
    w.parts += [_U32.pack(w.key_index(key)), _U32.pack(len(seq)), _U32.pack(width), block, exps]


def enc_object_array(w: Any, arr: np.ndarray) -> None:
    flat = arr.reshape(-1)
    if flat.size and not is_vector(flat):
        kinds = sorted({type_name(type(x)) for x in flat[:100]})
        raise CodecError(f"numpy arrays of dtype object are refused (only Paillier ciphertexts); found {kinds}")
    w.parts += [b"O", pack_shape(arr.shape)]
    if flat.size:
        enc_vector(w, flat)
    else:
        w.parts += [_U32.pack(NO_KEY), _U32.pack(0), _U32.pack(0)]


def dec_one(r: Any) -> Any:
    key = r.key(r.unpack(_U32))
    ct, exp = r.big(), r.unpack(_I64)
    return one(key, ct, exp)


def dec_vector(r: Any) -> list:
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
