"""Counting a party's work for the flow server's ``/metrics`` (Prometheus).

Jobs and tasks run in their own processes (a supervisor per job, a party process per
role, local-backend workers), not in the server. Each of them counts into files under
``<home>/metrics`` with prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``),
and the server sums every file when it is scraped, so a counter keeps what processes that
have ended counted. Only counters and histograms are kept this way (their sum over
processes is their meaning); the jobs by state are read from the store at scrape time.

:func:`enable` installs the hook of :mod:`flow.core.metrics_hook` and points children at it
(environment), :func:`watch_store` times the store's statements, :func:`compact` folds the
files of processes that have ended into one, so a long-lived home does not pile them up.
Without prometheus-client (the ``server`` extra) nothing is counted.
"""

from __future__ import annotations

import atexit
import functools
import glob
import importlib.util
import json
import logging
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from flow.core import metrics_hook
from flow.core.procs import pid_exists

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: seconds a process keeps Paillier counts in memory before writing them (the hot path)
FLUSH_EVERY = 1.0
TASK_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
WAIT_BUCKETS = (0.001, 0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf"))
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, float("inf"))


def metrics_dir(home: Path) -> Path:
    return Path(home) / "metrics"


def available() -> bool:
    return importlib.util.find_spec("prometheus_client") is not None


def _safe(method: Callable[..., None]) -> Callable[..., None]:
    """A hook method that never raises into the work it counts (a home's metrics folder
    removed under a running process, a full disk): the first failure is logged, later ones not."""

    @functools.wraps(method)
    def wrapper(self: "PrometheusMetrics", *args: Any) -> None:
        try:
            method(self, *args)
        except Exception:  # noqa: BLE001 - see above
            if not self.failed:
                self.failed = True
                log.warning("metrics: could not count %s; counting may be incomplete", method.__name__,
                            exc_info=True)

    return wrapper


def _split(peer: str) -> tuple[str, str]:
    role, _, party = peer.partition("-")
    return role, party


class PrometheusMetrics:
    """The :class:`flow.core.metrics_hook.MetricsHook` writing prometheus-client's multiprocess
    files. ``process`` labels the store timings (server, party, worker)."""

    def __init__(self, process: str):
        from prometheus_client import Counter, Histogram

        self.process, self.failed = process, False
        kw: dict[str, Any] = {"registry": None}  # collected from the files, never from a registry
        peer = ["transport", "peer_role", "peer"]
        self._sent_bytes = Counter("fedweave_federation_sent_bytes", "Bytes sent, by transport and peer", peer, **kw)
        self._sent_msgs = Counter("fedweave_federation_sent_messages", "Messages sent", peer, **kw)
        self._recv_bytes = Counter("fedweave_federation_received_bytes", "Bytes received", peer, **kw)
        self._recv_msgs = Counter("fedweave_federation_received_messages", "Messages received", peer, **kw)
        self._waits = Histogram("fedweave_federation_receive_wait_seconds", "How long a get waited for a peer",
                                peer, buckets=WAIT_BUCKETS, **kw)
        self._paillier = Counter("fedweave_paillier_operations", "Paillier operations", ["operation"], **kw)
        self._tasks = Histogram("fedweave_task_duration_seconds", "Component task duration",
                                ["module", "role", "status"], buckets=TASK_BUCKETS, **kw)
        self._store = Histogram("fedweave_store_statement_seconds", "Store statement latency",
                                ["operation", "process"], buckets=STORE_BUCKETS, **kw)
        self._pending: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._flushed = time.monotonic()
        atexit.register(self.flush)

    @_safe
    def sent(self, transport: str, peer: str, nbytes: int, messages: int) -> None:
        labels = (transport, *_split(peer))
        self._sent_bytes.labels(*labels).inc(nbytes)
        self._sent_msgs.labels(*labels).inc(messages)

    @_safe
    def received(self, transport: str, peer: str, nbytes: int, messages: int) -> None:
        labels = (transport, *_split(peer))
        self._recv_bytes.labels(*labels).inc(nbytes)
        self._recv_msgs.labels(*labels).inc(messages)

    @_safe
    def waited(self, transport: str, peer: str, seconds: float) -> None:
        self._waits.labels(transport, *_split(peer)).observe(seconds)

    def paillier(self, operation: str, count: int = 1) -> None:
        self._pending[operation] += count  # a dict add: encrypting is itself microseconds
        if time.monotonic() - self._flushed > FLUSH_EVERY:
            self.flush()

    @_safe
    def flush(self) -> None:
        """Write the Paillier counts kept in memory (also at exit and after each task)."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(int)
            self._flushed = time.monotonic()
        for operation, count in pending.items():
            self._paillier.labels(operation).inc(count)

    @_safe
    def task(self, module: str, role: str, status: str, seconds: float) -> None:
        self.flush()
        self._tasks.labels(module, role, status).observe(seconds)

    @_safe
    def store(self, operation: str, seconds: float) -> None:
        self._store.labels(operation, self.process).observe(seconds)


_LOCK = threading.Lock()
_HOOKS: dict[str, PrometheusMetrics] = {}


def _hook(process: str) -> PrometheusMetrics:
    with _LOCK:
        if process not in _HOOKS:
            from prometheus_client import values

            values.ValueClass = values.MultiProcessValue()  # chosen at import otherwise; ours from now on
            _HOOKS[process] = PrometheusMetrics(process)
        return _HOOKS[process]


def enable(home: Path, process: str) -> metrics_hook.MetricsHook:
    """Count this process's work (and that of the processes it starts) under ``home``."""
    if not available():
        return metrics_hook.current()
    folder = metrics_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    os.environ[metrics_hook.ENV] = f"{__name__}:from_env"
    hook = _hook(process)
    metrics_hook.install(hook)
    return hook


