"""Tables as a tree of files: ``<top>/<namespace>/<name>/`` on any :class:`FileSystem`.

One file per partition (``part-00000.parquet`` ...) plus ``meta.json``. Why per
partition: a table streams to and from storage one partition at a time, and a table read
back with the same partition count needs no re-grouping. Writes go to a hidden temp
sibling folder that is renamed into place only once complete, so readers see the old
table or the new one, never a half-written one. A writer that dies between its two
renames leaves the old table aside (``.<name>.old-*``); the next look restores it.

localfs and HDFS are this class over their filesystem; the layout is the same, so a
table can be copied between them file by file.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Iterator

from backends.computing.api import Session, Table
from backends.storage._arrow import (
    check_columns,
    explicit_types,
    parquet_bytes,
    parquet_rows,
    write_partitions,
    writing,
)
from backends.storage.api import StorageEngine, TableMeta
from backends.storage.fs import FileSystem, LocalFileSystem, Missing
from flow.core.errors import InvalidIdentifier, StorageError
from flow.core.ids import is_valid
from flow.core.paths import safe_join

if TYPE_CHECKING:
    import pyarrow as pa

META_FILE = "meta.json"
PART_FILE = "part-{:05d}.parquet"


def is_name(value: Any) -> bool:
    """A namespace or table name (flow.core.ids: letters, digits, '_', '-', '.' not first,
    no '..', at most 200): one folder name, never a path."""
    return is_valid("table_name", value)


def check_name(what: str, value: Any) -> str:
    """Namespaces and names become directory names: refuse anything path-like."""
    if not is_name(value):
        raise StorageError(
            f"invalid table {what} {value!r}: use letters, digits, '_', '-' and '.' "
            "(not first), at most 200 characters, no '..' and no path separators"
        )
    return value


class FileTreeStorage(StorageEngine):
    """Parquet tables in folders under ``top`` of ``fs``; subclasses say where (``_address``)."""

    fs: FileSystem
    #: the folder holding every namespace folder
    top: str

    @abstractmethod
    def _address(self, target: str) -> dict[str, Any]:
        """The meta's address of a table written to folder ``target``."""

    def path(self, namespace: str, name: str) -> str:
        """Folder of a table (whether or not it exists); on the local disk it must stay
        under ``top`` with links followed."""
        folder = self.fs.join(self.top, check_name("namespace", namespace), check_name("name", name))
        if isinstance(self.fs, LocalFileSystem):
            try:
                safe_join(self.top, namespace, name, fields=("namespace", "name"))
            except InvalidIdentifier as exc:
                raise StorageError(f"invalid table {namespace}/{name}: {exc}") from None
        return folder

    def _list(self, folder: str) -> list[str]:
        """Names in a folder, sorted; none when it does not exist."""
        return self.fs.list(folder)

    # -- writing

    def write(self, table: Table, meta: TableMeta) -> TableMeta:
        target = self.path(meta.namespace, meta.name)
        label = f"{meta.namespace}/{meta.name}"
        columns = check_columns(meta, label)
        explicit = explicit_types(meta, columns, label)

        def fill(tmp: str) -> TableMeta:
            def put(index: int, arrow: pa.Table, data: bytes) -> None:
                path = self.fs.join(tmp, PART_FILE.format(index))
                with self.fs.errors(f"write table {label}", path):
                    self.fs.write(path, data)

            scanned = write_partitions(table, meta, columns, explicit, label, parquet_bytes, put)
            return scanned.stored(meta, self.engine, self._address(target))

        return self._publish(target, label, "write", fill)

    def _publish(self, target: str, label: str, doing: str, fill: Callable[[str], TableMeta]) -> TableMeta:
        """A temp folder filled by ``fill(tmp)`` (which returns the table's meta), given its
        ``meta.json``, then swapped into place at ``target``; removed if anything fails."""
        parent, name = self.fs.split(target)
        tmp = self.fs.join(parent, f".{name}.tmp-{uuid.uuid4().hex}")
        with self.fs.errors(f"{doing} table {label}", tmp):
            self.fs.makedirs(tmp)
        with writing(label, lambda: self.fs.delete(tmp)):
            stored = fill(tmp)
            path = self.fs.join(tmp, META_FILE)
            with self.fs.errors(f"write the meta of table {label}", path):
                self.fs.write(path, stored.model_dump_json(indent=2).encode())
            self._swap(tmp, target, label)
        return stored

    def _swap(self, tmp: str, target: str, label: str) -> None:
        """Old table aside, new one in place, old one removed."""
        parent, name = self.fs.split(target)
        old = self.fs.join(parent, f".{name}.old-{uuid.uuid4().hex}")
        with self.fs.lock(parent):
            had_old = self.fs.exists(target)
            if had_old:
                with self.fs.errors(f"move the earlier table {label} aside", target):
                    self.fs.rename(target, old)
            try:
                with self.fs.errors(f"move table {label} into place", target):
                    self.fs.rename(tmp, target)
            except StorageError:
                if had_old:
                    with contextlib.suppress(Exception):
                        self.fs.rename(old, target)
                raise
        if had_old:
            with contextlib.suppress(Exception):
                self.fs.delete(old)

    def _recover(self, target: str) -> None:
        """A writer that died between its two renames leaves the old table aside: restore
        the newest complete one."""
        if self.fs.exists(target):
            return
        parent, name = self.fs.split(target)
        if not any(e.startswith(f".{name}.old-") for e in self.fs.list(parent)):
            return
        with self.fs.lock(parent):
            entries = self.fs.list(parent)
            if name in entries:
                return
            aside = [self.fs.join(parent, e) for e in entries if e.startswith(f".{name}.old-")]
            complete = [a for a in aside if self.fs.exists(self.fs.join(a, META_FILE))]
            if complete:
                newest = max(complete, key=self.fs.mtime)
                with contextlib.suppress(StorageError), self.fs.errors("restore the table left aside", target):
                    self.fs.rename(newest, target)

    # -- reading

    def meta(self, namespace: str, name: str) -> TableMeta:
        target = self.path(namespace, name)
        self._recover(target)
        path = self.fs.join(target, META_FILE)
        try:
            with self.fs.errors(f"read the meta of table {namespace}/{name}", path):
                text = self.fs.read(path)
        except Missing:
            raise StorageError(f"table {namespace}/{name} does not exist (no {self.fs.located(path)})") from None
        try:
            return TableMeta.model_validate_json(text)
        except ValueError as exc:
            raise StorageError(f"table {namespace}/{name}: corrupt {path}: {exc}") from exc

    def read(self, meta: TableMeta, session: Session) -> Table:
        return self._read(self.meta(meta.namespace, meta.name), session)

    def _read(self, stored: TableMeta, session: Session) -> Table:
        """The rows of a table whose meta was just read: its part files, streamed."""
        target = self.path(stored.namespace, stored.name)
        names = [PART_FILE.format(i) for i in range(stored.partitions)]
        present = set(self.fs.list(target))
        missing = [n for n in names if n not in present]
        if missing:
            where = f"table {stored.namespace}/{stored.name} at {self.fs.where(target)}"
            raise StorageError(f"{where} lacks {', '.join(missing)}")
        files = [self.fs.join(target, n) for n in names]
        return session.from_partitions(self._stream(stored, files, target), stored.partitions)

    def _stream(self, stored: TableMeta, files: list[str], target: str) -> Iterator[list[tuple[str, tuple]]]:
        """One partition (file) at a time; the checksum is verified once all are read."""
        label = f"{stored.namespace}/{stored.name}"
        digest = hashlib.sha256()
        for path in files:
            with self.fs.errors(f"read table {label}", path):
                data = self.fs.read(path)
            digest.update(data)
            yield parquet_rows(data, stored, self.fs.where(path))
        if digest.hexdigest() != stored.sha256:
            where = f"table {label} at {self.fs.where(target)}"
            raise StorageError(f"{where}: data files do not match the sha256 in {META_FILE}")

    def exists(self, namespace: str, name: str) -> bool:
        target = self.path(namespace, name)
        self._recover(target)
        return self.fs.exists(self.fs.join(target, META_FILE))

    def delete(self, namespace: str, name: str) -> None:
        """Renamed out of sight first, so the table is whole or gone; a folder the
        filesystem refuses to remove is put back whole, where it was."""
        target = self.path(namespace, name)
        if not self.fs.exists(target):
            return
        parent, _ = self.fs.split(target)
        gone = self.fs.join(parent, f".{name}.del-{uuid.uuid4().hex}")
        doing = f"delete table {namespace}/{name}"
        with self.fs.lock(parent):
            if not self.fs.exists(target):
                return
            with self.fs.errors(doing, target):
                self.fs.rename(target, gone)
        try:
            with self.fs.errors(doing, target):
                self.fs.delete(gone)
        except StorageError:
            with contextlib.suppress(Exception):
                self.fs.rename(gone, target)
            raise

    def list(self, namespace: str | None = None) -> list[TableMeta]:
        spaces = [check_name("namespace", namespace)] if namespace is not None else self.fs.list(self.top)
        found = []
        for space in spaces:
            if not is_name(space):
                continue
            folder = self.fs.join(self.top, space)
            for name in self.fs.list(folder):
                if is_name(name) and self.fs.exists(self.fs.join(folder, name, META_FILE)):
                    found.append(self.meta(space, name))
        return found
