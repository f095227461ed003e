"""numpy arrays and scalars on the wire (part of :mod:`federation.codec`).

An array is its dtype string, its shape and its raw memory (C order), so the sender's
part is a view of the array and the receiver rebuilds it with one copy: only plain
memory kinds travel, never object arrays (except ciphertext vectors, which a codec
plugin writes: see :func:`federation.codec.register_vector`). The functions take the
codec's writer and reader.
"""

from __future__ import annotations

import struct
from typing import Any, Sequence

import numpy as np

from flow.core.errors import CodecError

#: numpy kinds that are plain memory: bool, ints, floats, complex, fixed-width bytes/str
_KINDS = frozenset("biufcSU")
_U8 = struct.Struct("<B")
#: bytes before a top-level array's data: head 4 | key count 4 | "a" | dtype length 1
_DTYPE_AT = 10


def type_name(t: type) -> str:
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def dtype_str(dt: np.dtype) -> bytes:
    if dt.kind not in _KINDS or dt.fields is not None or dt.subdtype is not None:
        raise CodecError(f"numpy dtype {dt} is not allowed on the wire (numeric, bool, bytes or str only)")
    return dt.str.encode()


def pack_shape(shape: Sequence[int]) -> bytes:
    return _U8.pack(len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)


def read_shape(r: Any) -> tuple[int, ...]:
    ndim = r.unpack(_U8)
    return struct.unpack(f"<{ndim}Q", r.take(8 * ndim))


def size_of(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=object)) if shape else 1


def enc_ndarray(w: Any, arr: np.ndarray) -> None:
    dt = dtype_str(arr.dtype)
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    w.parts += [b"a", _U8.pack(len(dt)), dt, pack_shape(arr.shape)]
    w.blob(memoryview(flat))


def enc_scalar(w: Any, x: np.generic) -> None:
    dt = dtype_str(x.dtype)
    w.parts += [b"s", _U8.pack(len(dt)), dt]
    w.blob(np.asarray(x).tobytes())


def _dtype(r: Any) -> np.dtype:
    raw = bytes(r.take(r.unpack(_U8)))
    try:
        dt = np.dtype(raw.decode("ascii"))
    except (TypeError, ValueError, UnicodeDecodeError):
        raise CodecError(f"invalid numpy dtype {raw!r}") from None
    dtype_str(dt)
    return dt


def dec_ndarray(r: Any) -> np.ndarray:
    """A writable array; a view into the reader's buffer when the reader owns it, the
    array is most of it (a view keeps all of it alive) and aligned; else a copy."""
    dt, shape = _dtype(r), read_shape(r)
    raw = r.blob()
    size = size_of(shape)
    if len(raw) != size * dt.itemsize:
        raise CodecError(f"array of shape {shape} and dtype {dt} needs {size * dt.itemsize} bytes, got {len(raw)}")
    try:
        if not len(raw):
            return np.zeros(shape, dtype=dt)
        arr = np.frombuffer(raw, dtype=dt).reshape(shape)
    except (ValueError, OverflowError, MemoryError) as exc:
        raise CodecError(f"invalid array of shape {shape}: {exc}") from None
    return arr if r.views and 2 * len(raw) >= len(r.mv) and arr.flags.aligned else arr.copy()


def dec_scalar(r: Any) -> np.generic:
    dt = _dtype(r)
    raw = r.blob()
    if len(raw) != dt.itemsize:
        raise CodecError(f"numpy scalar of dtype {dt} needs {dt.itemsize} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=dt)[0]


def array_offset(head: memoryview, stream_head: bytes) -> int:
    """Where the data of a stream's top-level array starts (0 if the stream is not one)."""
    if len(head) <= _DTYPE_AT or bytes(head[:4]) != stream_head or bytes(head[4:9]) != b"\0\0\0\0a":
        return 0
    at = _DTYPE_AT + head[_DTYPE_AT - 1]  # the ndim byte, after the dtype string
    return at + 1 + 8 * head[at] + 8 if len(head) > at else 0  # ndim, shape, blob length


def aligned_join(parts: Sequence[bytes | memoryview], data_offset: int) -> memoryview:
    """The parts joined into one new writable buffer, placed so that byte ``data_offset``
    sits on a 64-byte boundary (where an array's data starts)."""
    total = sum(len(p) for p in parts)
    raw = np.empty(total + 64, dtype=np.uint8)
    start = -(raw.ctypes.data + data_offset) % 64
    buf, pos = raw[start : start + total], 0
    for p in parts:
        buf[pos : pos + len(p)] = np.frombuffer(p, dtype=np.uint8)
        pos += len(p)
    return memoryview(buf)
