"""Operations endpoints of a flow server: ``/healthz``, ``/readyz`` and ``/metrics``.

* ``/healthz`` answers while the process serves: no token, no work (a liveness probe).
* ``/readyz`` checks the store (a ``SELECT 1``), the default federation transport (its
  broker's port, or the standalone folder) and the default storage engine (a lookup of a
  table that does not exist), each bounded by :data:`CHECK_TIMEOUT_S`; 503 names what is
  not ready with the exception type and a message whose URLs lose their credentials.
  No token either: Kubernetes probes and load balancers do not send one.
* ``/metrics`` is Prometheus' text format. It tells job counts and peers' ids, so it needs
  ``Authorization: Bearer <token>`` like the API (the party's token or any user's; in a
  Prometheus scrape config: ``authorization: {credentials_file: ...}``). Jobs and tasks run
  in other processes; they count into ``<home>/metrics`` (:mod:`flow.runtime.metrics`) and
  every file is summed here; the jobs by state are read from the store when scraped.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from flow.core.settings import ServiceConf
from flow.runtime import metrics
from flow.store import STATES, Store

CHECK_TIMEOUT_S = 5.0
_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


def _clean(text: str) -> str:
    """One line, at most 300 characters, no ``user:password@`` in URLs."""
    return _CREDENTIALS.sub(r"\1***@", " ".join(str(text).split()))[:300]


def _connect(host: str, port: int) -> None:
    socket.create_connection((host, port), CHECK_TIMEOUT_S).close()


def check_store(conf: ServiceConf, store: Store) -> str:
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    return store.engine.dialect.name


def check_transport(conf: ServiceConf, _store: Store) -> str:
    engine = conf.default_engines.federation
    if engine == "standalone":
        folder = conf.home_path / "federation"
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".readyz.{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
        return f"standalone {folder}"
    if engine == "rabbitmq":
        from federation._rabbitmq_conf import RabbitMQConf

        broker = RabbitMQConf.parse(conf.federation.rabbitmq).broker()
        _connect(broker.host, broker.port)
        return f"rabbitmq {broker.host}:{broker.port}"
    if engine == "pulsar":
        from federation._pulsar_conf import PulsarSettings

        url = urlsplit(PulsarSettings.load(conf.federation.pulsar).service_url.split(",")[0])
        host, port = url.hostname or "127.0.0.1", url.port or (6651 if url.scheme.endswith("ssl") else 6650)
        _connect(host, port)
        return f"pulsar {host}:{port}"
    return f"{engine} (no reachability check for this engine)"


def check_storage(conf: ServiceConf, _store: Store) -> str:
    from backends.storage import engine_from_conf

    engine = conf.default_engines.storage
    engine_from_conf(conf, engine).exists("fedweave_readyz", "probe")
    return engine


CHECKS: dict[str, Callable[[ServiceConf, Store], str]] = {
    "store": check_store, "transport": check_transport, "storage": check_storage}


def _run_check(check: Callable[[ServiceConf, Store], str], conf: ServiceConf, store: Store,
               box: dict[str, Any]) -> None:
    try:
        box["detail"] = check(conf, store)
    except Exception as exc:  # noqa: BLE001 - every failure is a reason to report, not raise
        box["error"] = _clean(f"{type(exc).__name__}: {exc}")


def readiness(conf: ServiceConf, store: Store) -> tuple[bool, dict[str, Any]]:
    """Each check's outcome: ``{"ok": True, "detail": ...}`` or ``{"ok": False, "error": ...}``.
    The checks run at once in daemon threads: one that hangs is reported, never waited for
    past :data:`CHECK_TIMEOUT_S`, and never holds the server's exit."""
    boxes: dict[str, dict[str, Any]] = {name: {} for name in CHECKS}
    threads = [threading.Thread(target=_run_check, args=(check, conf, store, boxes[name]), daemon=True,
                                name=f"fedweave-readyz-{name}") for name, check in CHECKS.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + CHECK_TIMEOUT_S + 1
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out: dict[str, Any] = {}
    for name, box in boxes.items():
        if "detail" in box:
            out[name] = {"ok": True, "detail": box["detail"]}
        else:
            out[name] = {"ok": False, "error": box.get("error") or f"no answer within {CHECK_TIMEOUT_S:g}s"}
    return all(v["ok"] for v in out.values()), out


class JobsCollector:
    """``fedweave_jobs{state}``: the jobs of this home's store by state, read when scraped."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        counts = self.store.job_counts()
        family = GaugeMetricFamily("fedweave_jobs", "Jobs in this party's store, by state", labels=["state"])
        for state in dict.fromkeys([*STATES, *counts]):
            family.add_metric([state], counts.get(state, 0))
        yield family


def exposition(conf: ServiceConf, store: Store) -> tuple[bytes, str]:
    """Every process's counters under the home, plus the jobs by state."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    folder = metrics.metrics_dir(conf.home_path)
    folder.mkdir(parents=True, exist_ok=True)
    MultiProcessCollector(registry, path=str(folder))
    registry.register(JobsCollector(store))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def install(app: FastAPI, auth: Callable[..., Any]) -> None:
    """Mount the three routes on ``app``; ``auth`` is the API's token dependency (for /metrics)."""
    router = APIRouter(include_in_schema=False)
    metrics.watch_store(app.state.ops.store.engine)  # the server's own statements, when counting is on

    @router.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "pid": app.state.runtime.get("pid")}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        ops = request.app.state.ops
        ready, checks = await run_in_threadpool(readiness, ops.conf, ops.store)
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @router.get("/metrics", dependencies=[Depends(auth)])
    async def prometheus(request: Request) -> Response:
        if not metrics.available():
            return PlainTextResponse("prometheus-client is not installed (pip install 'fedweave[server]')\n",
                                     status_code=501)
        ops = request.app.state.ops
        body, content_type = await run_in_threadpool(exposition, ops.conf, ops.store)
        return Response(body, media_type=content_type)

    app.include_router(router)
