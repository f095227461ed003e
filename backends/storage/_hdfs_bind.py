"""Binding existing files on HDFS: Parquet or CSV data a party already keeps there.

A bound table's folder under the engine's base holds only ``meta.json``; its address
names the source files, read in place. Why the bind reads every file once: the meta
needs the schema, the row count and a checksum, and the id column must be a key (no
NULL, no duplicate), as for a bound Hive table. Each read checks the checksum again, so
data changed since the bind is refused by path instead of giving another model silently.
Rows are spread over partitions by the computing session (:func:`partition_of`), as the
files are not partitioned that way.
"""

from __future__ import annotations

import hashlib
import posixpath
from typing import TYPE_CHECKING, Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from backends.storage._arrow import stored_columns, unify_types
from backends.storage.api import TableMeta
from flow.core.errors import StorageError

if TYPE_CHECKING:
    from backends.storage.hdfs import HdfsEngine

#: file name ending -> format, for a path bound without "format"
EXTENSIONS = {".parquet": "parquet", ".parq": "parquet", ".csv": "csv"}


def _parquet(data: bytes, id_column: str) -> pa.Table:
    # no thread pool: one pool left running aborts the process at exit (see _arrow.parquet_rows)
    return pq.read_table(pa.BufferReader(data), use_threads=False, pre_buffer=False)


def _csv(data: bytes, id_column: str) -> pa.Table:
    return pacsv.read_csv(pa.BufferReader(data), read_options=pacsv.ReadOptions(use_threads=False),
                          convert_options=pacsv.ConvertOptions(column_types={id_column: pa.string()}))


#: format -> decoder of one whole file
FORMATS: dict[str, Callable[[bytes, str], pa.Table]] = {"parquet": _parquet, "csv": _csv}


def source_of(address: str | dict) -> tuple[str, str | None]:
    """(absolute path, format or None) from "/path" or {"path": .., "format": ..}."""
    path, fmt = (address, None) if isinstance(address, str) else (address.get("path"), address.get("format"))
    if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
        raise StorageError(f"hdfs bind address needs an absolute \"path\" without '..', got {address!r}")
    if fmt is not None and fmt not in FORMATS:
        raise StorageError(f"hdfs bind format {fmt!r} is not one of {', '.join(FORMATS)}")
    return posixpath.normpath(path), fmt


def _format_of(path: str, fmt: str | None, label: str) -> str:
    if fmt is not None:
        return fmt
    found = EXTENSIONS.get(posixpath.splitext(path)[1].lower())
    if found is None:
        raise StorageError(f"cannot bind {label}: hdfs path {path} is neither .parquet nor .csv; "
                           "give the address a \"format\" (parquet or csv)")
    return found


def data_files(engine: "HdfsEngine", path: str, fmt: str | None, label: str) -> tuple[list[str], str]:
    """The files a path holds (the file itself, or a folder's visible files) and their format."""
    status = engine.fs.status(path)
    if status is None:
        raise StorageError(f"cannot bind {label}: hdfs path {path} does not exist ({engine.url})")
    if status["type"] != "DIRECTORY":
        return [path], _format_of(path, fmt, label)
    with engine.fs.errors(f"bind {label}", path):
        entries = engine.client.list(path, status=True)
    files = sorted(posixpath.join(path, n) for n, s in entries
                   if s["type"] == "FILE" and not n.startswith((".", "_")) and s["length"] > 0)
    if not files:
        raise StorageError(f"cannot bind {label}: hdfs path {path} holds no data files")
    formats = {_format_of(f, fmt, label) for f in files}
    if len(formats) > 1:
        raise StorageError(f"cannot bind {label}: hdfs path {path} mixes {' and '.join(sorted(formats))} files")
    return files, formats.pop()


def _file_bytes(engine: "HdfsEngine", path: str, doing: str) -> bytes:
    with engine.fs.errors(doing, path):
        return engine.fs.read(path)


def _decode(data: bytes, fmt: str, id_column: str, where: str) -> pa.Table:
    try:
        return FORMATS[fmt](data, id_column)
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"{where}: not a readable {fmt} file: {exc}") from exc


