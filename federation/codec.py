"""The wire format: typed values to bytes and back, never pickle.

Whatever crosses a party line is decoded by this module only, so a peer can make us
build nothing but plain values, numeric numpy arrays, Paillier ciphertexts,
Instances and Tables. Every value is one tag byte and its payload; a stream starts
with a magic, a version and a table of the Paillier public keys it uses, so a
vector of ciphertexts carries its modulus once. Tables are Arrow IPC streams of
(key, value) cells, one stream per partition (see :mod:`federation._rows`).
"""

from __future__ import annotations

import dataclasses
import importlib
import struct
import sys
from typing import Any, Callable, Iterable

import numpy as np

from flow.errors import CodecError, FedweaveError

MAGIC = b"FWC"
VERSION = 1
_HEAD = MAGIC + bytes([VERSION])
MAX_DEPTH = 200
#: numpy kinds that are plain memory: bool, ints, floats, complex, fixed-width bytes/str
_ARRAY_KINDS = frozenset("biufcSU")
_PAILLIER = "components.crypto.paillier"
_NO_KEY = 0xFFFFFFFF

_U8, _U16, _U32, _U64 = struct.Struct("<B"), struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")
_I64, _F64 = struct.Struct("<q"), struct.Struct("<d")

Encoder = Callable[["_Writer", Any], None]


def _type_name(t: type) -> str:
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _paillier():
    try:
        return importlib.import_module(_PAILLIER)
    except ImportError as exc:
        raise CodecError(f"cannot decode Paillier values: {_PAILLIER} is not importable ({exc})") from None


_KEY_CACHE: dict[int, Any] = {}


def _public_key(n: int) -> Any:
    """One key object per modulus, so ciphertexts decoded together share their key."""
    key = _KEY_CACHE.get(n)
    if key is None or not isinstance(key, _paillier().PaillierPublicKey):
        if len(_KEY_CACHE) > 64:
            _KEY_CACHE.clear()
        key = _KEY_CACHE[n] = _build("Paillier public key", _paillier().PaillierPublicKey, n)
    return key


def _build(what: str, make: Callable, *args: Any) -> Any:
    """A peer's numbers may be rejected by the constructor (CryptoError...): say so as CodecError."""
    try:
        return make(*args)
    except (FedweaveError, ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"invalid {what}: {exc}") from None


def _mpz(x: int) -> Any:
    gmpy2 = sys.modules.get("gmpy2")
    return gmpy2.mpz(x) if gmpy2 is not None else x


# ----------------------------------------------------------------------------- encoding


