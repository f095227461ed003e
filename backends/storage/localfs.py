"""Tables as Parquet files on the local disk: ``<root>/<namespace>/<name>/``.

One file per partition (``part-00000.parquet`` ...) plus ``meta.json``. Why per
partition: a table streams to and from disk one partition at a time, and a table read
back with the same partition count needs no re-grouping. Writes go to a hidden temp
sibling directory that is renamed into place only once complete, so readers see the
old table or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from backends.computing.api import Session, Table
from backends.storage._arrow import parquet_rows, check_columns, explicit_types, rows_to_arrow, unify_types
from backends.storage.api import StorageEngine, TableMeta
from flow.core.errors import FedweaveError, StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
    fcntl = None

META_FILE = "meta.json"
PART_FILE = "part-{:05d}.parquet"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


def is_name(value: Any) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None and ".." not in value


def check_name(what: str, value: Any) -> str:
    """Namespaces and names become directory names: refuse anything path-like."""
    if not is_name(value):
        raise StorageError(
            f"invalid table {what} {value!r}: use letters, digits, '_', '-' and '.' "
            "(not first), at most 200 characters, no '..' and no path separators"
        )
    return value


def _hash_file(path: Path, digest: "hashlib._Hash") -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise renames in one namespace directory between processes."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class LocalFSEngine(StorageEngine):
    """Parquet tables under ``root``."""

    engine = "localfs"

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the localfs root {self.root}: {exc}") from exc

    @classmethod
    def from_conf(cls, conf) -> "LocalFSEngine":
        """``storage.localfs.root`` if set, else ``<home>/data``."""
        section = conf.storage.get("localfs") or {}
        return cls(section.get("root") or conf.home_path / "data")

    def __repr__(self) -> str:
        return f"LocalFSEngine({str(self.root)!r})"

    def path(self, namespace: str, name: str) -> Path:
        """Directory of a table (whether or not it exists)."""
        return self.root / check_name("namespace", namespace) / check_name("name", name)

    # -- writing

    def write(self, table: Table, meta: TableMeta) -> TableMeta:
        target = self.path(meta.namespace, meta.name)
        label = f"{meta.namespace}/{meta.name}"
        columns = check_columns(meta, label)
        explicit = explicit_types(meta, columns, label)
        tmp = target.parent / f".{meta.name}.tmp-{uuid.uuid4().hex}"
        try:
            tmp.mkdir(parents=True)
        except OSError as exc:
            raise StorageError(f"cannot write table {label}: {exc}") from exc
        try:
            stored = self._write_parts(table, meta, columns, explicit, tmp, target, label)
            (tmp / META_FILE).write_text(stored.model_dump_json(indent=2))
            self._swap(tmp, target, label)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, Exception) and not isinstance(exc, FedweaveError):
                raise StorageError(f"writing table {label} failed: {type(exc).__name__}: {exc}") from exc
            raise
        return stored

    def _write_parts(self, table: Table, meta: TableMeta, columns: list[str], explicit: list[pa.DataType] | None,
                     tmp: Path, target: Path, label: str) -> TableMeta:
        digest, count, n = hashlib.sha256(), 0, 0
        seen: list[set[pa.DataType]] = [set() for _ in columns]
        for index, part in enumerate(table.iter_partitions()):
            arrow = rows_to_arrow(part, meta.id_column, columns, explicit, index, label)
            path = tmp / PART_FILE.format(index)
            pq.write_table(arrow, path)
            _hash_file(path, digest)
            for j, column in enumerate(columns):
                seen[j].add(arrow.schema.field(column).type)
            count, n = count + arrow.num_rows, index + 1
        dtypes = list(meta.dtypes) if explicit else [str(unify_types(c, s)) for c, s in zip(columns, seen)]
        return meta.model_copy(
            update={
                "engine": self.engine,
                "address": {"path": str(target)},
                "columns": columns,
                "dtypes": dtypes,
                "count": count,
                "partitions": n,
                "sha256": digest.hexdigest(),
                "created": datetime.now(timezone.utc),
            }
        )

    def _swap(self, tmp: Path, target: Path, label: str) -> None:
        """Put the complete new table in place of the old one (if any)."""
        with _locked(target.parent):
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
            if target.exists():
                target.rename(old)
            try:
                tmp.rename(target)
            except OSError as exc:
                if old.exists():
                    old.rename(target)
                raise StorageError(f"cannot move table {label} into place at {target}: {exc}") from exc
        shutil.rmtree(old, ignore_errors=True)

    def _recover(self, target: Path) -> None:
        """A writer that died between its two renames leaves the old table aside: restore it."""
        if target.exists() or not target.parent.is_dir():
            return
        with _locked(target.parent):
            aside = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
            if aside and not target.exists() and (aside[-1] / META_FILE).is_file():
                aside[-1].rename(target)

    # -- reading

    def meta(self, namespace: str, name: str) -> TableMeta:
        target = self.path(namespace, name)
        self._recover(target)
        path = target / META_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise StorageError(f"table {namespace}/{name} does not exist (no {path})") from None
        except OSError as exc:
            raise StorageError(f"cannot read the meta of table {namespace}/{name} at {path}: {exc}") from exc
        try:
            return TableMeta.model_validate_json(text)
        except ValueError as exc:
            raise StorageError(f"table {namespace}/{name}: corrupt {path}: {exc}") from exc

    def read(self, meta: TableMeta, session: Session) -> Table:
        stored = self.meta(meta.namespace, meta.name)
        target = self.path(meta.namespace, meta.name)
        files = [target / PART_FILE.format(i) for i in range(stored.partitions)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise StorageError(f"table {meta.namespace}/{meta.name} at {target} lacks {', '.join(missing)}")
        return session.from_partitions(self._stream(stored, files, target), stored.partitions)

    @staticmethod
    def _stream(stored: TableMeta, files: list[Path], target: Path) -> Iterator[list[tuple[str, tuple]]]:
        """One partition (file) at a time; the checksum is verified once all are read."""
        label = f"{stored.namespace}/{stored.name}"
        digest = hashlib.sha256()
        for path in files:
            data = path.read_bytes()
            digest.update(data)
            yield parquet_rows(data, stored, str(path))
        if digest.hexdigest() != stored.sha256:
            raise StorageError(f"table {label} at {target}: data files do not match the sha256 in {META_FILE}")

    def exists(self, namespace: str, name: str) -> bool:
        target = self.path(namespace, name)
        self._recover(target)
        return (target / META_FILE).is_file()

    def delete(self, namespace: str, name: str) -> None:
        target = self.path(namespace, name)
        if not target.parent.is_dir():
            return
        with _locked(target.parent):
            if not target.exists():
                return
            gone = target.parent / f".{name}.del-{uuid.uuid4().hex}"
            target.rename(gone)
        shutil.rmtree(gone, ignore_errors=True)

    def list(self, namespace: str | None = None) -> list[TableMeta]:
        if namespace is not None:
            spaces = [self.root / check_name("namespace", namespace)]
        else:
            spaces = sorted(self.root.iterdir())
        found = []
        for space in spaces:
            if not space.is_dir() or not is_name(space.name):
                continue
            for table in sorted(space.iterdir()):
                if is_name(table.name) and (table / META_FILE).is_file():
                    found.append(self.meta(space.name, table.name))
        return found
