"""Tables as Parquet files on HDFS, through WebHDFS: ``<base>/<namespace>/<name>/``.

The file-tree engine (:mod:`backends.storage.filetree`) over WebHDFS, so the layout is
localfs's and a table can be copied between the two engines file by file. Why WebHDFS
(the ``hdfs`` package): it is plain HTTP to the name node, so no Hadoop client, JVM or
native library is needed on the party's machine. HDFS renames are atomic in the name
node, so the temp-folder swap keeps readers on the old table or the new one. Data moves
one partition at a time in both directions.

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

import posixpath
from typing import Any

from backends.computing.api import Session, Table
from backends.storage._bound_reads import BoundReads
from backends.storage._hdfs_bind import bound_meta, bound_rows
from backends.storage.api import TableMeta
from backends.storage.filetree import FileTreeStorage
from backends.storage.fs import WebHdfs
from flow.core.errors import StorageError


class HdfsEngine(FileTreeStorage):
    """Parquet tables under ``base`` on an HDFS cluster."""

    engine = "hdfs"
    fs: WebHdfs

    def __init__(self, url: str | list[str], base: str = "/fedweave", user: str | None = None,
                 timeout: float = 60.0, bind_partitions: int = 4):
        urls = url.split(";") if isinstance(url, str) else list(url)
        urls = [u.strip().rstrip("/") for u in urls if u and u.strip()]
        if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
            raise StorageError(f"hdfs url {url!r} must be one or more http(s)://namenode:port addresses")
        if not isinstance(base, str) or not base.startswith("/") or ".." in base.split("/"):
            raise StorageError(f"hdfs base {base!r} must be an absolute path without '..'")
        self.url = ";".join(urls)
        self.base = self.top = posixpath.normpath(base)
        self.user = user
        self.bind_partitions = int(bind_partitions)
        self.fs = WebHdfs(self.url, user, timeout)
        self.client = self.fs.client
        self._reads = BoundReads()  # Tables read from bound data: writing one back binds again
        with self.fs.errors("create the base folder", self.base):
            self.fs.makedirs(self.base)

    def __repr__(self) -> str:
        return f"HdfsEngine({self.url!r}, base={self.base!r}, user={self.user!r})"

    def _address(self, target: str) -> dict[str, Any]:
        return {"url": self.url, "path": target}

    def write(self, table: Table, meta: TableMeta) -> TableMeta:
        rebound = self._reads.rebound(table, meta)
        if rebound is not None:  # a bound table's rows, unchanged: bind the same files again
            return self._put_meta(rebound)
        return super().write(table, meta)

    def _read(self, stored: TableMeta, session: Session) -> Table:
        if stored.address.get("bound"):
            return self._reads.remember(session.parallelize(bound_rows(self, stored), stored.partitions), stored)
        return super()._read(stored, session)

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
        return self._publish(target, label, "bind", lambda tmp: meta)
