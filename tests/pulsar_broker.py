"""A pulsar-lite broker for tests: one process on a free 127.0.0.1 port with its own data
directory, started and stopped by the test that needs it.

pulsar-lite (PyPI ``pulsar-lite``) ships a single binary broker that speaks the Pulsar
binary protocol and keeps topics, cursors and acks in RocksDB, so a broker restarted on
the same data directory still has every unacknowledged message. The package's own
process manager is not used: it is a process-wide singleton, picks ports from 6650 up
and leaves the broker's Prometheus endpoint on 0.0.0.0:8080; here each broker gets a
config file that binds 127.0.0.1 only and turns metrics off.

Use :class:`PulsarLiteBroker` directly (``with PulsarLiteBroker(tmp_path) as broker``),
or the ``pulsar_broker`` fixture: ``from tests.pulsar_broker import pulsar_broker``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import service_unavailable

DEFAULT_MAX_MESSAGE_SIZE = 5 * 1024 * 1024
#: pulsar-lite stops dispatching to a consumer whose connection has more than the high
#: water mark (64 KiB by default) unsent, and does not start again when it drains: a
#: consumer can stall with messages in its backlog. Let the buffer grow instead.
DEFAULT_SETTINGS: dict[str, int | str | bool] = {
    "pulsar_channel_write_buffer_high_water_mark_bytes": 256 * 1024 * 1024,
    "pulsar_channel_write_buffer_low_water_mark_bytes": 128 * 1024 * 1024,
}
_RUNNING: "weakref.WeakSet[PulsarLiteBroker]" = weakref.WeakSet()


def broker_binary() -> Path | None:
    """The pulsar-lite executable shipped in the ``pulsar_lite`` package, or None."""
    env = os.environ.get("PULSAR_LITE_BINARY")
    if env and os.access(env, os.X_OK):
        return Path(env)
    try:
        import pulsar_lite
    except ImportError:
        return None
    path = Path(pulsar_lite.__file__).parent / "bin" / "pulsar-lite"
    return path if os.access(path, os.X_OK) else None


def missing() -> str | None:
    """Why a pulsar-lite broker cannot be used here (None when it can)."""
    try:
        import pulsar  # noqa: F401 - the client the transport needs
    except ImportError:
        return "the pulsar-client package"
    if broker_binary() is None:
        return "the pulsar-lite broker (pip install pulsar-lite)"
    return None


def require_broker() -> None:
    """Skip locally, fail in CI, when pulsar-client or pulsar-lite is not installed."""
    what = missing()
    if what:
        service_unavailable(what)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PulsarLiteBroker:
    """One broker process. ``start``/``stop``/``restart`` keep the data directory and the
    port, so clients reconnect to the same URL and find every unacknowledged message.
    The broker dies with the thread that started it (``setpriv --pdeathsig``): start it
    from the test's main thread, not from a helper thread that ends first."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        log_level: str = "warn",
        **settings: int | str | bool,
    ):
        binary = broker_binary()
        if binary is None:
            raise RuntimeError("pulsar-lite is not installed (pip install pulsar-lite)")
        self.binary = binary
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        #: a port we picked may be taken before the broker binds it: then pick another, once
        self._may_move = port is None
        self.max_message_size = max_message_size
        self.log_level = log_level
        #: more top-level keys of pulsar-lite.toml, over DEFAULT_SETTINGS
        self.settings = {**DEFAULT_SETTINGS, **settings}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"pulsar://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _write_config(self) -> Path:
        conf = self.data_dir / "pulsar-lite.toml"
        conf.write_text(
            f'addr = "127.0.0.1:{self.port}"\n'
            f'db_path = "{self.data_dir / "db"}"\n'
            f'log_level = "{self.log_level}"\n'
            f"max_message_size_bytes = {self.max_message_size}\n"
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in self.settings.items())
            + "\n[metrics]\nenabled = false\n"
        )
        return conf

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> "PulsarLiteBroker":
        """Start the broker and return once it accepts TCP connections on its port."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        deadline = time.monotonic() + timeout
        # util-linux's setpriv kills the broker with the process that started it (tests
        # killed by a timeout leave nothing behind). The signal follows the starting
        # *thread*, so a broker (re)started from another thread relies on atexit instead.
        guarded = shutil.which("setpriv") and threading.current_thread() is threading.main_thread()
        guard = ["setpriv", "--pdeathsig", "KILL", "--"] if guarded else []
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*guard, str(self.binary), "--config", str(conf)],
                cwd=self.data_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        _RUNNING.add(self)
        while True:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                if self._may_move and "in use" in self.log_tail(500):
                    self._may_move, self.port = False, free_port()
                    return self.start(max(deadline - time.monotonic(), 1.0))
                raise RuntimeError(f"pulsar-lite exited with code {code} on start:\n{self.log_tail()}")
            if self._accepting():
                self._may_move = False  # clients now know this URL: a restart keeps it
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pulsar-lite did not listen on {self.url} in {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def _accepting(self) -> bool:
        """The broker itself listens on the port (on Linux, checked in /proc: a connect
        alone could reach another process that took the port meanwhile)."""
        table = Path("/proc/net/tcp")
        if not table.exists():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False
        inodes = {
            f"socket:[{cols[9]}]"
            for cols in (line.split() for line in table.read_text().splitlines()[1:])
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == self.port  # 0A: LISTEN
        }
        with contextlib.suppress(OSError):  # the process may be gone meanwhile
            fds = Path(f"/proc/{self.proc.pid}/fd").iterdir() if inodes and self.proc else ()
            return any(os.readlink(fd) in inodes for fd in fds)
        return False

    def stop(self, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, or SIGKILL with ``kill``); the data directory stays."""
        proc, self.proc = self.proc, None
        _RUNNING.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, kill: bool = False) -> "PulsarLiteBroker":
        self.stop(kill=kill)
        return self.start()

    def __enter__(self) -> "PulsarLiteBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_leftovers() -> None:
    """A test run that dies between start and stop must not leave a broker behind."""
    for broker in list(_RUNNING):
        broker.stop(kill=True)


@pytest.fixture
def pulsar_broker(tmp_path: Path) -> Iterator[PulsarLiteBroker]:
    """A fresh broker for one test (skipped locally, failed in CI, without pulsar-lite)."""
    require_broker()
    with PulsarLiteBroker(tmp_path / "pulsar-lite") as broker:
        yield broker
