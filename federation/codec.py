"""The wire format: typed values to bytes and back, never pickle.

Whatever crosses a party line is decoded by this module only, so a peer can make us
build nothing but plain values, numeric numpy arrays, Tables and the types that codec
plugins register. Every value is one tag byte and its payload; a stream starts with a
magic, a version and a table of the public-key moduli it uses, so a vector of
ciphertexts carries its modulus once and goes columnar. Tables are Arrow IPC streams
of (key, value) cells, one stream per partition. numpy values are in
:mod:`federation._arrays`, table rows in :mod:`federation._rows`.

This package sits below the algorithms and never imports them: a package that owns a
type puts it on the wire with :func:`register_type` / :func:`register_tag` (and
:func:`register_vector` / :func:`register_key` for ciphertext vectors and the key
table) when it is imported, and declares a ``register`` callable in the entry-point
group ``fedweave.codecs``. A process that meets an unknown type or tag before it has
imported that package loads the group once and tries again.
"""

from __future__ import annotations

import dataclasses
import struct
import sys
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from federation import _arrays, _plugins
from federation._plugins import load_plugins, register_key, register_tag, register_type, register_vector
from flow.core.errors import CodecError

MAGIC = b"FWC"
VERSION = 1
_HEAD = MAGIC + bytes([VERSION])
MAX_DEPTH = 200
#: parts of at least this many bytes are not copied by encode_parts
_LARGE_PART = 64 * 1024

_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_I64, _F64 = struct.Struct("<q"), struct.Struct("<d")

Encoder = Callable[["_Writer", Any], None]
Decoder = Callable[["_Reader"], Any]

__all__ = ["CodecError", "decode", "decode_chunks", "encode", "encode_parts", "load_plugins", "register_key",
           "register_tag", "register_type", "register_vector", "dataclass_decoder", "dataclass_encoder"]


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
        """The stream's index of a public key, listed once by its modulus ``n``."""
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


def float_list(w: _Writer, seq: Sequence[Any]) -> bool:
    """A list of two or more Python floats as one little-endian float64 block (tag ``v``,
    decoded back to a list in one pass): a table of scores goes columnar this way."""
    if len(seq) < 2 or any(type(x) is not float for x in seq):
        return False
    w.parts += [b"v", _U32.pack(len(seq)), np.asarray(seq, dtype="<f8").tobytes()]
    return True


def _dec_floats(r: _Reader) -> list[float]:
    n = r.count(8)
    return np.frombuffer(r.take(8 * n), dtype="<f8").tolist()


def _enc_list(w: _Writer, seq: list) -> None:
    if seq and (float_list(w, seq) or any(hook(w, seq, None) for hook in _plugins.VECTOR_HOOKS)):
        return
    w.parts += [b"l", _U32.pack(len(seq))]
    w.nested(seq)


def _enc_tuple(w: _Writer, seq: tuple) -> None:
    w.parts += [b"t", _U32.pack(len(seq))]
    w.nested(seq)


def _enc_dict(w: _Writer, d: dict) -> None:
    w.parts += [b"d", _U32.pack(len(d))]
    w.nested(x for kv in d.items() for x in kv)


def _enc_ndarray(w: _Writer, arr: np.ndarray) -> None:
    if arr.dtype.kind != "O":
        _arrays.enc_ndarray(w, arr)
        return
    flat = arr.reshape(-1)
    for attempt in range(2):
        if any(hook(w, flat, arr.shape) for hook in _plugins.VECTOR_HOOKS):
            return
        if not attempt:
            load_plugins()
    kinds = sorted({_arrays.type_name(type(x)) for x in flat[:100]})
    raise CodecError(f"numpy arrays of dtype object are refused (only registered ciphertext vectors, "
                     f"such as Paillier's); found {kinds}")


def dataclass_encoder(tag: bytes) -> Encoder:
    """An encoder of a dataclass as ``tag | field count | names | values`` (Instance's layout)."""

    def enc(w: _Writer, obj: Any) -> None:
        fields = [f.name for f in dataclasses.fields(obj)]
        w.parts += [tag, _U32.pack(len(fields))]
        for name in fields:
            w.text(name)
        w.nested(getattr(obj, name) for name in fields)

    enc.__qualname__ = f"dataclass_encoder[{tag!r}]"
    return enc


def dataclass_decoder(cls: type) -> Decoder:
    """The inverse of :func:`dataclass_encoder`: ``cls(**fields)``, CodecError on bad names."""

    def dec(r: _Reader) -> Any:
        names = [r.text() for _ in range(r.count())]
        try:
            return cls(**dict(zip(names, r.nested(len(names)))))
        except TypeError as exc:
            raise CodecError(f"invalid {cls.__name__} fields {names}: {exc}") from None

    dec.__qualname__ = f"dataclass_decoder[{cls.__module__}.{cls.__qualname__}]"
    return dec


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
    list: _enc_list,
    tuple: _enc_tuple,
    dict: _enc_dict,
    np.ndarray: _enc_ndarray,
    np.generic: _arrays.enc_scalar,
}