def from_env() -> metrics_hook.MetricsHook:
    """The hook of a process started by one that called :func:`enable` (a local worker)."""
    if not os.environ.get(MULTIPROC_ENV) or not available():
        return metrics_hook.NoMetrics()
    return _hook("worker")


def flush() -> None:
    hook = metrics_hook.current()
    if isinstance(hook, PrometheusMetrics):
        hook.flush()


# ---------------------------------------------------------------- the store's latency


def _before(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
    conn.info.setdefault("fedweave_started", []).append(time.perf_counter())


def _after(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
    started = conn.info.get("fedweave_started")
    if not started:
        return
    seconds = time.perf_counter() - started.pop()
    verb = statement.lstrip().split(None, 1)[0].lower() if statement.strip() else "other"
    metrics_hook.current().store(verb if verb in ("select", "insert", "update", "delete") else "other", seconds)


def watch_store(engine: Any) -> None:
    """Time every statement run on ``engine`` (a SQLAlchemy Engine), once per engine."""
    from sqlalchemy import event

    if not event.contains(engine, "before_cursor_execute", _before):
        event.listen(engine, "before_cursor_execute", _before)
        event.listen(engine, "after_cursor_execute", _after)


# ---------------------------------------------------------------- keeping the folder small




def compact(folder: Path) -> int:
    """Fold the counter and histogram files of processes that have ended into one file per
    kind (their values add up, so the sums the server reports do not change); returns how
    many files went. Run by the server at start, before anything of its own writes there."""
    if not available() or not folder.is_dir():
        return 0
    from prometheus_client.mmap_dict import MmapedDict

    gone = 0
    for kind in ("counter", "histogram"):
        dead = []
        for path in glob.glob(str(folder / f"{kind}_*.db")):
            pid = Path(path).stem.split("_", 1)[1]
            if pid.isdigit() and int(pid) > 0 and not pid_exists(int(pid)):
                dead.append(path)
        if not dead:
            continue
        totals: dict[str, float] = defaultdict(float)
        for path in dead:
            for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(path):
                json.loads(key)  # a torn file raises here and is left alone below
                totals[key] += value
        target = MmapedDict(str(folder / f"{kind}_0.db"))  # pid 0: no process's own file
        try:
            for key, value in totals.items():
                current, _ = target.read_value(key)
                target.write_value(key, current + value, time.time())
        finally:
            target.close()
        for path in dead:
            os.unlink(path)
            gone += 1
    return gone
