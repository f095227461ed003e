"""The filesystem calls a file-tree engine makes, and their two implementations.

Why an adapter: localfs and HDFS keep tables the same way (a temp folder swapped into
place, one Parquet file per partition, ``meta.json``); only how a file is written,
renamed or listed differs. :class:`~backends.storage.filetree.FileTreeStorage` runs the
algorithm once over this small surface. Paths are plain strings; each filesystem joins
and names them (``where``) its own way, so error messages say what they said before.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from typing import Any, ContextManager, Iterator, Protocol

from flow.core.errors import StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
    fcntl = None  # type: ignore[assignment]

try:
    import requests
    from hdfs import HdfsError, InsecureClient
except ImportError:  # pragma: no cover - the optional extra is missing
    InsecureClient = None


class Missing(StorageError):
    """The path does not exist (a StorageError, so callers that do not care need not)."""


class FileSystem(Protocol):
    """What a file-tree engine needs of a filesystem. Lookups (``exists``, ``list``,
    ``mtime``) raise StorageError themselves; changes and reads raise the filesystem's own
    errors, which the caller turns into a StorageError saying what it was doing with
    ``errors(doing, path)``."""

    def join(self, folder: str, *names: str) -> str: ...
    def split(self, path: str) -> tuple[str, str]: ...
    def where(self, path: str) -> str: ...
    def located(self, path: str) -> str: ...
    def errors(self, doing: str, path: str) -> ContextManager[None]: ...
    def lock(self, folder: str) -> ContextManager[None]: ...
    def exists(self, path: str) -> bool: ...
    def list(self, folder: str) -> list[str]: ...
    def mtime(self, path: str) -> float: ...
    def makedirs(self, path: str) -> None: ...
    def write(self, path: str, data: bytes) -> None: ...
    def read(self, path: str) -> bytes: ...
    def rename(self, src: str, dst: str) -> None: ...
    def delete(self, path: str) -> None: ...


class LocalFileSystem:
    """The local disk. Renames in a folder are serialised between processes by ``flock``
    on the folder, as several workers of one party may write the same namespace."""

    @staticmethod
    def join(folder: str, *names: str) -> str:
        return os.path.join(folder, *names)

    @staticmethod
    def split(path: str) -> tuple[str, str]:
        return os.path.split(path)

    @staticmethod
    def where(path: str) -> str:
        return path

    located = where

    @staticmethod
    @contextlib.contextmanager
    def errors(doing: str, path: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            kind = Missing if isinstance(exc, FileNotFoundError) else StorageError
            raise kind(f"cannot {doing} at {path}: {exc}") from exc

    @staticmethod
    @contextlib.contextmanager
    def lock(folder: str) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def exists(path: str) -> bool:
        return os.path.exists(path)

    @staticmethod
    def list(folder: str) -> list[str]:
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

    @staticmethod
    def mtime(path: str) -> float:
        return os.stat(path).st_mtime

    @staticmethod
    def makedirs(path: str) -> None:
        os.makedirs(path)

    @staticmethod
    def write(path: str, data: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(data)

    @staticmethod
    def read(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    @staticmethod
    def rename(src: str, dst: str) -> None:
        os.rename(src, dst)

    @staticmethod
    def delete(path: str) -> None:
        """Best effort: a folder that will not go entirely stays hidden under its temp name."""
        shutil.rmtree(path, ignore_errors=True)


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


class WebHdfs:
    """HDFS through WebHDFS (the ``hdfs`` package): plain HTTP to the name node. Renames
    are atomic in the name node, but there is no lock: one writer per table at a time,
    and RENAME onto an existing folder moves into it (the swap renames the old one aside
    first)."""

    @staticmethod
    def join(folder: str, *names: str) -> str:
        return posixpath.join(folder, *names)

    @staticmethod
    def split(path: str) -> tuple[str, str]:
        return posixpath.split(path)

    def __init__(self, url: str, user: str | None, timeout: float):
        if InsecureClient is None:
            raise StorageError("the hdfs engine needs the 'hdfs' package: pip install 'fedweave[hdfs]'")
        self.url = url
        self.client = InsecureClient(url, user=user, timeout=timeout)

    def where(self, path: str) -> str:
        return f"hdfs path {path}"

    def located(self, path: str) -> str:
        return f"{path} on {self.url}"

    @contextlib.contextmanager
    def errors(self, doing: str, path: str) -> Iterator[None]:
        """HDFS and transport failures become one StorageError naming the path."""
        try:
            yield
        except HdfsError as exc:
            kind = Missing if getattr(exc, "exception", None) == "FileNotFoundException" else StorageError
            raise kind(f"cannot {doing} at hdfs path {path} ({self.url}): {_describe(exc)}") from exc
        except requests.RequestException as exc:
            raise StorageError(f"cannot {doing} at hdfs path {path}: WebHDFS at {self.url} unreachable: {exc}") from exc

    @staticmethod
    def lock(folder: str) -> ContextManager[None]:
        return contextlib.nullcontext()

    def status(self, path: str) -> dict[str, Any] | None:
        """WebHDFS FileStatus of a path, None when it does not exist."""
        with self.errors("look up", path):
            return self.client.status(path, strict=False)

    def exists(self, path: str) -> bool:
        return self.status(path) is not None

    def list(self, folder: str) -> list[str]:
        with self.errors("list", folder):
            if self.client.status(folder, strict=False) is None:
                return []
            return sorted(self.client.list(folder))

    def mtime(self, path: str) -> float:
        status = self.status(path)
        return status["modificationTime"] if status else 0.0

    def makedirs(self, path: str) -> None:
        self.client.makedirs(path)

    def write(self, path: str, data: bytes) -> None:
        self.client.write(path, data=data, overwrite=True)

    def read(self, path: str) -> bytes:
        with self.client.read(path) as reader:
            return reader.read()

    def rename(self, src: str, dst: str) -> None:
        self.client.rename(src, dst)

    def delete(self, path: str) -> None:
        self.client.delete(path, recursive=True)