class _Writer:
    def __init__(self, keys: dict[int, int] | None = None):
        self.parts: list[Any] = []
        self.keys: dict[int, int] = {} if keys is None else keys
        self.depth = 0

    def value(self, obj: Any) -> None:
        _encoder_for(type(obj))(self, obj)

    def nested(self, items: Iterable[Any]) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CodecError(f"value nested deeper than {MAX_DEPTH} levels")
        for item in items:
            self.value(item)
        self.depth -= 1

    def blob(self, data: Any) -> None:
        self.parts += [_U64.pack(len(data)), data]

    def text(self, s: str) -> None:
        try:
            raw = s.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CodecError(f"string is not valid unicode: {exc}") from None
        self.parts += [_U32.pack(len(raw)), raw]

    def big(self, x: int) -> None:
        raw = int(x).to_bytes((int(x).bit_length() + 8) // 8, "big", signed=True)
        self.parts += [_U32.pack(len(raw)), raw]

    def key_index(self, public_key: Any) -> int:
        return self.keys.setdefault(int(public_key.n), len(self.keys))

    def bare(self, obj: Any) -> bytes:
        """One value without stream head (a table cell); shares this writer's key table."""
        self.parts = []
        self.value(obj)
        return b"".join(self.parts)

    def key_table(self) -> bytes:
        out = [_U32.pack(len(self.keys))]
        for n in self.keys:
            raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
            out += [_U32.pack(len(raw)), raw]
        return b"".join(out)


def _enc_int(w: _Writer, x: int) -> None:
    if -(2**63) <= x < 2**63:
        w.parts += [b"i", _I64.pack(int(x))]
    else:
        w.parts.append(b"I")
        w.big(x)


def _enc_seq(tag: bytes) -> Encoder:
    def enc(w: _Writer, seq: Any) -> None:
        if tag == b"l" and seq and _is_cipher_vector(seq):
            w.parts += [b"E"]
            _enc_cipher_vector(w, seq)
            return
        w.parts += [tag, _U32.pack(len(seq))]
        w.nested(seq)

    return enc


def _enc_dict(w: _Writer, d: dict) -> None:
    w.parts += [b"d", _U32.pack(len(d))]
    w.nested(x for kv in d.items() for x in kv)


def _dtype_str(dt: np.dtype) -> bytes:
    if dt.kind not in _ARRAY_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise CodecError(f"numpy dtype {dt} is not allowed on the wire (numeric, bool, bytes or str only)")
    return dt.str.encode()


def _enc_ndarray(w: _Writer, arr: np.ndarray) -> None:
    if arr.dtype.kind == "O":
        _enc_object_array(w, arr)
        return
    dt = _dtype_str(arr.dtype)
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    w.parts += [b"a", _U8.pack(len(dt)), dt, _U8.pack(arr.ndim), struct.pack(f"<{arr.ndim}Q", *arr.shape)]
    w.blob(memoryview(flat))


def _enc_np_scalar(w: _Writer, x: np.generic) -> None:
    dt = _dtype_str(x.dtype)
    w.parts += [b"s", _U8.pack(len(dt)), dt]
    w.blob(np.asarray(x).tobytes())


def _enc_pubkey(w: _Writer, key: Any) -> None:
    w.parts.append(b"k")
    w.big(key.n)


def _enc_encrypted(w: _Writer, x: Any) -> None:
    w.parts += [b"e", _U32.pack(w.key_index(x.public_key))]
    w.big(x.ciphertext)
    try:
        w.parts.append(_I64.pack(int(x.exponent)))
    except struct.error:
        raise CodecError(f"ciphertext exponent {x.exponent} does not fit 64 bits") from None


def _is_cipher_vector(seq: Any) -> bool:
    first = seq[0]
    if _lookup(type(first)) is not _enc_encrypted:
        return False
    t, key = type(first), first.public_key
    n = key.n
    return all(type(x) is t and (x.public_key is key or x.public_key.n == n) for x in seq)


def _enc_cipher_vector(w: _Writer, seq: Any) -> None:
    """Fixed-width big-endian ciphertexts (each < n^2) followed by int64 exponents."""
    n = int(seq[0].public_key.n)
    width = (2 * n.bit_length() + 7) // 8
    try:
        cts = b"".join(int(x.ciphertext).to_bytes(width, "big") for x in seq)
        exps = np.fromiter((int(x.exponent) for x in seq), dtype="<i8", count=len(seq))
    except (OverflowError, ValueError) as exc:
        raise CodecError(f"ciphertext vector does not fit its key: {exc}") from None
    w.parts += [_U32.pack(w.key_index(seq[0].public_key)), _U32.pack(len(seq)), _U32.pack(width), cts]
    w.parts.append(exps.tobytes())


def _enc_object_array(w: _Writer, arr: np.ndarray) -> None:
    flat = arr.reshape(-1)
    if flat.size and not _is_cipher_vector(flat):
        kinds = sorted({_type_name(type(x)) for x in flat[:100]})
        raise CodecError(f"numpy arrays of dtype object are refused (only Paillier ciphertexts); found {kinds}")
    w.parts += [b"O", _U8.pack(arr.ndim), struct.pack(f"<{arr.ndim}Q", *arr.shape)]
    if flat.size:
        _enc_cipher_vector(w, flat)
    else:
        w.parts += [_U32.pack(_NO_KEY), _U32.pack(0), _U32.pack(0)]


def _enc_instance(w: _Writer, inst: Any) -> None:
    fields = [f.name for f in dataclasses.fields(inst)]
    w.parts += [b"X", _U32.pack(len(fields))]
    for name in fields:
        w.text(name)
    w.nested(getattr(inst, name) for name in fields)


def _enc_table(w: _Writer, table: Any) -> None:
    from federation._rows import encode_rows  # _rows builds on this module

    w.parts += [b"Q", _U32.pack(table.partitions)]
    for part in table.iter_partitions():
        w.blob(encode_rows(part))


_ENCODERS: dict[type, Encoder] = {
    type(None): lambda w, _: w.parts.append(b"N"),
    bool: lambda w, x: w.parts.append(b"T" if x else b"F"),
    int: _enc_int,
    float: lambda w, x: w.parts.extend([b"f", _F64.pack(x)]),
    str: lambda w, x: (w.parts.append(b"u"), w.text(x)),
    bytes: lambda w, x: (w.parts.append(b"b"), w.blob(bytes(x))),
    bytearray: lambda w, x: (w.parts.append(b"b"), w.blob(bytes(x))),
    list: _enc_seq(b"l"),
    tuple: _enc_seq(b"t"),
    dict: _enc_dict,
    np.ndarray: _enc_ndarray,
    np.generic: _enc_np_scalar,
}

#: types whose modules are imported only by the code that uses them
_LAZY: dict[str, Encoder] = {
    f"{_PAILLIER}:EncryptedNumber": _enc_encrypted,
    f"{_PAILLIER}:PaillierPublicKey": _enc_pubkey,
    "components.base:Instance": _enc_instance,
    "backends.computing.api:Table": _enc_table,
    "gmpy2:mpz": _enc_int,
}


def _lookup(t: type) -> Encoder | None:
    fn = _ENCODERS.get(t)
    if fn is not None:
        return fn
    fn = next((_ENCODERS[b] for b in t.__mro__[1:] if b in _ENCODERS), None)
    for path, lazy in _LAZY.items() if fn is None else ():
        module, _, attr = path.partition(":")
        cls = getattr(sys.modules.get(module), attr, None)
        if isinstance(cls, type) and issubclass(t, cls):
            fn = lazy
            break
    if fn is not None:
        _ENCODERS[t] = fn
    return fn


def _encoder_for(t: type) -> Encoder:
    fn = _lookup(t)
    if fn is None:
        raise CodecError(
            f"cannot send a value of type {_type_name(t)}: the wire format carries None, bool, int, float, "
            "str, bytes, list, tuple, dict, numeric numpy arrays/scalars, Paillier ciphertexts, "
            "Instance and Table"
        )
    return fn


def encode(obj: Any) -> bytes:
    """``obj`` as a self-contained byte string; CodecError names any type it cannot carry."""
    w = _Writer()
    try:
        w.value(obj)
    except RecursionError:
        raise CodecError(f"value nested deeper than {MAX_DEPTH} levels") from None
    return b"".join([_HEAD, w.key_table(), *w.parts])


# ----------------------------------------------------------------------------- decoding


class _Reader:
    def __init__(self, data: Any, session: Any = None, keys: list[int] | None = None):
        self.mv = memoryview(data).cast("B")
        self.pos = 0
        self.session = session
        self.keys: list[int] = keys or []
        self.depth = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.mv):
            raise CodecError(f"truncated data: needed {n} bytes at offset {self.pos}, have {len(self.mv) - self.pos}")
        out, self.pos = self.mv[self.pos : end], end
        return out

    def unpack(self, s: struct.Struct) -> Any:
        return s.unpack(self.take(s.size))[0]

    def count(self, min_item_size: int = 1) -> int:
        n = self.unpack(_U32)
        if n * min_item_size > len(self.mv) - self.pos:
            raise CodecError(f"truncated data: {n} items announced at offset {self.pos}")
        return n

    def blob(self) -> memoryview:
        return self.take(self.unpack(_U64))

    def text(self) -> str:
        try:
            return str(self.take(self.unpack(_U32)), "utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"invalid utf-8 string: {exc}") from None

    def big(self) -> int:
        return int.from_bytes(self.take(self.unpack(_U32)), "big", signed=True)

    def value(self) -> Any:
        tag = self.take(1)[0]
        fn = _DECODERS.get(tag)
        if fn is None:
            raise CodecError(f"unknown tag {bytes([tag])!r} at offset {self.pos - 1}")
        return fn(self)

    def nested(self, n: int) -> list:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CodecError(f"value nested deeper than {MAX_DEPTH} levels")
        out = [self.value() for _ in range(n)]
        self.depth -= 1
        return out

    def key(self, index: int) -> tuple[Any, int]:
        if index >= len(self.keys):
            raise CodecError(f"ciphertext names public key #{index}, stream has {len(self.keys)}")
        n = self.keys[index]
        return _public_key(n), n * n


def _dtype(r: _Reader) -> np.dtype:
    raw = bytes(r.take(r.unpack(_U8)))
    try:
        dt = np.dtype(raw.decode("ascii"))
    except (TypeError, ValueError, UnicodeDecodeError):
        raise CodecError(f"invalid numpy dtype {raw!r}") from None
    _dtype_str(dt)
    return dt


def _shape(r: _Reader) -> tuple[int, ...]:
    ndim = r.unpack(_U8)
    return struct.unpack(f"<{ndim}Q", r.take(8 * ndim))


def _dec_ndarray(r: _Reader) -> np.ndarray:
    dt, shape = _dtype(r), _shape(r)
    raw = r.blob()
    size = int(np.prod(shape, dtype=object)) if shape else 1
    if len(raw) != size * dt.itemsize:
        raise CodecError(f"array of shape {shape} and dtype {dt} needs {size * dt.itemsize} bytes, got {len(raw)}")
    try:
        return np.frombuffer(raw, dtype=dt).reshape(shape).copy() if len(raw) else np.zeros(shape, dtype=dt)
    except (ValueError, OverflowError, MemoryError) as exc:
        raise CodecError(f"invalid array of shape {shape}: {exc}") from None


def _dec_np_scalar(r: _Reader) -> np.generic:
    dt = _dtype(r)
    raw = r.blob()
    if len(raw) != dt.itemsize:
        raise CodecError(f"numpy scalar of dtype {dt} needs {dt.itemsize} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=dt)[0]


def _cipher(key: Any, nsq: int, ct: int, exp: int, what: str = "ciphertext") -> Any:
    """A received ciphertext, checked here (range of c and of the exponent) and then built
    without the constructor's generic argument checks: this is the hot path of every
    encrypted table, and the checks below are the ones that matter for a peer's numbers."""
    if not 0 < ct < nsq:
        raise CodecError(f"{what} out of range for its public key")
    if not 0 <= exp <= key.n.bit_length():
        raise CodecError(f"{what}: exponent {exp} out of range for a {key.n.bit_length()}-bit key")
    return _paillier()._new(key, _mpz(ct), int(exp), True)


def _dec_encrypted(r: _Reader) -> Any:
    key, nsq = r.key(r.unpack(_U32))
    ct, exp = r.big(), r.unpack(_I64)
    return _cipher(key, nsq, ct, exp)


def _dec_cipher_vector(r: _Reader) -> list:
    index, count, width = r.unpack(_U32), r.count(8), r.unpack(_U32)
    if index == _NO_KEY and count == 0:
        return []
    key, nsq = r.key(index)
    cts, exps = r.take(count * width), np.frombuffer(r.take(count * 8), dtype="<i8")
    return [_cipher(key, nsq, int.from_bytes(cts[j * width : (j + 1) * width], "big"), int(e), f"ciphertext #{j}")
            for j, e in enumerate(exps.tolist())]


def _dec_object_array(r: _Reader) -> np.ndarray:
    shape = _shape(r)
    items = _dec_cipher_vector(r)
    size = int(np.prod(shape, dtype=object)) if shape else 1
    if size != len(items):
        raise CodecError(f"ciphertext array of shape {shape} holds {len(items)} values")
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr.reshape(shape)


def _dec_dict(r: _Reader) -> dict:
    flat = r.nested(2 * r.count(2))
    try:
        return dict(zip(flat[::2], flat[1::2]))
    except TypeError as exc:
        raise CodecError(f"dict key is not hashable: {exc}") from None


def _dec_tuple(r: _Reader) -> tuple:
    return tuple(r.nested(r.count()))


def _dec_instance(r: _Reader) -> Any:
    from components.base import Instance

    names = [r.text() for _ in range(r.count())]
    try:
        return Instance(**dict(zip(names, r.nested(len(names)))))
    except TypeError as exc:
        raise CodecError(f"invalid Instance fields {names}: {exc}") from None


def _dec_table(r: _Reader) -> Any:
    from federation._rows import decode_rows

    partitions = r.unpack(_U32)
    if r.session is None:
        raise CodecError("received a Table but no computing session was given to rebuild it")
    parts = [decode_rows(r.blob()) for _ in range(partitions)]
    return r.session.from_partitions(parts, partitions)


_DECODERS: dict[int, Callable[[_Reader], Any]] = {
    ord("N"): lambda r: None,
    ord("T"): lambda r: True,
    ord("F"): lambda r: False,
    ord("i"): lambda r: r.unpack(_I64),
    ord("I"): _Reader.big,
    ord("f"): lambda r: r.unpack(_F64),
    ord("u"): _Reader.text,
    ord("b"): lambda r: bytes(r.blob()),
    ord("l"): lambda r: r.nested(r.count()),
    ord("t"): _dec_tuple,
    ord("d"): _dec_dict,
    ord("a"): _dec_ndarray,
    ord("s"): _dec_np_scalar,
    ord("k"): lambda r: _public_key(r.big()),
    ord("e"): _dec_encrypted,
    ord("E"): _dec_cipher_vector,
    ord("O"): _dec_object_array,
    ord("X"): _dec_instance,
    ord("Q"): _dec_table,
}


#: first opcodes of protocol 0/1 pickles (protocol 2+ start with PROTO, 0x80); all end with STOP "."
_PICKLE_STARTS = b"(]}cdlKIJFGSUVXNT"


def _check_head(mv: memoryview) -> None:
    # The magic decides: our own streams may well end in "." (random payload bytes), so
    # the pickle test only names what a foreign stream looks like; nothing is unpickled either way.
    if bytes(mv[:3]) != MAGIC:
        if mv[:1] == b"\x80" or (len(mv) > 1 and mv[0] in _PICKLE_STARTS and mv[-1] == ord(".")):
            raise CodecError("refusing a pickle stream: nothing received from another party is unpickled")
        raise CodecError(f"not a fedweave codec stream (starts with {bytes(mv[:8])!r})")
    if len(mv) < 4 or mv[3] != VERSION:
        raise CodecError(f"unsupported codec version {mv[3] if len(mv) > 3 else None} (this build reads {VERSION})")


def _read_keys(r: _Reader) -> list[int]:
    return [int.from_bytes(r.take(r.unpack(_U32)), "big") for _ in range(r.count(4))]


def decode(data: bytes | bytearray | memoryview, session: Any = None) -> Any:
    """The value :func:`encode` made; ``session`` rebuilds Tables. CodecError on anything else."""
    mv = memoryview(data).cast("B")
    _check_head(mv)
    r = _Reader(mv[4:], session)
    try:
        r.keys = _read_keys(r)
        obj = r.value()
    except RecursionError:
        raise CodecError(f"value nested deeper than {MAX_DEPTH} levels") from None
    if r.pos != len(r.mv):
        raise CodecError(f"{len(r.mv) - r.pos} unexpected bytes after the value")
    return obj
