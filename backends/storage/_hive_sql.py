"""Hive SQL text for the hive engine: identifiers, table names, literals, column types, and
the INSERT batches that carry rows to HiveServer2.

Kept apart from the engine because it is pure text: nothing here talks to a server except
:class:`InsertTarget`, through the engine's ``_run``/``_create``/``_q``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from backends.storage.api import TableMeta
from backends.storage.filetree import check_name
from flow.core.errors import StorageError

if TYPE_CHECKING:
    from backends.storage.hive import HiveEngine

PART_COLUMN = "fw_part"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ESCAPES = {"_": "__", "-": "_0", ".": "_1"}
_MAX_READABLE = 100
_BATCH_VALUES = 1_000_000  # values (rows x columns) in one INSERT at most
#: arrow dtype name -> Hive column type
HIVE_TYPES = {"double": "DOUBLE", "float": "FLOAT", "int64": "BIGINT", "int32": "INT", "int16": "SMALLINT",
               "int8": "TINYINT", "bool": "BOOLEAN", "string": "STRING", "large_string": "STRING", "null": "STRING"}
#: Hive type as DESCRIBE prints it (up to any '(' or '<') -> the arrow dtype it is read as
_FROM_HIVE = {"double": "double", "float": "float", "bigint": "int64", "int": "int32", "integer": "int32",
              "smallint": "int16", "tinyint": "int8", "boolean": "bool", "string": "string", "varchar": "string",
              "char": "string", "decimal": "double", "date": "string", "timestamp": "string",
              "timestamp_ntz": "string"}
#: how a Python value of a column becomes text for the staging table (None -> NULL first)
_SPECIAL_FLOATS = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}
_TEXT = {bool: lambda v: "true" if v else "false", float: lambda v: _SPECIAL_FLOATS.get(repr(v), repr(v))}


def ident(what: str, value: Any) -> str:
    """A Hive identifier (database, table, column) we put in SQL: refuse anything else."""
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise StorageError(f"invalid Hive {what} {value!r}: use letters, digits and '_', not starting with a digit")
    return value


def _encode(text: str) -> str:
    return "".join(_ESCAPES.get(c) or (f"_{c.lower()}" if c.isupper() else c) for c in text)


def name_prefix(namespace: str) -> str:
    return f"fw_{_encode(check_name('namespace', namespace))}_2"


def hive_name(namespace: str, name: str) -> str:
    """The Hive table of fedweave table ``namespace/name`` (lower case, reversible)."""
    readable = name_prefix(namespace) + _encode(check_name("name", name))
    if len(readable) <= _MAX_READABLE:
        return readable
    return "fwh_" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:40]


def sql_text(value: Any) -> str:
    """A value as a SQL string literal (NULL for None); only quote and backslash need escaping."""
    if value is None:
        return "NULL"
    text = _TEXT.get(type(value), str)(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def hive_type(label: str, column: str, dtype: str) -> str:
    if dtype not in HIVE_TYPES:
        raise StorageError(f"table {label}: column '{column}' has dtype {dtype}, which the hive engine cannot store "
                           f"(it stores {', '.join(sorted(HIVE_TYPES))})")
    return HIVE_TYPES[dtype]


def hive_columns(id_column: str, columns: list[str]) -> tuple[str, list[str]]:
    """Hive column names for a written table: the given ones when Hive keeps them apart
    (it folds case), else positional ``fw_id, c0, c1, ...`` (meta keeps the real ones)."""
    names = [id_column, *columns]
    lowered = [n.lower() for n in names]
    if all(_IDENT.fullmatch(n) for n in names) and len(set(lowered)) == len(names) and PART_COLUMN not in lowered:
        return id_column, list(columns)
    return "fw_id", [f"c{j}" for j in range(len(columns))]


def error_text(exc: Exception) -> str:
    """The server's message without the Thrift response around it."""
    status = getattr(exc.args[0], "status", None) if exc.args else None
    text = getattr(status, "errorMessage", None) or str(exc)
    return text.replace("Error running query: ", "").splitlines()[0][:500]



def read_type(hive_type: str) -> str | None:
    """The arrow dtype a column of this Hive type (as DESCRIBE prints it) is read as."""
    return _FROM_HIVE.get(re.split(r"[(<]", hive_type.strip().lower(), maxsplit=1)[0])


