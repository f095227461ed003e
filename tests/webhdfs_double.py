"""A WebHDFS protocol double: a small in-memory name node + data node over HTTP.

Why: no HDFS can be installed on the test machines, and the storage engine talks to HDFS
only through the WebHDFS REST API, so a faithful double of that API tests the engine's
real HTTP traffic (the ``hdfs`` client, redirects, error JSON) without a cluster. It
follows the WebHDFS REST documentation for what the engine uses: CREATE and APPEND in two
steps (the name node answers 307 with a data node ``Location``; the data is sent there),
OPEN (also redirected, with ``offset``/``length``), GETFILESTATUS, LISTSTATUS, MKDIRS,
RENAME, DELETE (``recursive``), SETPERMISSION, SETOWNER and GETHOMEDIRECTORY. Errors are
``{"RemoteException": {...}}`` with HDFS's status codes; permissions follow HDFS's owner /
other bits (no groups), checked as the user in ``user.name``; ``superuser`` bypasses them.
It is NOT an HDFS: no blocks, replication, leases, quotas, ACLs or security.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import posixpath
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

PREFIX = "/webhdfs/v1"
READ, WRITE, EXECUTE = 4, 2, 1
_ACCESS = {READ: "READ", WRITE: "WRITE", EXECUTE: "EXECUTE", READ | EXECUTE: "READ_EXECUTE",
           WRITE | EXECUTE: "WRITE_EXECUTE", READ | WRITE | EXECUTE: "ALL"}
#: exception -> (HTTP status, Java class), as the name node's ExceptionHandler maps them
_EXCEPTIONS = {
    "AccessControlException": (403, "org.apache.hadoop.security.AccessControlException"),
    "FileNotFoundException": (404, "java.io.FileNotFoundException"),
    "FileAlreadyExistsException": (403, "org.apache.hadoop.fs.FileAlreadyExistsException"),
    "ParentNotDirectoryException": (403, "org.apache.hadoop.fs.ParentNotDirectoryException"),
    "PathIsNotEmptyDirectoryException": (403, "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"),
    "IllegalArgumentException": (400, "java.lang.IllegalArgumentException"),
    "UnsupportedOperationException": (400, "java.lang.UnsupportedOperationException"),
    "IOException": (403, "java.io.IOException"),
}
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
            raise RemoteError("AccessControlException", f"Permission denied. user={user} is not the owner of inode={path}")
        node.permission = permission

    def set_owner(self, path: str, user: str, owner: str | None, group: str | None) -> None:
        chain = self.existing(path, user)
        if user != self.superuser:
            raise RemoteError("AccessControlException", f"User {user} is not a super user (non-super user cannot change owner).")
        chain[-1][1].owner = owner or chain[-1][1].owner
        chain[-1][1].group = group or chain[-1][1].group


def _flag(params: dict, key: str, default: bool = False) -> bool:
    value = params.get(key)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise RemoteError("IllegalArgumentException", f"Invalid value for webhdfs parameter \"{key}\": {value}")
    return value.lower() == "true"


def _octal(params: dict, default: int) -> int:
    value = params.get("permission")
    try:
        return default if value is None else int(value, 8)
    except ValueError:
        raise RemoteError("IllegalArgumentException", f"Invalid value for webhdfs parameter \"permission\": {value}") from None


class WebHdfsDouble:
    """Name node + data node HTTP servers on 127.0.0.1 over one in-memory Namespace.

    ``with WebHdfsDouble() as hdfs: InsecureClient(hdfs.url, user="alice")``.
    """

    def __init__(self, superuser: str = "hdfs", root_permission: int = 0o777):
        self.fs = Namespace(superuser, root_permission)
        self.requests: list[tuple[str, str, str]] = []  # (server, method, op): what the client did
        self._servers: list[ThreadingHTTPServer] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def datanode_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def start(self) -> "WebHdfsDouble":
        for role in ("namenode", "datanode"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, role))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), name=f"webhdfs-{role}", daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> "WebHdfsDouble":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the two servers' operations: (params, path, user, body) -> (status, headers, payload)

    def namenode_op(self, method: str, op: str, path: str, params: dict, user: str) -> tuple[int, dict, object]:
        fs = self.fs
        if (method, op) in (("PUT", "CREATE"), ("POST", "APPEND"), ("GET", "OPEN")):
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in {"op": op, **params}.items())
            location = f"{self.datanode_url}{PREFIX}{quote(path)}?{query}&namenoderpcaddress=127.0.0.1"
            return 307, {"Location": location}, None
        ops: dict[tuple[str, str], Callable[[], object]] = {
            ("GET", "GETFILESTATUS"): lambda: {"FileStatus": fs.status(path, user)},
            ("GET", "LISTSTATUS"): lambda: {"FileStatuses": {"FileStatus": fs.list_status(path, user)}},
            ("GET", "GETHOMEDIRECTORY"): lambda: {"Path": f"/user/{user}"},
            ("PUT", "MKDIRS"): lambda: {"boolean": fs.mkdirs(path, user, _octal(params, 0o755))},
            ("PUT", "RENAME"): lambda: {"boolean": fs.rename(path, self._destination(params), user)},
            ("DELETE", "DELETE"): lambda: {"boolean": fs.delete(path, user, _flag(params, "recursive"))},
            ("PUT", "SETPERMISSION"): lambda: fs.set_permission(path, user, _octal(params, 0o755)),
            ("PUT", "SETOWNER"): lambda: fs.set_owner(path, user, params.get("owner"), params.get("group")),
        }
        action = ops.get((method, op))
        if action is None:
            raise RemoteError("UnsupportedOperationException", f"Invalid operation {method} {op} (not in this double)")
        return 200, {}, action()

    @staticmethod
    def _destination(params: dict) -> str:
        dst = params.get("destination")
        if not dst or not dst.startswith("/"):
            raise RemoteError("IllegalArgumentException", f"Invalid value for webhdfs parameter \"destination\": {dst}")
        return dst

    def datanode_op(self, method: str, op: str, path: str, params: dict, user: str, body: bytes) -> tuple[int, dict, object]:
        if (method, op) == ("PUT", "CREATE"):
            self.fs.create(path, user, _flag(params, "overwrite"), _octal(params, 0o644), body)
            return 201, {"Location": f"hdfs://127.0.0.1{quote(path)}"}, None
        if (method, op) == ("POST", "APPEND"):
            self.fs.append(path, user, body)
            return 200, {}, None
        if (method, op) == ("GET", "OPEN"):
            length = params.get("length")
            data = self.fs.open(path, user, int(params.get("offset") or 0), None if length is None else int(length))
            return 200, {"Content-Type": "application/octet-stream"}, data
        raise RemoteError("IllegalArgumentException", f"Invalid operation {method} {op} for a data node")


def _handler(double: WebHdfsDouble, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()  # headers and body go out in two writes: no Nagle delay between them
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args) -> None:  # quiet: tests read errors from responses
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, headers: dict, payload: object) -> None:
            if isinstance(payload, bytes):
                body = payload
            elif payload is None:
                body = b""
            else:
                body = json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", **headers}
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self, method: str) -> None:
            body = self._body() if method in ("PUT", "POST") else b""
            url = urlsplit(self.path)
            params = {k.lower() if k.lower() != "user.name" else k: v[0] for k, v in parse_qs(url.query).items()}
            op = (params.pop("op", "") or "").upper()
            user = params.get("user.name", "dr.who")
            if not url.path.startswith(PREFIX):
                return self._send(404, {}, {"RemoteException": {"exception": "FileNotFoundException",
                                                                "javaClassName": _EXCEPTIONS["FileNotFoundException"][1],
                                                                "message": f"not a WebHDFS path: {url.path}"}})
            path = unquote(url.path[len(PREFIX):]) or "/"
            double.requests.append((role, method, op))
            try:
                with double.fs.lock:
                    if role == "namenode":
                        status, headers, payload = double.namenode_op(method, op, path, params, user)
                    else:
                        status, headers, payload = double.datanode_op(method, op, path, params, user, body)
            except RemoteError as exc:
                code, java = _EXCEPTIONS[exc.exception]
                status, headers, payload = code, {}, {"RemoteException": {
                    "exception": exc.exception, "javaClassName": java, "message": exc.message}}
            except (ValueError, KeyError) as exc:
                status, headers, payload = 400, {}, {"RemoteException": {
                    "exception": "IllegalArgumentException", "javaClassName": _EXCEPTIONS["IllegalArgumentException"][1],
                    "message": str(exc)}}
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(status, headers, payload)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler
