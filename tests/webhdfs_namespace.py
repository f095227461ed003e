"""The file tree of the WebHDFS double (tests/webhdfs_double.py): inodes and HDFS's
permission rules, with no HTTP in sight.

Permissions follow HDFS's owner / other bits (no groups), checked as the calling user;
the superuser bypasses them. Errors are :class:`RemoteError` carrying the HDFS exception
name the double sends back. Every operation runs under :attr:`Namespace.lock`.
"""

from __future__ import annotations

import itertools
import posixpath
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

READ, WRITE, EXECUTE = 4, 2, 1
_ACCESS = {READ: "READ", WRITE: "WRITE", EXECUTE: "EXECUTE", READ | EXECUTE: "READ_EXECUTE",
           WRITE | EXECUTE: "WRITE_EXECUTE", READ | WRITE | EXECUTE: "ALL"}
_ids = itertools.count(16386)


class RemoteError(Exception):
    """An HDFS exception to send back as RemoteException JSON."""

    def __init__(self, exception: str, message: str):
        super().__init__(message)
        self.exception, self.message = exception, message


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Inode:
    owner: str
    permission: int
    data: bytearray | None = None  # None for a directory
    children: dict[str, "Inode"] = field(default_factory=dict)
    group: str = "supergroup"
    mtime: int = field(default_factory=_now_ms)
    file_id: int = field(default_factory=lambda: next(_ids))

    @property
    def is_dir(self) -> bool:
        return self.data is None

    def status(self, suffix: str) -> dict:
        return {
            "accessTime": 0 if self.is_dir else self.mtime, "blockSize": 0 if self.is_dir else 134217728,
            "childrenNum": len(self.children), "fileId": self.file_id, "group": self.group,
            "length": 0 if self.is_dir else len(self.data), "modificationTime": self.mtime,
            "owner": self.owner, "pathSuffix": suffix, "permission": f"{self.permission:o}",
            "replication": 0 if self.is_dir else 1, "storagePolicy": 0,
            "type": "DIRECTORY" if self.is_dir else "FILE",
        }


def _parts(path: str) -> list[str]:
    if not path.startswith("/"):
        raise RemoteError("IllegalArgumentException", f"Invalid path name {path}: not absolute")
    return [p for p in posixpath.normpath(path).split("/") if p]


