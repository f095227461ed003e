"""Rows <-> Arrow and the one partition-writing loop, shared by every engine that stores
tables as Arrow/Parquet data (localfs, HDFS, Hive), so they accept and refuse exactly the
same rows with the same words, and fingerprint and type them the same way."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from backends.computing.api import Table
from backends.storage.api import TableMeta
from flow.core.errors import FedweaveError, StorageError

_CONVERT_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError)


def arrow_type(name: str) -> pa.DataType | None:
    """The arrow type for a dtype name stored in meta, or None when it has no alias."""
    try:
        return pa.type_for_alias(name)
    except (ValueError, KeyError):
        return None


def unify_types(column: str, types: set[pa.DataType]) -> pa.DataType:
    """The one type of a column whose partitions were inferred separately."""
    kinds = {t for t in types if not pa.types.is_null(t)}
    if len(kinds) <= 1:
        return kinds.pop() if kinds else pa.null()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in kinds):
        return pa.float64()
    raise StorageError(f"column '{column}' holds values of mixed types: {', '.join(sorted(map(str, kinds)))}")


def _row_key(key: Any) -> str:
    if isinstance(key, bytes):
        raise StorageError(f"table keys must be strings, got bytes {key!r}")
    return key if isinstance(key, str) else str(key)  # str() keeps partition_of's placement


def check_columns(meta: TableMeta, label: str) -> list[str]:
    """The non-id columns, refusing duplicates, an id among them, or a label not among them."""
    columns = list(meta.columns)
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise StorageError(f"table {label}: duplicate column names {dupes}")
    if meta.id_column in columns:
        raise StorageError(f"table {label}: the id column '{meta.id_column}' must not be among columns")
    if meta.label_column is not None and meta.label_column not in columns:
        raise StorageError(f"table {label}: label column '{meta.label_column}' is not among columns {columns}")
    return columns


def explicit_types(meta: TableMeta, columns: list[str], label: str) -> list[pa.DataType] | None:
    """The arrow types meta.dtypes asks for, or None to infer them."""
    if not meta.dtypes:
        return None
    if len(meta.dtypes) != len(columns):
        raise StorageError(f"table {label}: {len(meta.dtypes)} dtypes for {len(columns)} columns")
    types = [arrow_type(t) for t in meta.dtypes]
    unknown = [t for t, parsed in zip(meta.dtypes, types) if parsed is None]
    if unknown:
        raise StorageError(f"table {label}: unknown dtype(s) {unknown}")
    return types


def rows_to_arrow(part: list[tuple[Any, Any]], id_column: str, columns: list[str],
                  explicit: list[pa.DataType] | None, index: int, label: str) -> pa.Table:
    """One partition of (key, row tuple) pairs as an arrow table: id column first."""
    width = len(columns)
    keys, rows = [], []
    for key, value in part:
        if not isinstance(value, (tuple, list)) or len(value) != width:
            got = f"{len(value)} values" if isinstance(value, (tuple, list)) else type(value).__name__
            raise StorageError(
                f"table {label}: row {key!r} must be a tuple of {width} values aligned with columns "
                f"{columns}, got {got}"
            )
        keys.append(_row_key(key))
        rows.append(value)
    values = list(zip(*rows)) if rows else [() for _ in columns]
    arrays = [pa.array(keys, type=pa.string())]
    for j, column in enumerate(columns):
        try:
            arrays.append(pa.array(values[j], type=explicit[j] if explicit else None, from_pandas=False))
        except _CONVERT_ERRORS as exc:
            where = f"table {label}: column '{column}' (partition {index})"
            raise StorageError(f"{where} cannot be stored: {exc}") from exc
    return pa.Table.from_arrays(arrays, names=[id_column, *columns])


def stored_columns(arrow: pa.Table, stored: TableMeta) -> list[list[Any]]:
    """The value columns of ``stored`` from ``arrow`` as lists, cast to the stored dtypes
    (KeyError for a missing column, ArrowException for a failed cast)."""
    cols = []
    for column, dtype in zip(stored.columns, stored.dtypes):
        col, wanted = arrow.column(column), arrow_type(dtype)
        cols.append((col.cast(wanted) if wanted is not None and col.type != wanted else col).to_pylist())
    return cols


def parquet_rows(data: bytes, stored: TableMeta, where: str) -> list[tuple[str, tuple]]:
    """One Parquet partition file as (key, value tuple) pairs in the stored dtypes.

    Read without Arrow's thread pool: partitions are small and already read in parallel by
    the computing engine, and a pool left running aborts the process at exit
    ("terminate called without an active exception")."""
    try:
        arrow = pq.read_table(pa.BufferReader(data), use_threads=False, pre_buffer=False)
        ids = arrow.column(stored.id_column).to_pylist()
        cols = stored_columns(arrow, stored)
    except (pa.ArrowException, KeyError, OSError) as exc:
        raise StorageError(f"table {stored.namespace}/{stored.name}: cannot read {where}: {exc}") from exc
    values = zip(*cols) if cols else ((),) * len(ids)
    return list(zip(ids, values))


def parquet_bytes(arrow: pa.Table) -> bytes:
    """A partition as a Parquet file (the same bytes ``pq.write_table`` puts on disk)."""
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    return sink.getvalue().to_pybytes()


def ipc_bytes(arrow: pa.Table) -> bytes:
    """A partition as an Arrow IPC stream: what Hive fingerprints, its files being the server's."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, arrow.schema) as writer:
        writer.write_table(arrow)
    return sink.getvalue().to_pybytes()