#: types of this layer's own neighbours, imported only by the code that uses them
_LAZY: dict[str, Encoder] = {
    "backends.computing.api:Table": _enc_table,
    "gmpy2:mpz": _enc_int,
}


def _lookup(t: type) -> Encoder | None:
    fn = _ENCODERS.get(t) or _plugins.encoder_for(t)  # a plugin's type is not cached here: it may re-register
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
        load_plugins()
        fn = _lookup(t)
    if fn is None:
        raise CodecError(
            f"cannot send a value of type {_arrays.type_name(t)}: the wire format carries None, bool, int, float, "
            "str, bytes, list, tuple, dict, numeric numpy arrays/scalars, Paillier ciphertexts, "
            "Instance and Table"
        )
    return fn


def encode_parts(obj: Any) -> list[bytes | memoryview]:
    """:func:`encode` as the buffers to join, so a sender copies each byte once (into its
    messages): a large part (a numpy array's memory, valid while the array is unchanged)
    is passed on as it is, runs of small ones are joined."""
    w = _Writer()
    try:
        w.value(obj)
    except RecursionError:
        raise CodecError(f"value nested deeper than {MAX_DEPTH} levels") from None
    out: list[bytes | memoryview] = []
    small: list[Any] = [_HEAD, w.key_table()]
    for part in w.parts:
        if len(part) < _LARGE_PART:
            small.append(part)
            continue
        out += [b"".join(small), part]
        small = []
    return [*out, b"".join(small)] if small else out


def encode(obj: Any) -> bytes:
    """``obj`` as a self-contained byte string; CodecError names any type it cannot carry."""
    return b"".join(encode_parts(obj))


# ----------------------------------------------------------------------------- decoding


class _Reader:
    def __init__(self, data: Any, session: Any = None, keys: list[int] | None = None, views: bool = False):
        self.mv = memoryview(data).cast("B")
        self.pos = 0
        self.session = session
        #: the buffer is this decode's own: a large array may stay a view into it (_arrays)
        self.views = views and not self.mv.readonly
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
        fn = _DECODERS.get(tag) or _plugins.DECODERS.get(tag)
        if fn is None:
            load_plugins()
            fn = _plugins.DECODERS.get(tag)
        if fn is None:
            raise CodecError(f"unknown tag {bytes([tag])!r} at offset {self.pos - 1}{_plugins.note()}")
        return fn(self)

    def nested(self, n: int) -> list:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CodecError(f"value nested deeper than {MAX_DEPTH} levels")
        out = [self.value() for _ in range(n)]
        self.depth -= 1
        return out

    def key(self, index: int) -> Any:
        """Public key #index of the stream's key table, built by the registered key maker."""
        if index >= len(self.keys):
            raise CodecError(f"ciphertext names public key #{index}, stream has {len(self.keys)}")
        make = _plugins.key_maker()
        if make is None:
            raise CodecError(f"the stream lists public keys but no codec plugin builds them{_plugins.note()}")
        return make(self.keys[index])


def _dec_dict(r: _Reader) -> dict:
    flat = r.nested(2 * r.count(2))
    try:
        return dict(zip(flat[::2], flat[1::2]))
    except TypeError as exc:
        raise CodecError(f"dict key is not hashable: {exc}") from None


def _dec_tuple(r: _Reader) -> tuple:
    return tuple(r.nested(r.count()))


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
    ord("v"): _dec_floats,
    ord("t"): _dec_tuple,
    ord("d"): _dec_dict,
    ord("a"): _arrays.dec_ndarray,
    ord("s"): _arrays.dec_scalar,
    ord("Q"): _dec_table,
}
_plugins.RESERVED.update(_DECODERS)


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


def decode(data: bytes | bytearray | memoryview, session: Any = None, *, _views: bool = False) -> Any:
    """The value :func:`encode` made; ``session`` rebuilds Tables. CodecError on anything else.
    Arrays are writable copies: ``data`` stays the caller's."""
    mv = memoryview(data).cast("B")
    _check_head(mv)
    r = _Reader(mv[4:], session, views=_views)
    try:
        r.keys = _read_keys(r)
        obj = r.value()
    except RecursionError:
        raise CodecError(f"value nested deeper than {MAX_DEPTH} levels") from None
    if r.pos != len(r.mv):
        raise CodecError(f"{len(r.mv) - r.pos} unexpected bytes after the value")
    return obj


def decode_chunks(parts: Sequence[bytes | memoryview], session: Any = None) -> Any:
    """``decode(b"".join(parts))`` with a single copy: the joined buffer belongs to this call,
    placed so that a top-level array's data is 64-byte aligned, and a large array is
    returned as a (writable) view into it instead of a second copy."""
    offset = _arrays.array_offset(memoryview(parts[0])[:4096], _HEAD) if parts else 0
    return decode(_arrays.aligned_join(parts, offset), session, _views=True)