def _readable(t: pa.DataType) -> pa.DataType:
    """Numbers, booleans and text are kept; dates, times and the rest are read as text."""
    keep = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)
    return t if keep or pa.types.is_string(t) else pa.string()


def bound_meta(engine: "HdfsEngine", namespace: str, name: str, address: str | dict, id_column: str,
               label_column: str | None, partitions: int | None) -> TableMeta:
    """Meta of the files at ``address`` bound as ``namespace/name``, reading each once."""
    label = f"{namespace}/{name}"
    path, fmt = source_of(address)
    if path == engine.base or path.startswith(engine.base.rstrip("/") + "/"):
        raise StorageError(f"cannot bind {label}: hdfs path {path} is inside {engine.base}, where fedweave keeps its "
                           "own tables; bind data kept elsewhere")
    files, fmt = data_files(engine, path, fmt, label)
    digest, count, ids, columns = hashlib.sha256(), 0, set(), None
    seen: list[set[pa.DataType]] = []
    for file in files:
        data = _file_bytes(engine, file, f"bind {label}")
        digest.update(data)
        arrow = _decode(data, fmt, id_column, f"cannot bind {label}: hdfs path {file}")
        names = arrow.schema.names
        if id_column not in names:
            raise StorageError(f"cannot bind {label}: hdfs path {file} has no id column '{id_column}'; "
                               f"its columns are {names}")
        if columns is None:
            columns = [c for c in names if c != id_column]
            if label_column is not None and label_column not in columns:
                raise StorageError(f"cannot bind {label}: hdfs path {file} has no label column '{label_column}'")
            seen = [set() for _ in columns]
        elif sorted(names) != sorted([id_column, *columns]):
            raise StorageError(f"cannot bind {label}: hdfs path {file} has columns {names}, "
                               f"unlike {files[0]} ({[id_column, *columns]})")
        keys = arrow.column(id_column).cast(pa.string())
        present = [k for k in keys.to_pylist() if k is not None]
        before = len(ids)
        ids.update(present)
        repeated = len(present) - (len(ids) - before)
        if keys.null_count or repeated:
            raise StorageError(f"cannot bind {label}: id column '{id_column}' of hdfs path {file} has "
                               f"{keys.null_count} NULL and {repeated} repeated values")
        for j, column in enumerate(columns):
            seen[j].add(_readable(arrow.schema.field(column).type))
        count += arrow.num_rows
    if columns is None:  # data_files found at least one file, so this is not reached
        raise StorageError(f"cannot bind {label}: no data files")
    dtypes = [str(unify_types(c, s)) for c, s in zip(columns, seen)]
    return TableMeta(
        namespace=namespace, name=name, engine=engine.engine, id_column=id_column, columns=columns, dtypes=dtypes,
        label_column=label_column, count=count, partitions=partitions or engine.bind_partitions,
        sha256=digest.hexdigest(),
        address={"url": engine.url, "path": path, "files": files, "format": fmt, "bound": True},
    )


def bound_rows(engine: "HdfsEngine", stored: TableMeta) -> Iterator[tuple[str, tuple]]:
    """The rows of a bound table's files, one file at a time; the checksum is verified
    once all are read."""
    label, address = f"{stored.namespace}/{stored.name}", stored.address
    digest = hashlib.sha256()
    for file in address["files"]:
        data = _file_bytes(engine, file, f"read table {label}")
        digest.update(data)
        arrow = _decode(data, address["format"], stored.id_column, f"table {label}: hdfs path {file}")
        try:
            keys = arrow.column(stored.id_column).cast(pa.string()).to_pylist()
            cols = stored_columns(arrow, stored)
        except KeyError as exc:
            raise StorageError(f"table {label}: hdfs path {file} has no column {exc}") from exc
        except pa.ArrowException as exc:
            raise StorageError(f"table {label}: hdfs path {file} no longer reads as bound: {exc}") from exc
        yield from zip(keys, zip(*cols) if cols else ((),) * len(keys))
    if digest.hexdigest() != stored.sha256:
        raise StorageError(f"table {label}: the data at hdfs path {address['path']} changed since it was bound "
                           "(sha256 differs); bind it again")
