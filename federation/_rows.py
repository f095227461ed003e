"""A Table's rows on the wire: (key, value) pairs as Arrow IPC streams of two binary
columns, each cell one value of :mod:`federation.codec` without a stream head. A
stream's schema metadata lists the Paillier public keys its cells use, once, so a
partition of ciphertexts carries its modulus once and not per row.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from federation.codec import VERSION, _Reader, _Writer
from flow.core.errors import CodecError

_META_KEYS = b"fedweave.paillier_n"


def _row_batch(cells: list[tuple[bytes, bytes]], w: _Writer) -> bytes:
    import pyarrow as pa

    meta = {b"fedweave.codec": str(VERSION).encode(), _META_KEYS: ",".join(f"{n:x}" for n in w.keys).encode()}
    schema = pa.schema([("key", pa.binary()), ("value", pa.binary())], metadata=meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        if cells:
            keys, values = zip(*cells)
            writer.write_batch(pa.record_batch([pa.array(keys, pa.binary()), pa.array(values, pa.binary())], schema))
    return sink.getvalue().to_pybytes()


def iter_row_segments(pairs: Iterable[tuple[Any, Any]], max_bytes: int) -> Iterator[bytes]:
    """(key, value) pairs as Arrow IPC streams of about ``max_bytes`` each (one oversized
    row makes one oversized segment). Each segment lists the Paillier keys it uses once."""
    w, cells, size = _Writer(), [], 1024
    for k, v in pairs:
        cell = (w.bare(k), w.bare(v))
        grow = len(cell[0]) + len(cell[1]) + 16
        if cells and size + grow + _keys_size(w) > max_bytes:
            # w.keys may list a key only the held-back row uses: harmless, it is just unused
            yield _row_batch(cells, w)
            w, cells, size = _Writer(), [], 1024
            cell = (w.bare(k), w.bare(v))
        cells.append(cell)
        size += grow
    yield _row_batch(cells, w)


def _keys_size(w: _Writer) -> int:
    return sum((n.bit_length() + 3) // 4 + 1 for n in w.keys)


def encode_rows(pairs: Iterable[tuple[Any, Any]]) -> bytes:
    """All pairs as one Arrow IPC stream (used for one partition of a Table)."""
    w = _Writer()
    return _row_batch([(w.bare(k), w.bare(v)) for k, v in pairs], w)


def decode_rows(data: bytes | memoryview, session: Any = None) -> list[tuple[Any, Any]]:
    """The pairs of one Arrow IPC stream made by :func:`encode_rows` / :func:`iter_row_segments`."""
    import pyarrow as pa

    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        schema = reader.schema
        if schema.names != ["key", "value"] or any(f.type != pa.binary() for f in schema):
            raise CodecError(f"unexpected table schema {schema.names} (want binary key, value)")
        meta = schema.metadata or {}
        keys = [int(h, 16) for h in meta.get(_META_KEYS, b"").decode().split(",") if h]
        batches = list(reader)
    except (pa.ArrowException, ValueError, UnicodeDecodeError) as exc:
        raise CodecError(f"invalid Arrow table stream: {exc}") from None
    out: list[tuple[Any, Any]] = []
    for batch in batches:
        for k, v in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            if k is None or v is None:
                raise CodecError("table cell is null")
            out.append((_decode_cell(k, keys, session), _decode_cell(v, keys, session)))
    return out


def _decode_cell(raw: bytes, keys: list[int], session: Any) -> Any:
    r = _Reader(raw, session, keys)
    obj = r.value()
    if r.pos != len(raw):
        raise CodecError(f"{len(raw) - r.pos} unexpected bytes after a table cell")
    return obj