class Namespace:
    """The file tree and HDFS's permission rules; every operation holds one lock."""

    def __init__(self, superuser: str, root_permission: int):
        self.superuser = superuser
        self.root = Inode(owner=superuser, permission=root_permission)
        self.lock = threading.RLock()

    # -- lookups and checks

    def walk(self, path: str, user: str) -> tuple[list[tuple[str, Inode]], list[str]]:
        """The existing inodes along ``path`` (name, inode) from the root, checking EXECUTE
        on every directory passed through, and the names that do not exist."""
        names = _parts(path)
        chain: list[tuple[str, Inode]] = [("", self.root)]
        for i, name in enumerate(names):
            node = chain[-1][1]
            if not node.is_dir:
                raise RemoteError("ParentNotDirectoryException", f"{self.path_of(chain)} (is not a directory)")
            child = node.children.get(name)
            if child is None:
                return chain, names[i:]
            self.check(chain, user, EXECUTE)
            chain.append((name, child))
        return chain, []

    @staticmethod
    def path_of(chain: list[tuple[str, Inode]]) -> str:
        return "/" + "/".join(name for name, _ in chain[1:])

    def check(self, chain: list[tuple[str, Inode]], user: str, access: int) -> None:
        node = chain[-1][1]
        if user == self.superuser:
            return
        bits = (node.permission >> 6) & 7 if user == node.owner else node.permission & 7
        if bits & access != access:
            kind = "d" if node.is_dir else "-"
            mode = "".join(c if node.permission >> (8 - i) & 1 else "-" for i, c in enumerate("rwxrwxrwx"))
            raise RemoteError(
                "AccessControlException",
                f'Permission denied: user={user}, access={_ACCESS[access]}, '
                f'inode="{self.path_of(chain)}":{node.owner}:{node.group}:{kind}{mode}',
            )

    def existing(self, path: str, user: str) -> list[tuple[str, Inode]]:
        chain, missing = self.walk(path, user)
        if missing:
            raise RemoteError("FileNotFoundException", f"File does not exist: {posixpath.normpath(path)}")
        return chain

    def _make_dirs(self, chain: list[tuple[str, Inode]], missing: list[str], user: str,
                   permission: int) -> list[tuple[str, Inode]]:
        if missing:
            self.check(chain, user, WRITE | EXECUTE)
        for name in missing:
            node = Inode(owner=user, permission=permission)
            chain[-1][1].children[name] = node
            chain[-1][1].mtime = _now_ms()
            chain = chain + [(name, node)]
        return chain

    # -- operations

    def mkdirs(self, path: str, user: str, permission: int) -> bool:
        chain, missing = self.walk(path, user)
        if not missing and not chain[-1][1].is_dir:
            raise RemoteError("FileAlreadyExistsException", f"Path is not a directory: {path}")
        self._make_dirs(chain, missing, user, permission)
        return True

    def create(self, path: str, user: str, overwrite: bool, permission: int, data: bytes) -> None:
        chain, missing = self.walk(path, user)
        if not missing:
            node = chain[-1][1]
            if node.is_dir:
                raise RemoteError("FileAlreadyExistsException", f"{path} already exists as a directory")
            if not overwrite:
                raise RemoteError("FileAlreadyExistsException", f"{path} for client 127.0.0.1 already exists")
            self.check(chain[:-1], user, WRITE | EXECUTE)
            chain, missing = chain[:-1], [chain[-1][0]]
        parent = self._make_dirs(chain, missing[:-1], user, 0o755)
        self.check(parent, user, WRITE | EXECUTE)
        parent[-1][1].children[missing[-1]] = Inode(owner=user, permission=permission, data=bytearray(data))
        parent[-1][1].mtime = _now_ms()

    def append(self, path: str, user: str, data: bytes) -> None:
        chain = self.existing(path, user)
        if chain[-1][1].is_dir:
            raise RemoteError("FileNotFoundException", f"Path is not a file: {path}")
        self.check(chain, user, WRITE)
        chain[-1][1].data.extend(data)
        chain[-1][1].mtime = _now_ms()

    def open(self, path: str, user: str, offset: int, length: int | None) -> bytes:
        chain = self.existing(path, user)
        node = chain[-1][1]
        if node.is_dir:
            raise RemoteError("FileNotFoundException", f"Path is not a file: {path}")
        self.check(chain, user, READ)
        if offset < 0 or (offset > len(node.data)) or (length is not None and length < 0):
            raise RemoteError("IOException", f"Offset={offset} out of the range [0, {len(node.data)}]")
        end = len(node.data) if length is None else min(len(node.data), offset + length)
        return bytes(node.data[offset:end])

    def status(self, path: str, user: str) -> dict:
        return self.existing(path, user)[-1][1].status("")

    def list_status(self, path: str, user: str) -> list[dict]:
        chain = self.existing(path, user)
        node = chain[-1][1]
        if not node.is_dir:
            return [node.status("")]
        self.check(chain, user, READ | EXECUTE)
        return [child.status(name) for name, child in sorted(node.children.items())]

    def rename(self, src: str, dst: str, user: str) -> bool:
        chain, missing = self.walk(src, user)
        if missing or len(chain) == 1:
            return False
        dchain, dmissing = self.walk(dst, user)
        if not dmissing:
            if not dchain[-1][1].is_dir:
                return False
            dparent, dname = dchain, chain[-1][0]  # into an existing directory
            if dname in dchain[-1][1].children:
                return False
        elif len(dmissing) == 1:
            dparent, dname = dchain, dmissing[0]
        else:
            return False  # the destination's parent is missing
        src_names, dst_names = _parts(src), [n for n, _ in dparent[1:]] + [dname]
        if dst_names[: len(src_names)] == src_names:
            return False  # into its own subtree
        self.check(chain[:-1], user, WRITE | EXECUTE)
        self.check(dparent, user, WRITE | EXECUTE)
        node = chain[-2][1].children.pop(chain[-1][0])
        dparent[-1][1].children[dname] = node
        chain[-2][1].mtime = dparent[-1][1].mtime = _now_ms()
        return True

    def delete(self, path: str, user: str, recursive: bool) -> bool:
        chain, missing = self.walk(path, user)
        if missing or len(chain) == 1:
            return False
        node = chain[-1][1]
        if node.is_dir and node.children and not recursive:
            raise RemoteError("PathIsNotEmptyDirectoryException", f"`{path} is non empty': Directory is not empty")
        self.check(chain[:-1], user, WRITE | EXECUTE)
        for sub in self._subtree(chain):  # HDFS needs write on every non-empty directory it empties
            if sub[-1][1].is_dir and sub[-1][1].children:
                self.check(sub, user, READ | WRITE | EXECUTE)
        del chain[-2][1].children[chain[-1][0]]
        chain[-2][1].mtime = _now_ms()
        return True

    def _subtree(self, chain: list[tuple[str, Inode]]) -> Iterator[list[tuple[str, Inode]]]:
        yield chain
        for name, child in chain[-1][1].children.items():
            yield from self._subtree(chain + [(name, child)])

    def set_permission(self, path: str, user: str, permission: int) -> None:
        chain = self.existing(path, user)
        node = chain[-1][1]
        if user not in (node.owner, self.superuser):
            raise RemoteError("AccessControlException",
                              f"Permission denied. user={user} is not the owner of inode={path}")
        node.permission = permission

    def set_owner(self, path: str, user: str, owner: str | None, group: str | None) -> None:
        chain = self.existing(path, user)
        if user != self.superuser:
            raise RemoteError("AccessControlException",
                              f"User {user} is not a super user (non-super user cannot change owner).")
        chain[-1][1].owner = owner or chain[-1][1].owner
        chain[-1][1].group = group or chain[-1][1].group
