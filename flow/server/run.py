"""Running a party's flow server (``flow server start [--detach]``, ``flow server stop``).

The server binds its socket itself, so ``--port 0`` takes a free port, and writes
``<home>/server.json`` (pid, host, port, url) while it serves: ``flow server status``
and scripts read the real address there. The file goes when the server stops.

``--detach`` starts the same command in a new session with its output appended to
``<home>/logs/flow_server.log`` and its pid in ``<home>/server.pid``, and returns once
the server listens (or with the log's last line if it could not start). ``flow server
stop`` sends that pid SIGTERM (the server finishes its requests, then exits) and waits.
A second start while one runs for the home is refused, detached or not.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flow.core.errors import ConfigError
from flow.core.procs import pid_exists
from flow.core.settings import ServiceConf
from flow.ops.local import SERVER_FILE, read_server_file
from flow.runtime import metrics
from flow.server import preflight
from flow.server.auth import ensure_token

PID_FILE = "server.pid"
LOG_FILE = Path("logs") / "flow_server.log"
#: seconds ``--detach`` waits for the server to listen, and ``stop`` for it to end
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class _Stopped(Exception):
    """SIGTERM reached the server after uvicorn's graceful shutdown."""


def _stop(*_args) -> None:
    raise _Stopped


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # inherited by every accepted connection: without it a keep-alive client (a browser, the CLI)
    # waits ~40 ms per response for its delayed ACK (headers and body are two writes)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    if running and running["pid"] == os.getpid():  # an earlier life of this pid: a restarted container's pid 1
        running = None
    if running:
        raise ConfigError(f"a flow server (pid {running['pid']}) already serves home {home} at {running['url']}")
    other = read_pid_file(home)
    if other is not None and other != os.getpid():
        raise ConfigError(f"a flow server (pid {other}) is starting for home {home} ({home / PID_FILE})")
    metrics.compact(metrics.metrics_dir(home))  # before this server's own process counts there
    metrics.enable(home, "server")  # its supervisors and parties inherit it
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
        if read_pid_file(home) == os.getpid():
            (home / PID_FILE).unlink(missing_ok=True)
    return {**info, "stopped": True}


# ---------------------------------------------------------------- detached servers


def _alive(pid: int) -> bool:
    if not pid_exists(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")  # a recycled pid is not our server
    try:
        return b"flow" in cmdline.read_bytes() if cmdline.parent.exists() else True
    except OSError:
        return True


def read_pid_file(home: Path) -> int | None:
    """The pid in ``<home>/server.pid`` if that process still runs, else None."""
    try:
        pid = int((home / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _alive(pid) else None


def _last_line(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(offset)
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for line in reversed(lines):  # the CLI says why in one line on stderr
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return lines[-1] if lines else ""


def detach(conf: ServiceConf, host: str | None, port: int | None, conf_path: str | None) -> dict[str, Any]:
    """Start ``flow server start`` in the background; returns once it listens."""
    home = conf.home_path
    home.mkdir(parents=True, exist_ok=True)
    running = read_server_file(home)
    if running:
        raise ConfigError(f"a flow server (pid {running['pid']}) already serves home {home} at {running['url']}")
    if (pid := read_pid_file(home)) is not None:
        raise ConfigError(f"a flow server (pid {pid}) is starting for home {home} ({home / PID_FILE})")
    log = home / LOG_FILE
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "flow.cli.main", *(["--service-conf", conf_path] if conf_path else []),
            "server", "start", *(["--host", host] if host else []),
            *(["--port", str(port)] if port is not None else [])]
    with log.open("ab") as out:
        offset = out.tell()
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} flow server start --detach\n".encode())
        out.flush()
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                start_new_session=True)  # our own interpreter and CLI
    _write_text_atomic(home / PID_FILE, f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_server_file(home)
        if info and info.get("pid") == proc.pid:
            return {**info, "detached": True, "pid_file": str(home / PID_FILE), "log_file": str(log)}
        if proc.poll() is not None:
            (home / PID_FILE).unlink(missing_ok=True)
            raise ConfigError(f"the flow server did not start (exit {proc.returncode}): "
                              f"{_last_line(log, offset) or 'see ' + str(log)}")
        time.sleep(0.1)
    proc.terminate()
    proc.wait(10)
    (home / PID_FILE).unlink(missing_ok=True)
    raise ConfigError(f"the flow server did not listen within {START_TIMEOUT_S:g}s; see {log}")


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def stop(conf: ServiceConf, timeout: float = STOP_TIMEOUT_S) -> dict[str, Any]:
    """SIGTERM to this home's server (pid file, else server.json); SIGKILL after ``timeout``."""
    home = conf.home_path
    info = read_server_file(home)
    pid = read_pid_file(home) or (int(info["pid"]) if info else None)
    if pid is None:
        (home / PID_FILE).unlink(missing_ok=True)  # stale
        raise ConfigError(f"no flow server runs for home {home}")
    os.kill(pid, signal.SIGTERM)
    deadline, killed = time.monotonic() + timeout, False
    while _alive(pid):
        if time.monotonic() > deadline and not killed:
            os.kill(pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + 5
        elif killed and time.monotonic() > deadline:
            raise ConfigError(f"flow server pid {pid} did not end after SIGKILL")
        time.sleep(0.1)
    for name in (PID_FILE, SERVER_FILE):  # gone already unless it was killed
        (home / name).unlink(missing_ok=True)
    return {"pid": pid, "home": str(home), "stopped": True, "killed": killed}