@dataclass(frozen=True)
class Scanned:
    """What writing all partitions found: the meta fields a stored table gets from its rows."""

    columns: list[str]
    dtypes: list[str]
    count: int
    partitions: int
    sha256: str

    def stored(self, meta: TableMeta, engine: str, address: dict[str, Any]) -> TableMeta:
        """``meta`` as stored: these fields, the engine and where the table now lives."""
        return meta.model_copy(update={
            "engine": engine, "address": address, "columns": self.columns, "dtypes": self.dtypes,
            "count": self.count, "partitions": self.partitions, "sha256": self.sha256,
            "created": datetime.now(timezone.utc),
        })


def write_partitions(table: Table, meta: TableMeta, columns: list[str], explicit: list[pa.DataType] | None,
                     label: str, encode: Callable[[pa.Table], bytes],
                     take: Callable[[int, pa.Table, bytes], None]) -> Scanned:
    """Each partition checked and typed by arrow, encoded, fingerprinted (sha256 over the
    encoded bytes in partition order), then handed to ``take(index, arrow, data)``. Column
    dtypes are meta's explicit ones, else unified over all partitions."""
    digest, count, n = hashlib.sha256(), 0, 0
    seen: list[set[pa.DataType]] = [set() for _ in columns]
    part: list[tuple[Any, Any]]
    for index, part in enumerate(table.iter_partitions()):
        arrow = rows_to_arrow(part, meta.id_column, columns, explicit, index, label)
        data = encode(arrow)
        digest.update(data)
        take(index, arrow, data)
        for j, column in enumerate(columns):
            seen[j].add(arrow.schema.field(column).type)
        count, n = count + arrow.num_rows, index + 1
    dtypes = list(meta.dtypes) if explicit else [str(unify_types(c, s)) for c, s in zip(columns, seen)]
    return Scanned(columns, dtypes, count, n, digest.hexdigest())


@contextlib.contextmanager
def writing(label: str, undo: Callable[[], None]) -> Iterator[None]:
    """A write that fails (or is interrupted) runs ``undo`` (drop the temp table or
    folder); an unexpected error becomes a StorageError naming the table."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(Exception):
            undo()
        if isinstance(exc, Exception) and not isinstance(exc, FedweaveError):
            raise StorageError(f"writing table {label} failed: {type(exc).__name__}: {exc}") from exc
        raise
