"""CSV file -> stored table (what ``flow data upload`` does).

The file is read batch by batch with ``pyarrow.csv.open_csv``, never whole. Arrow infers
column types from the first block only, so when a later block does not fit (an int
column that later holds ``2.5``, a number column that later holds text) the read starts
over with that column widened (int -> double -> string): the result is typed as if the
whole file had been seen. The id column is always read as text, so ``007`` stays ``007``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from backends.computing.api import Session, Table
from backends.storage.api import StorageEngine, TableMeta
from backends.storage.lines_import import import_lines, looks_like_lines
from flow.core.errors import StorageError

_COLUMN_IN_ERROR = re.compile(r"CSV column #(\d+)")


class _Misfit(Exception):
    """A block did not fit the column types (not a ValueError, so it crosses parallelize)."""

    def __init__(self, error: pa.ArrowInvalid):
        super().__init__(str(error))
        self.error = error


def _widened(t: pa.DataType) -> pa.DataType | None:
    """The next wider type for a column a later block did not fit; None when text already."""
    if pa.types.is_null(t):
        return pa.int64()
    if pa.types.is_integer(t):
        return pa.float64()
    return None if pa.types.is_string(t) or pa.types.is_large_string(t) else pa.string()


def _readable(t: pa.DataType) -> pa.DataType:
    """Keep numbers, booleans and text; dates, times and the rest are kept as text."""
    simple = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    return t if simple or pa.types.is_string(t) or pa.types.is_null(t) else pa.string()


class _CsvSource:
    """One CSV file, its header, and the column types the next pass should use."""

    def __init__(self, path: Path, id_column: str, label_column: str | None, as_float: bool, block_size: int | None):
        self.path, self.id_column, self.label_column, self.as_float = path, id_column, label_column, as_float
        self.read_options = pacsv.ReadOptions(block_size=block_size) if block_size else pacsv.ReadOptions()
        schema = self._open({}).schema
        self.names = schema.names
        dupes = sorted({c for c in self.names if self.names.count(c) > 1})
        if dupes:
            raise StorageError(f"{path}: duplicate column names {dupes}")
        if id_column not in self.names:
            raise StorageError(f"{path}: no id column '{id_column}'; the columns are {self.names}")
        if label_column is not None and label_column not in self.names:
            raise StorageError(f"{path}: no label column '{label_column}'; the columns are {self.names}")
        self.types = {c: _readable(t) for c, t in zip(schema.names, schema.types)}
        self.types[id_column] = pa.string()
        if as_float:
            self.types.update({c: pa.float64() for c in self.names if c not in (id_column, label_column)})

    def _open(self, types: dict[str, pa.DataType]) -> pacsv.CSVStreamingReader:
        """Arrow converts the first block here already, so this may raise a misfit too."""
        convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
        try:
            return pacsv.open_csv(self.path, read_options=self.read_options, convert_options=convert)
        except pa.ArrowInvalid as exc:
            if types and _COLUMN_IN_ERROR.search(str(exc)):
                raise _Misfit(exc) from exc
            raise StorageError(f"{self.path}: not a readable CSV file: {exc}") from exc

    @property
    def columns(self) -> list[str]:
        return [c for c in self.names if c != self.id_column]

    def table(self, session: Session, partitions: int | None) -> Table:
        """The rows as a Table, streamed into the session; re-read with widened types
        until every block fits."""
        while True:
            try:
                return session.parallelize(self._pass(), partitions)
            except _Misfit as misfit:
                self._widen(misfit.error)

    def _widen(self, exc: pa.ArrowInvalid) -> None:
        """Widen the column arrow named in ``exc``, or give up with a StorageError."""
        found = _COLUMN_IN_ERROR.search(str(exc))
        column = self.names[int(found.group(1))] if found else None
        wider = _widened(self.types[column]) if column else None
        if column is None or wider is None or column == self.id_column:
            raise StorageError(f"{self.path}: {exc}") from exc
        if self.as_float and column != self.label_column:
            raise StorageError(f"{self.path}: column '{column}' is not numeric (columns_as_float): {exc}") from exc
        self.types[column] = wider

    def _pass(self) -> Iterator[tuple[str, tuple]]:
        seen: set[str] = set()
        line = 1  # the header
        id_at = self.names.index(self.id_column)
        others = [j for j in range(len(self.names)) if j != id_at]
        reader = self._open(self.types)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise _Misfit(exc) from exc
            ids = batch.column(id_at).to_pylist()
            cols = [batch.column(j).to_pylist() for j in others]
            for offset, (key, *values) in enumerate(zip(ids, *cols)):
                if not key:
                    raise StorageError(f"{self.path}: empty id in data row {line + offset}")
                if key in seen:
                    raise StorageError(f"{self.path}: duplicate id '{key}' (data row {line + offset})")
                seen.add(key)
                yield key, tuple(values)
            line += len(ids)

    def dtypes(self) -> list[str]:
        return [str(self.types[c]) for c in self.columns]


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.readline()
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc}") from exc


def import_csv(
    path: str | Path,
    engine: StorageEngine,
    session: Session,
    namespace: str,
    name: str,
    id_column: str = "id",
    label_column: str | None = None,
    partitions: int | None = None,
    columns_as_float: bool = False,
    *,
    block_size: int | None = None,
    head: bool = True,
) -> TableMeta:
    """Store a CSV file as table ``namespace/name``: key = the id column (text), value =
    the other columns in file order. ``columns_as_float`` makes every column except the
    id and the label a double. ``block_size`` (bytes per batch) defaults to arrow's.

    A file without a header row (``head=False``) or whose first row holds FATE's tag/sparse
    ``key:value`` tokens is stored as raw lines instead (``lines_import``), as FATE does."""
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"CSV file {path} does not exist")
    if path.stat().st_size == 0:
        raise StorageError(f"CSV file {path} is empty")
    engine.exists(namespace, name)  # refuses a bad namespace/name before the file is read
    if not head or looks_like_lines(_first_line(path)):
        return import_lines(path, engine, session, namespace, name, head=head, partitions=partitions)
    source = _CsvSource(path, id_column, label_column, columns_as_float, block_size)
    table = source.table(session, partitions)
    if table.count() == 0:
        raise StorageError(f"CSV file {path} has a header but no data rows")
    meta = TableMeta(
        namespace=namespace,
        name=name,
        engine=engine.engine,
        id_column=id_column,
        columns=source.columns,
        dtypes=source.dtypes(),
        label_column=label_column,
        partitions=table.partitions,
        extra={"source": str(path)},
    )
    return engine.write(table, meta)
