"""Tables as Hive tables through HiveServer2 (pyhive): one Hive database holds them all.

A table ``(namespace, name)`` is the Hive table ``<database>.fw_<ns>_2<name>`` (names
escaped to Hive's lower-case ``[a-z0-9_]``: ``_`` -> ``__``, ``-`` -> ``_0``, ``.`` ->
``_1``, capital X -> ``_x``; names too long for that become ``fwh_<sha256>``), stored as
Parquet and partitioned by ``fw_part``: one Hive partition per fedweave partition, so a
read streams partition by partition with partition pruning. The TableMeta lives in the
table's TBLPROPERTIES (``fedweave.meta.N``: base64 JSON in chunks, as Hive caps a value's
length), so meta, exists and list are metastore lookups, with no Spark/MapReduce job.

Writing: rows go to a temp table, which replaces the named one by two renames once
complete (readers see the old table or the new one). Rows travel as SQL text in batches
(see :class:`InsertTarget`); as column types are known only after the last partition (ints in
one partition and floats in another make a double), a table larger than one batch goes
as text into a staging table first, cast into the typed temp table by one INSERT ...
SELECT. With ``staging_dir`` set (a folder the HiveServer2 process sees at the same path:
the same host or a shared mount) each partition is instead written as a local Parquet
file and loaded with LOAD DATA LOCAL INPATH, which is several times faster.

``bind`` registers an existing Hive table as a named table without copying it: a view
holds its meta; reads scan the source table, spreading rows over partitions with
``pmod(crc32(id), n)``, which is :func:`partition_of`. Its sha256 is a fingerprint of
the source computed by the server (count and a sum of row hashes), taken at bind time.
Writing a Table that is a bound table's read, unchanged (a Reader's output, kept by the
job), binds the same source under the new name instead of copying the rows.

Config (``storage_engine: hive``): ``host``, ``port`` (10000), ``database`` (fedweave),
``username``, ``password``, ``auth`` (NONE, NOSASL, LDAP, CUSTOM), ``staging_dir``,
``batch_rows`` (rows per INSERT), ``bind_partitions`` (default partitions of a bound table),
``dialect`` ("spark": the Spark Thrift Server, rows sent as JSON; "hive": a Hive
HiveServer2, rows sent as multi-row VALUES, always through the staging table).
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import threading
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from backends.computing.api import Session, Table
from backends.storage._arrow import (
    Scanned,
    arrow_type,
    check_columns,
    explicit_types,
    ipc_bytes,
    write_partitions,
    writing,
)
from backends.storage._bound_reads import BoundReads
from backends.storage._hive_bind import bound_meta, check_source, source_of
from backends.storage._hive_sql import (
    HIVE_TYPES,
    PART_COLUMN,
    InsertTarget,
    error_text,
    hive_columns,
    hive_name,
    hive_type,
    ident,
    name_prefix,
    sql_text,
)
from backends.storage.api import StorageEngine, TableMeta
from flow.core.errors import StorageError

META_KEY, META_CHUNK = "fedweave.meta", 3000


class HiveEngine(StorageEngine):
    """Fedweave tables in one Hive database, over a HiveServer2 connection."""

    engine = "hive"

    def __init__(self, host: str = "127.0.0.1", port: int = 10000, database: str = "fedweave",
                 username: str | None = None, password: str | None = None, auth: str = "NONE",
                 staging_dir: str | Path | None = None, batch_rows: int = 50_000, bind_partitions: int = 4,
                 dialect: str = "spark"):
        try:
            from pyhive import hive  # noqa: F401
        except ImportError as exc:
            raise StorageError("the hive engine needs pyhive with thrift_sasl: "
                               f"pip install 'fedweave[hive]' ({exc})") from exc
        self.host, self.port, self.database = host, int(port), ident("database", database)
        self.username, self.password, self.auth = username or "fedweave", password, auth
        self.staging_dir = Path(staging_dir).resolve() if staging_dir else None
        self.batch_rows, self.bind_partitions = int(batch_rows), int(bind_partitions)
        if dialect not in ("spark", "hive"):
            raise StorageError(f"hive dialect {dialect!r} is not one of 'spark', 'hive'")
        self.dialect = dialect
        self._lock = threading.RLock()
        self._conn = None
        self._reads = BoundReads()  # Tables read from bound data: writing one back binds again
        self._run(f"CREATE DATABASE IF NOT EXISTS `{self.database}`", "create the database")

    def __repr__(self) -> str:
        return f"HiveEngine({self.host}:{self.port}, database={self.database!r})"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_conn": None, "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.RLock())

    def close(self) -> None:
        """Close the shared HiveServer2 session (a later call opens a new one)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # -- connection

    def connect(self):
        """A new HiveServer2 session (pyhive connection) with dynamic partitions allowed."""
        from pyhive import hive

        try:
            conn = hive.connect(host=self.host, port=self.port, username=self.username,
                                password=self.password, auth=self.auth)
            with contextlib.closing(conn.cursor()) as cursor:
                cursor.execute("SET hive.exec.dynamic.partition.mode=nonstrict")
        except Exception as exc:
            raise StorageError(f"cannot connect to HiveServer2 at {self.host}:{self.port}: {exc}") from exc
        return conn

    def _cursor(self, sql: str, doing: str, conn=None):
        """A cursor that ran ``sql`` (on ``conn`` or the shared session); any failure is a
        StorageError saying what was being done."""
        if conn is None:
            if self._conn is None:
                self._conn = self.connect()
            conn = self._conn
        cursor = conn.cursor(arraysize=10_000)
        try:
            cursor.execute(sql)
        except Exception as exc:
            if conn is self._conn and ("TTransport" in type(exc).__name__ or isinstance(exc, OSError)):
                self._conn = None  # a broken session: reconnect next time
            raise StorageError(f"cannot {doing} on Hive {self.host}:{self.port}: {error_text(exc)}") from exc
        return cursor

    def _run(self, sql: str, doing: str) -> list[tuple]:
        """Run one statement on the shared session (one at a time) and fetch its rows."""
        with self._lock, contextlib.closing(self._cursor(sql, doing)) as cursor:  # closing frees the server's operation
            return cursor.fetchall() if cursor.description else []

    def _tables(self, database: str, pattern: str | None = None) -> list[str]:
        like = f" LIKE '{pattern}'" if pattern else ""
        show = f"SHOW TABLES IN `{database}`{like}"
        with self._lock, contextlib.closing(self._cursor(show, f"list {database}")) as cursor:
            names = [d[0].lower() for d in cursor.description]
            at = next((names.index(n) for n in ("tablename", "tab_name") if n in names), 0)
            return sorted(row[at] for row in cursor.fetchall())

    def _properties(self, table: str) -> dict[str, str]:
        return dict(self._run(f"SHOW TBLPROPERTIES {self._q(table)}", f"read the properties of {table}"))

    def _stored_meta(self, table: str, label: str) -> TableMeta:
        props = self._properties(table)
        try:
            text = "".join(props[f"{META_KEY}.{i}"] for i in range(int(props[f"{META_KEY}.parts"])))
            return TableMeta.model_validate_json(base64.b64decode(text))
        except (KeyError, ValueError) as exc:
            raise StorageError(f"table {label}: Hive table {self.database}.{table} "
                               "holds no readable fedweave meta") from exc

    def _set_meta(self, table: str, meta: TableMeta, keyword: str) -> None:
        text = base64.b64encode(meta.model_dump_json().encode()).decode()
        chunks = [text[i:i + META_CHUNK] for i in range(0, len(text), META_CHUNK)] or [""]
        props = {f"{META_KEY}.parts": str(len(chunks)), **{f"{META_KEY}.{i}": c for i, c in enumerate(chunks)}}
        pairs = ", ".join(f"'{k}'='{v}'" for k, v in props.items())
        self._run(f"ALTER {keyword} {self._q(table)} SET TBLPROPERTIES ({pairs})", f"store the meta of {table}")

    def _describe(self, database: str, table: str) -> list[tuple[str, str]]:
        """(column, Hive type) of a table, partition columns included once."""
        schema: list[tuple[str, str]] = []
        for column, declared, *_ in self._run(f"DESCRIBE `{database}`.`{table}`", f"describe {database}.{table}"):
            if not column or column.startswith("#"):
                break
            schema.append((column, declared))
        return schema

    def _q(self, table: str) -> str:
        return f"`{self.database}`.`{table}`"

    def _rename(self, keyword: str, src: str, dst: str, doing: str) -> None:
        self._run(f"ALTER {keyword} {self._q(src)} RENAME TO {self._q(dst)}", doing)

    @staticmethod
    def _keyword(meta: TableMeta | None) -> str:
        return "VIEW" if meta is not None and meta.address.get("view") else "TABLE"

    def _drop(self, table: str, keyword: str = "TABLE") -> None:
        with contextlib.suppress(StorageError):
            self._run(f"DROP {keyword} IF EXISTS {self._q(table)}", f"drop {table}")

    # -- writing

    def write(self, table: Table, meta: TableMeta) -> TableMeta:
        rebound = self._reads.rebound(table, meta)
        if rebound is not None:  # a bound table's rows, unchanged: a view over the same source
            view = f"{self.database}.{hive_name(meta.namespace, meta.name)}"
            return self._register_view(rebound.model_copy(update={"address": {**rebound.address, "view": view}}))
        label = f"{meta.namespace}/{meta.name}"
        base = hive_name(meta.namespace, meta.name)
        columns = check_columns(meta, label)
        explicit = explicit_types(meta, columns, label)
        for column, dtype in zip(columns, meta.dtypes if explicit else []):
            hive_type(label, column, dtype)
        id_col, cols = hive_columns(meta.id_column, columns)
        token = uuid.uuid4().hex[:12]
        tmp, staging = f"{base}_3t{token}", f"{base}_3s{token}"
        local = self.staging_dir / f"{base}_{token}" if self.staging_dir else None
        target = InsertTarget(self, meta, label, id_col, cols, tmp, staging, list(meta.dtypes) if explicit else None)
        address = {"host": self.host, "port": self.port, "database": self.database, "table": base,
                   "id": id_col, "columns": cols, "partition_column": PART_COLUMN}
        try:
            with writing(label, lambda: self._drop(tmp)):
                if local:
                    scanned = self._load(table, meta, columns, explicit, target, local)
                else:
                    scanned = self._scan(table, meta, columns, explicit, target.take)
                    target.finish(scanned.dtypes)
                stored = scanned.stored(meta, self.engine, address)
                self._set_meta(tmp, stored, "TABLE")
                self._swap(tmp, base, "TABLE", label)
        finally:
            if target.staged:
                self._drop(staging)
            if local:
                shutil.rmtree(local, ignore_errors=True)
        return stored

    def _create(self, table: str, meta: TableMeta, columns_sql: str) -> None:
        """A partitioned Parquet table tagged with the fedweave name it is being made for."""
        self._run(f"CREATE TABLE {self._q(table)} ({columns_sql}) PARTITIONED BY ({PART_COLUMN} INT) "
                  f"STORED AS PARQUET TBLPROPERTIES ('fedweave.namespace'='{meta.namespace}', "
                  f"'fedweave.name'='{meta.name}')", f"create {table}")

    def _scan(self, table: Table, meta: TableMeta, columns: list[str], explicit: list[pa.DataType] | None,
              take: Callable[[int, pa.Table], None]) -> Scanned:
        """Each partition checked, typed and fingerprinted (as an Arrow IPC stream: the
        server keeps the files), then handed to ``take``; refuses dtypes Hive cannot store."""
        label = f"{meta.namespace}/{meta.name}"
        scanned = write_partitions(table, meta, columns, explicit, label, ipc_bytes,
                                   lambda index, arrow, data: take(index, arrow))
        for column, dtype in zip(columns, scanned.dtypes):
            hive_type(label, column, dtype)
        return scanned

    def _load(self, table: Table, meta: TableMeta, columns: list[str], explicit: list[pa.DataType] | None,
              target: "InsertTarget", local: Path) -> Scanned:
        """Each partition as a local Parquet file (re-cast once the column types are known),
        loaded into its Hive partition with LOAD DATA LOCAL INPATH."""
        local.mkdir(parents=True)
        names = [target.id_col, *target.cols]

        def take(index: int, arrow: pa.Table) -> None:
            if arrow.num_rows:
                pq.write_table(arrow.rename_columns(names), local / f"part-{index:05d}.parquet")

        scanned = self._scan(table, meta, columns, explicit, take)
        wanted = pa.schema([(names[0], pa.string())] + [(c, pa.string() if d == "null" else arrow_type(d))
                                                         for c, d in zip(names[1:], scanned.dtypes)])
        target.create(scanned.dtypes)
        for index in range(scanned.partitions):
            path = local / f"part-{index:05d}.parquet"
            if not path.exists():
                continue
            part = pq.read_table(path, use_threads=False)
            if part.schema != wanted:
                pq.write_table(part.cast(wanted), path)
            self._run(f"LOAD DATA LOCAL INPATH {sql_text(str(path))} INTO TABLE {self._q(target.tmp)} "
                      f"PARTITION ({PART_COLUMN}={index})", f"load partition {index} of {target.label}")
        return scanned

    def _swap(self, tmp: str, base: str, keyword: str, label: str) -> None:
        """Old object aside, new one in place, old one dropped."""
        old = f"{base}_3o{uuid.uuid4().hex[:12]}"
        previous = self._stored_meta(base, label) if base in self._tables(self.database, base) else None
        old_keyword = self._keyword(previous)
        if previous is not None:
            self._rename(old_keyword, base, old, f"move the earlier {label} aside")
        try:
            self._rename(keyword, tmp, base, f"move {label} into place")
        except StorageError:
            if previous is not None:
                with contextlib.suppress(StorageError):
                    self._rename(old_keyword, old, base, f"restore the earlier {label}")
            raise
        if previous is not None:
            self._drop(old, old_keyword)

    def _recover(self, base: str) -> bool:
        """Whether ``base`` exists, after restoring one a writer died leaving aside."""
        found = self._tables(self.database, f"{base}|{base}_3o*")
        if base in found:
            return True
        for old in reversed(found):
            with contextlib.suppress(StorageError):
                self._rename(self._keyword(self._stored_meta(old, base)), old, base, "restore a table left aside")
                return True
        return False

    # -- reading

    def meta(self, namespace: str, name: str) -> TableMeta:
        base = hive_name(namespace, name)
        if not self._recover(base):
            raise StorageError(f"table {namespace}/{name} does not exist (no Hive table {self.database}.{base})")
        return self._stored_meta(base, f"{namespace}/{name}")

    def read(self, meta: TableMeta, session: Session) -> Table:
        stored = self.meta(meta.namespace, meta.name)
        if not stored.address.get("view"):
            return session.from_partitions(self._stream(stored), stored.partitions)
        check_source(self, stored)
        return self._reads.remember(session.from_partitions(self._stream(stored), stored.partitions), stored)

    def _stream(self, stored: TableMeta) -> Iterator[list[tuple[str, tuple]]]:
        """One query per partition, fetched in batches: written tables prune to their
        ``fw_part`` partition; bound ones filter on the hash that places each key."""
        address, label = stored.address, f"{stored.namespace}/{stored.name}"
        source = f"`{ident('database', address['database'])}`.`{ident('table', address['table'])}`"
        key = f"CAST(`{ident('column', address['id'])}` AS STRING)"
        values = "".join(f", CAST(`{ident('column', c)}` AS {HIVE_TYPES[d]})"
                         for c, d in zip(address["columns"], stored.dtypes))
        part_col = address.get("partition_column")
        with contextlib.closing(self.connect()) as conn:  # its own session: the stream outlives other calls
            for index in range(stored.partitions):
                where = f"{part_col} = {index}" if part_col else f"pmod(crc32({key}), {stored.partitions}) = {index}"
                rows: list[tuple[str, tuple]] = []
                with contextlib.closing(self._cursor(f"SELECT {key}{values} FROM {source} WHERE {where}",  # noqa: S608 - ident()-checked
                                                     f"read table {label}", conn)) as cursor:
                    while batch := cursor.fetchmany():
                        rows.extend((row[0], tuple(row[1:])) for row in batch)
                yield rows

    def exists(self, namespace: str, name: str) -> bool:
        return self._recover(hive_name(namespace, name))

    def delete(self, namespace: str, name: str) -> None:
        base = hive_name(namespace, name)
        if base in self._tables(self.database, base):
            with contextlib.suppress(StorageError):
                keyword = self._keyword(self._stored_meta(base, f"{namespace}/{name}"))
                return self._drop(base, keyword)
            self._drop(base)

    def list(self, namespace: str | None = None) -> list[TableMeta]:
        prefix = "fw_" if namespace is None else name_prefix(namespace)
        found = []
        for table in self._tables(self.database):
            if not (table.startswith(prefix) or table.startswith("fwh_")):
                continue
            with contextlib.suppress(StorageError):
                meta = self._stored_meta(table, table)
                if hive_name(meta.namespace, meta.name) == table and namespace in (None, meta.namespace):
                    found.append(meta)
        return sorted(found, key=lambda m: (m.namespace, m.name))

    # -- binding

    def bind(self, namespace: str, name: str, address: str | dict, id_column: str = "id",
             label_column: str | None = None, partitions: int | None = None) -> TableMeta:
        """Register the existing Hive table ``address`` ("database.table" or a dict with
        those keys) as ``namespace/name`` without copying it; its other columns are the
        table's columns. StorageError naming the table or column when either is missing."""
        database, source = source_of(address)
        meta = bound_meta(self, namespace, name, database, source, id_column, label_column, partitions)
        return self._register_view(meta)

    def _register_view(self, meta: TableMeta) -> TableMeta:
        """A view over a bound table's source, holding ``meta``, in place of ``namespace/name``."""
        base, label = hive_name(meta.namespace, meta.name), f"{meta.namespace}/{meta.name}"
        source = f"`{ident('database', meta.address['database'])}`.`{ident('table', meta.address['table'])}`"
        tmp = f"{base}_3t{uuid.uuid4().hex[:12]}"
        try:
            self._run(f"CREATE VIEW {self._q(tmp)} TBLPROPERTIES ('fedweave.namespace'='{meta.namespace}', "  # noqa: S608 - checked ids
                      f"'fedweave.name'='{meta.name}') AS SELECT * FROM {source}", f"bind {label}")
            self._set_meta(tmp, meta, "VIEW")
            self._swap(tmp, base, "VIEW", label)
        except BaseException:
            self._drop(tmp, "VIEW")
            raise
        return meta
