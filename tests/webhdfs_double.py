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
It is NOT an HDFS: no blocks, replication, leases, quotas, ACLs or security. The file
tree and its permission checks are in tests/webhdfs_namespace.py; this module is HTTP.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.webhdfs_namespace import Namespace, RemoteError

PREFIX = "/webhdfs/v1"
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
        raise RemoteError("IllegalArgumentException",
                          f"Invalid value for webhdfs parameter \"permission\": {value}") from None


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

    def datanode_op(self, method: str, op: str, path: str, params: dict, user: str,
                    body: bytes) -> tuple[int, dict, object]:
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
                return self._send(404, {}, {"RemoteException": {
                    "exception": "FileNotFoundException", "javaClassName": _EXCEPTIONS["FileNotFoundException"][1],
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
                    "exception": "IllegalArgumentException",
                    "javaClassName": _EXCEPTIONS["IllegalArgumentException"][1],
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
