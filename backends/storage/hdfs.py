"""Tables as Parquet files on HDFS, through WebHDFS: ``<base>/<namespace>/<name>/``.

The layout is localfs's (one ``part-NNNNN.parquet`` per partition plus ``meta.json``)
so a table can be copied between the two engines file by file. Why WebHDFS (the ``hdfs``
package): it is plain HTTP to the name node, so no Hadoop client, JVM or native library
is needed on the party's machine. A table is written into a hidden temp directory beside
its final place and renamed into place once complete (HDFS renames are atomic in the
name node), so readers see the old table or the new one, never a half-written one.
Data moves one partition at a time in both directions.

Config (``storage_engine: hdfs``): ``url`` (the name node's WebHDFS address, e.g.
``http://namenode:9870``; several for HA as a list or ``;``-separated), ``user`` (the
HDFS user, sent as ``user.name``), ``base`` (the folder holding all tables), ``timeout``
(seconds), ``bind_partitions`` (default partitions of a bound path). Kerberos is not
supported.

``bind`` registers Parquet or CSV files already on HDFS as a named table without copying
them (see :mod:`backends.storage._hdfs_bind`); writing a Table that is such a table's
read, unchanged (a Reader's output, kept by the job), binds the same files again.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import uuid
from datetime import datetime, timezone
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from backends.computing.api import Session, Table
from backends.storage.api import StorageEngine, TableMeta
from backends.storage._bound_reads import BoundReads
from backends.storage._hdfs_bind import bound_meta, bound_rows
from backends.storage._arrow import check_columns, explicit_types, parquet_rows, rows_to_arrow, unify_types
from backends.storage.localfs import META_FILE, PART_FILE, check_name, is_name
from flow.core.errors import FedweaveError, StorageError

try:
    import requests
    from hdfs import HdfsError, InsecureClient
except ImportError:  # pragma: no cover - the optional extra is missing
    InsecureClient = None

#: what an HDFS exception class means for the person reading the error
_EXCEPTIONS = {
    "AccessControlException": "permission denied",
    "SecurityException": "authentication refused",
    "FileNotFoundException": "no such file or directory",
    "FileAlreadyExistsException": "already exists",
    "ParentNotDirectoryException": "a parent is a file, not a directory",
    "SafeModeException": "the name node is in safe mode",
    "StandbyException": "no active name node",
}


def _describe(exc: Exception) -> str:
    kind = getattr(exc, "exception", None)
    reason = _EXCEPTIONS.get(kind or "", kind or "error")
    return f"{reason}: {exc}"


class HdfsEngine(StorageEngine):
    """Parquet tables under ``base`` on an HDFS cluster."""

    engine = "hdfs"

    def __init__(self, url: str | list[str], base: str = "/fedweave", user: str | None = None,
                 timeout: float = 60.0, bind_partitions: int = 4):
        if InsecureClient is None:
            raise StorageError("the hdfs engine needs the 'hdfs' package: pip install 'fedweave[hdfs]'")
        urls = url.split(";") if isinstance(url, str) else list(url)
        urls = [u.strip().rstrip("/") for u in urls if u and u.strip()]
        if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
            raise StorageError(f"hdfs url {url!r} must be one or more http(s)://namenode:port addresses")
        if not isinstance(base, str) or not base.startswith("/") or ".." in base.split("/"):
            raise StorageError(f"hdfs base {base!r} must be an absolute path without '..'")
        self.url = ";".join(urls)
        self.base = posixpath.normpath(base)
        self.user = user
        self.bind_partitions = int(bind_partitions)
        self.client = InsecureClient(self.url, user=user, timeout=timeout)
        self._reads = BoundReads()  # Tables read from bound data: writing one back binds again
        with self._errors("create the base folder", self.base):
            self.client.makedirs(self.base)

    def __repr__(self) -> str:
        return f"HdfsEngine({self.url!r}, base={self.base!r}, user={self.user!r})"

    def path(self, namespace: str, name: str) -> str:
        """HDFS folder of a table (whether or not it exists)."""
        return posixpath.join(self.base, check_name("namespace", namespace), check_name("name", name))

    @contextlib.contextmanager
    def _errors(self, doing: str, path: str) -> Iterator[None]:
        """HDFS and transport failures become one StorageError naming the path."""
        try:
            yield
        except HdfsError as exc:
            raise StorageError(f"cannot {doing} at hdfs path {path} ({self.url}): {_describe(exc)}") from exc
        except requests.RequestException as exc:
            raise StorageError(f"cannot {doing} at hdfs path {path}: WebHDFS at {self.url} unreachable: {exc}") from exc

    def _status(self, path: str) -> dict | None:
        with self._errors("look up", path):
            return self.client.status(path, strict=False)

    def _list(self, folder: str) -> list[str]:
        """Names in a folder; none when it does not exist."""
        with self._errors("list", folder):
            if self.client.status(folder, strict=False) is None:
                return []
            return sorted(self.client.list(folder))

    # -- writing

    def write(self, table: Table, meta: TableMeta) -> TableMeta:
        rebound = self._reads.rebound(table, meta)
        if rebound is not None:  # a bound table's rows, unchanged: bind the same files again
            return self._put_meta(rebound)
        target = self.path(meta.namespace, meta.name)
        label = f"{meta.namespace}/{meta.name}"
        columns = check_columns(meta, label)
        explicit = explicit_types(meta, columns, label)
        parent = posixpath.dirname(target)
        tmp = posixpath.join(parent, f".{meta.name}.tmp-{uuid.uuid4().hex}")
        with self._errors(f"write table {label}", tmp):
            self.client.makedirs(tmp)
        try:
            stored = self._write_parts(table, meta, columns, explicit, tmp, target, label)
            with self._errors(f"write the meta of table {label}", tmp):
                self.client.write(posixpath.join(tmp, META_FILE), data=stored.model_dump_json(indent=2).encode())
            self._swap(tmp, target, label)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.client.delete(tmp, recursive=True)
            if isinstance(exc, Exception) and not isinstance(exc, FedweaveError):
                raise StorageError(f"writing table {label} failed: {type(exc).__name__}: {exc}") from exc
            raise
        return stored

    def _write_parts(self, table: Table, meta: TableMeta, columns: list[str], explicit: list[pa.DataType] | None,
                     tmp: str, target: str, label: str) -> TableMeta:
        digest, count, n = hashlib.sha256(), 0, 0
        seen: list[set[pa.DataType]] = [set() for _ in columns]
        for index, part in enumerate(table.iter_partitions()):
            arrow = rows_to_arrow(part, meta.id_column, columns, explicit, index, label)
            sink = pa.BufferOutputStream()
            pq.write_table(arrow, sink)
            data = sink.getvalue()
            digest.update(data)
            path = posixpath.join(tmp, PART_FILE.format(index))
            with self._errors(f"write table {label}", path):
                self.client.write(path, data=data.to_pybytes(), overwrite=True)
            for j, column in enumerate(columns):
                seen[j].add(arrow.schema.field(column).type)
            count, n = count + arrow.num_rows, index + 1
        dtypes = list(meta.dtypes) if explicit else [str(unify_types(c, s)) for c, s in zip(columns, seen)]
        return meta.model_copy(update={
            "engine": self.engine, "address": {"url": self.url, "path": target}, "columns": columns,
            "dtypes": dtypes, "count": count, "partitions": n, "sha256": digest.hexdigest(),
            "created": datetime.now(timezone.utc),
        })

    def _swap(self, tmp: str, target: str, label: str) -> None:
        """Old table aside, new one in place, old one removed. One writer per table at a
        time: WebHDFS has no lock, and RENAME onto an existing folder moves into it."""
        parent, name = posixpath.split(target)
        old = posixpath.join(parent, f".{name}.old-{uuid.uuid4().hex}")
        had_old = self._status(target) is not None
        if had_old:
            with self._errors(f"move the earlier table {label} aside", target):
                self.client.rename(target, old)
        try:
            with self._errors(f"move table {label} into place", target):
                self.client.rename(tmp, target)
        except StorageError:
            if had_old:
                with contextlib.suppress(Exception):
                    self.client.rename(old, target)
            raise
        if had_old:
            with contextlib.suppress(Exception):
                self.client.delete(old, recursive=True)

    def _recover(self, target: str) -> None:
        """A writer that died between its two renames leaves the old table aside: restore it."""
        parent, name = posixpath.split(target)
        entries = self._list(parent)
        if name in entries:
            return
        aside = [e for e in entries if e.startswith(f".{name}.old-")]
        complete = [e for e in aside if self._status(posixpath.join(parent, e, META_FILE)) is not None]
        if complete:
            newest = max(complete, key=lambda e: self._status(posixpath.join(parent, e))["modificationTime"])
            with self._errors("restore the table left aside", target), contextlib.suppress(HdfsError):
                self.client.rename(posixpath.join(parent, newest), target)

    # -- reading

    def meta(self, namespace: str, name: str) -> TableMeta:
        target = self.path(namespace, name)
        self._recover(target)
        path = posixpath.join(target, META_FILE)
        try:
            with self._errors(f"read the meta of table {namespace}/{name}", path), self.client.read(path) as reader:
                text = reader.read()
        except StorageError as exc:
            if isinstance(exc.__cause__, HdfsError) and exc.__cause__.exception == "FileNotFoundException":
                raise StorageError(f"table {namespace}/{name} does not exist (no {path} on {self.url})") from None
            raise
        try:
            return TableMeta.model_validate_json(text)
        except ValueError as exc:
            raise StorageError(f"table {namespace}/{name}: corrupt {path}: {exc}") from exc

    def read(self, meta: TableMeta, session: Session) -> Table:
        stored = self.meta(meta.namespace, meta.name)
        if stored.address.get("bound"):
            return self._reads.remember(session.parallelize(bound_rows(self, stored), stored.partitions), stored)
        target = self.path(meta.namespace, meta.name)
        files = [posixpath.join(target, PART_FILE.format(i)) for i in range(stored.partitions)]
        present = set(self._list(target))
        missing = [posixpath.basename(f) for f in files if posixpath.basename(f) not in present]
        if missing:
            raise StorageError(f"table {meta.namespace}/{meta.name} at hdfs path {target} lacks {', '.join(missing)}")
        return session.from_partitions(self._stream(stored, files, target), stored.partitions)

    def _stream(self, stored: TableMeta, files: list[str], target: str) -> Iterator[list[tuple[str, tuple]]]:
        """One partition (file) at a time; the checksum is verified once all are read."""
        label = f"{stored.namespace}/{stored.name}"
        digest = hashlib.sha256()
        for path in files:
            with self._errors(f"read table {label}", path), self.client.read(path) as reader:
                data = reader.read()
            digest.update(data)
            yield parquet_rows(data, stored, f"hdfs path {path}")
        if digest.hexdigest() != stored.sha256:
            raise StorageError(f"table {label} at hdfs path {target}: data files do not match the sha256 in {META_FILE}")

    def exists(self, namespace: str, name: str) -> bool:
        target = self.path(namespace, name)
        self._recover(target)
        return self._status(posixpath.join(target, META_FILE)) is not None

    def delete(self, namespace: str, name: str) -> None:
        target = self.path(namespace, name)
        if self._status(target) is None:
            return
        gone = posixpath.join(posixpath.dirname(target), f".{name}.del-{uuid.uuid4().hex}")
        with self._errors(f"delete table {namespace}/{name}", target):
            self.client.rename(target, gone)
            try:
                self.client.delete(gone, recursive=True)
            except HdfsError:
                self.client.rename(gone, target)  # not deletable after all: keep it whole, where it was
                raise

    def list(self, namespace: str | None = None) -> list[TableMeta]:
        spaces = [check_name("namespace", namespace)] if namespace is not None else self._list(self.base)
        found = []
        for space in spaces:
            if not is_name(space):
                continue
            folder = posixpath.join(self.base, space)
            for name in self._list(folder):
                if is_name(name) and self._status(posixpath.join(folder, name, META_FILE)) is not None:
                    found.append(self.meta(space, name))
        return found

    # -- binding

    def bind(self, namespace: str, name: str, address: str | dict, id_column: str = "id",
             label_column: str | None = None, partitions: int | None = None) -> TableMeta:
        """Register the Parquet or CSV files at an HDFS path (a file, or a folder of them:
        ``"/path"`` or ``{"path": .., "format": "parquet"|"csv"}``) as ``namespace/name``
        without copying them. StorageError naming the path or column that is missing."""
        return self._put_meta(bound_meta(self, namespace, name, address, id_column, label_column, partitions))

    def _put_meta(self, meta: TableMeta) -> TableMeta:
        """A table folder holding only ``meta.json`` (a bound table), swapped into place."""
        target, label = self.path(meta.namespace, meta.name), f"{meta.namespace}/{meta.name}"
        tmp = posixpath.join(posixpath.dirname(target), f".{meta.name}.tmp-{uuid.uuid4().hex}")
        try:
            with self._errors(f"bind table {label}", tmp):
                self.client.makedirs(tmp)
                self.client.write(posixpath.join(tmp, META_FILE), data=meta.model_dump_json(indent=2).encode())
            self._swap(tmp, target, label)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.delete(tmp, recursive=True)
            raise
        return meta
