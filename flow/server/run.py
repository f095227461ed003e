"""Running a party's flow server in the foreground (``flow server start``).

The server binds its socket itself, so ``--port 0`` takes a free port, and writes
``<home>/server.json`` (pid, host, port, url) while it serves: ``flow server status``
and scripts read the real address there. The file goes when the server stops.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from flow.core.errors import ConfigError
from flow.core.settings import ServiceConf
from flow.ops.local import SERVER_FILE, read_server_file
from flow.server import preflight
from flow.server.auth import ensure_token


class _Stopped(Exception):
    """SIGTERM reached the server after uvicorn's graceful shutdown."""


def _stop(*_args) -> None:
    raise _Stopped


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"flow server cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def serve(conf: ServiceConf, host: str | None = None, port: int | None = None) -> dict[str, Any]:
    """Serve until SIGINT/SIGTERM; returns what was served (for the CLI's envelope).

    Nothing listens before the checks of :mod:`flow.server.preflight` pass."""
    preflight.require_server_extra()
    import uvicorn

    from flow.server.app import create_app

    preflight.check(conf)
    home = conf.home_path
    home.mkdir(parents=True, exist_ok=True)
    running = read_server_file(home)
    if running:
        raise ConfigError(f"a flow server (pid {running['pid']}) already serves home {home} at {running['url']}")
    host = host or conf.server.host
    sock = _bind(host, conf.server.port if port is None else port)
    actual = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{actual}"
    info = {"pid": os.getpid(), "host": host, "port": actual, "url": url, "home": str(home),
            "service_conf": conf.source or None, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    app = create_app(conf, ensure_token(conf), runtime={k: info[k] for k in ("host", "port", "url")})
    # open event streams (the board, followed logs) would hold a graceful shutdown forever
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                           timeout_graceful_shutdown=5))
    path = home / SERVER_FILE
    _write_atomic(path, info)
    print(f"flow server of {home} listening on {url}; board: {url}/", flush=True, file=sys.stderr)
    # uvicorn stops gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler
    # it found: make that one unwind the stack, so the server file below is removed
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
    return {**info, "stopped": True}
