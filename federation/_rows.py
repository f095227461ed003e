"""A Table's rows on the wire: (key, value) pairs as Arrow IPC streams of two binary
columns, each cell one value of :mod:`federation.codec` without a stream head. A
stream's schema metadata lists the Paillier public keys its cells use, once, so a
partition of ciphertexts carries its modulus once and not per row.

Where every value of a segment is a Python float (a table of scores) or is taken by a
codec plugin's vector hook (a table of ciphertexts under one key: HeteroLR's ``[[wx_h]]``
and ``[[d]]``), the segment is
columnar: metadata ``fedweave.values: vector``, the value column's first cell holds all the
values as one vector and the other cells are empty. That is one fixed-width block instead
of one codec value per row, and it decodes in a single vectorised pass.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterable, Iterator

from federation import _plugins
from federation.codec import VERSION, _Reader, _Writer, float_list
from flow.core.errors import CodecError

_META_KEYS = b"fedweave.paillier_n"
_META_LAYOUT, _VECTOR = b"fedweave.values", b"vector"
_META_KEY_LAYOUT, _TEXT = b"fedweave.keys", b"text"


def _row_batch(cells: list[tuple[bytes, bytes]], w: _Writer, vector: bool = False, text_keys: bool = False) -> bytes:
    import pyarrow as pa

    meta = {b"fedweave.codec": str(VERSION).encode(), _META_KEYS: ",".join(f"{n:x}" for n in w.keys).encode()}
    if vector:
        meta[_META_LAYOUT] = _VECTOR
    if text_keys:
        meta[_META_KEY_LAYOUT] = _TEXT
    schema = pa.schema([("key", pa.binary()), ("value", pa.binary())], metadata=meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        if cells:
            keys, values = zip(*cells)
            writer.write_batch(pa.record_batch([pa.array(keys, pa.binary()), pa.array(values, pa.binary())], schema))
    return sink.getvalue().to_pybytes()


def _vector_segment(rows: list[tuple[Any, Any]]) -> bytes | None:
    """``rows`` as one columnar segment, or None where no vector hook takes their values."""
    w = _Writer()
    values = [v for _, v in rows]
    if not (float_list(w, values) or any(hook(w, values, None) for hook in _plugins.VECTOR_HOOKS)):
        return None
    column = b"".join(w.parts)
    text = all(type(k) is str for k, _ in rows)  # ids: raw UTF-8 keys, decoded by Arrow in one pass
    keys = [k.encode() for k, _ in rows] if text else [w.bare(k) for k, _ in rows]
    cells = [(keys[0], column)] + [(k, b"") for k in keys[1:]]
    return _row_batch(cells, w, vector=True, text_keys=text)


def iter_row_segments(pairs: Iterable[tuple[Any, Any]], max_bytes: int) -> Iterator[bytes]:
    """(key, value) pairs as Arrow IPC streams of about ``max_bytes`` each (one oversized
    row makes one oversized segment). Each segment lists the Paillier keys it uses once;
    a run of ciphertexts goes columnar (module docstring), sized from its first row."""
    it = iter(pairs)
    first = next(it, None)
    if first is None:
        yield _row_batch([], _Writer())
        return
    probe = _Writer()
    row_bytes = len(probe.bare(first[0])) + len(probe.bare(first[1])) + 16
    per_segment = max(1, (max_bytes - 1024 - _keys_size(probe)) // row_bytes)
    chunk: list[tuple[Any, Any]] = [first, *islice(it, per_segment - 1)]
    while chunk:
        segment = _vector_segment(chunk) if len(chunk) > 1 else None
        if segment is not None and len(segment) <= max_bytes:
            yield segment
        else:
            yield from _cell_segments(chunk, max_bytes)
        chunk = list(islice(it, per_segment))


def _cell_segments(pairs: Iterable[tuple[Any, Any]], max_bytes: int) -> Iterator[bytes]:
    """One codec value per cell, cut at ``max_bytes``."""
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
    pairs = list(pairs)
    segment = _vector_segment(pairs) if len(pairs) > 1 else None
    if segment is not None:
        return segment
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
    vector, text = meta.get(_META_LAYOUT) == _VECTOR, meta.get(_META_KEY_LAYOUT) == _TEXT
    for batch in batches:
        if batch.column(0).null_count or batch.column(1).null_count:
            raise CodecError("table cell is null")
        vs = batch.column(1).to_pylist()
        if vector:
            ks = _text_keys(batch) if text else [_decode_cell(k, keys, session) for k in batch.column(0).to_pylist()]
            out += zip(ks, _vector_values(vs, keys, session))
        else:
            ks = batch.column(0).to_pylist()
            out += [(_decode_cell(k, keys, session), _decode_cell(v, keys, session)) for k, v in zip(ks, vs)]
    return out


def _text_keys(batch: Any) -> list[str]:
    import pyarrow as pa

    try:
        return batch.column(0).cast(pa.string()).to_pylist()
    except (pa.ArrowException, ValueError) as exc:
        raise CodecError(f"table keys are not UTF-8 text: {exc}") from None


def _vector_values(cells: list[bytes], keys: list[int], session: Any) -> list[Any]:
    """The values of a columnar batch: all in its first cell, the other cells empty."""
    if not cells:
        return []
    if any(cells[1:]):
        raise CodecError("columnar table segment has values outside its first cell")
    values = _decode_cell(cells[0], keys, session)
    if not isinstance(values, list) or len(values) != len(cells):
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise CodecError(f"columnar table segment holds {got} values for {len(cells)} keys")
    return values


def _decode_cell(raw: bytes, keys: list[int], session: Any) -> Any:
    r = _Reader(raw, session, keys)
    obj = r.value()
    if r.pos != len(raw):
        raise CodecError(f"{len(raw) - r.pos} unexpected bytes after a table cell")
    return obj