class InsertTarget:
    """Where the INSERT path sends rows, at most ``batch_rows`` a statement.

    Spark dialect: a batch is one JSON document (an array of rows of text) in a single
    string literal, unpacked by the server (``explode(from_json(..))``): one literal
    parses far faster than a multi-row VALUES list. With the column types known (explicit
    dtypes, or a table that fits one batch) rows go straight into the typed temp table,
    cast on the way. Hive dialect, or larger tables of unknown types: rows go as text into
    a staging table (multi-row INSERT ... VALUES for Hive), which one INSERT ... SELECT
    casts into the temp table once the types are known.
    """

    def __init__(self, engine: "HiveEngine", meta: TableMeta, label: str, id_col: str, cols: list[str],
                 tmp: str, staging: str, dtypes: list[str] | None):
        self.engine, self.meta, self.label = engine, meta, label
        self.id_col, self.cols, self.tmp, self.staging = id_col, cols, tmp, staging
        self.dtypes = dtypes
        self.pending: list[list[str | None]] = []
        self.batch = max(1, min(engine.batch_rows, _BATCH_VALUES // (len(cols) + 2)))
        self.created = self.staged = False
        self.spark = engine.dialect == "spark"

    def create(self, dtypes: list[str]) -> None:
        if not self.created:
            typed = "".join(f", `{c}` {HIVE_TYPES[d]}" for c, d in zip(self.cols, dtypes))
            self.engine._create(self.tmp, self.meta, f"`{self.id_col}` STRING{typed}")
            self.created = True

    def take(self, index: int, arrow: pa.Table) -> None:
        values = [arrow.column(j).to_pylist() for j in range(arrow.num_columns)]
        part = str(index)
        for row in zip(*values):
            self.pending.append([None if v is None else _TEXT.get(type(v), str)(v) for v in row] + [part])
            if len(self.pending) >= self.batch:
                self.flush()

    def _source(self, rows: list[list[str | None]], dtypes: list[str] | None) -> str:
        """SELECT list and FROM of a JSON batch: text columns, or cast to ``dtypes``."""
        casts = [f"CAST(r[{j + 1}] AS {HIVE_TYPES[d]})" for j, d in enumerate(dtypes)] if dtypes else [
            f"r[{j + 1}]" for j in range(len(self.cols))]
        select = ", ".join(["r[0]", *casts, f"CAST(r[{len(self.cols) + 1}] AS INT)"])
        doc = sql_text(json.dumps(rows, separators=(",", ":")))
        return f"{select} FROM (SELECT explode(from_json({doc}, 'array<array<string>>')) AS r) AS batch"

    def _insert(self, table: str, rows: list[list[str | None]], dtypes: list[str] | None) -> None:
        into = f"INSERT INTO {self.engine._q(table)} PARTITION ({PART_COLUMN})"
        if self.spark:
            sql = f"{into} SELECT {self._source(rows, dtypes)}"
        else:
            sql = f"{into} VALUES " + ", ".join(
                "(" + ", ".join(map(sql_text, row[:-1])) + f", {row[-1]})" for row in rows)
        self.engine._run(sql, f"insert rows of {self.label}")

    def flush(self) -> None:
        rows, self.pending = self.pending, []
        if not rows:
            return
        if self.spark and self.dtypes is not None:
            self.create(self.dtypes)
            return self._insert(self.tmp, rows, self.dtypes)
        if not self.staged:
            self.engine._create(self.staging, self.meta, ", ".join(f"`{c}` STRING" for c in [self.id_col, *self.cols]))
            self.staged = True
        self._insert(self.staging, rows, None)

    def finish(self, dtypes: list[str]) -> None:
        """All rows seen: put what is pending or staged into the typed temp table."""
        if self.spark and not self.staged:
            self.dtypes = dtypes
            self.flush()
            return self.create(dtypes)
        self.flush()
        self.create(dtypes)
        casts = "".join(f", CAST(`{c}` AS {HIVE_TYPES[d]})" for c, d in zip(self.cols, dtypes))
        self.engine._run(f"INSERT INTO {self.engine._q(self.tmp)} PARTITION ({PART_COLUMN}) SELECT `{self.id_col}`"  # noqa: S608 - ident()-checked names
                         f"{casts}, {PART_COLUMN} FROM {self.engine._q(self.staging)}",
                         f"type the rows of {self.label}")
