"""``flow cluster install|describe|logs|upgrade|scale|delete``: one party of a consortium file on
a deployment target (:mod:`flow.ops.lifecycle_api`), the same steps on every target.

* install: the party's bundle (``--bundle``, by default ``bundle-<party>/`` beside the
  consortium file, written by ``flow cluster generate`` when absent), its services
  started, then ``/readyz`` awaited: a server that cannot reach its store, broker or
  storage is reported, not left to fail the first job.
* upgrade: refused while the party has jobs waiting or running, unless ``--drain``, which
  waits for them to end. The home (store, keys, tables, models, job history) stays on
  its volume; the new server upgrades the store's schema (Alembic) when it opens it,
  before it answers ``/readyz``.
* scale: only a party that runs its own Spark workers (``engine: spark``, no ``master``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from pydantic import ValidationError as PydanticError

from flow.core.errors import ConfigError
from flow.ops import lifecycle_docker, lifecycle_k8s  # noqa: F401 - register the docker and k8s targets
from flow.ops.cluster_conf import ClusterSpec, Image, SparkComputing, load_cluster
from flow.ops.lifecycle_api import DeployError, Deployment, Target, parse_since

ACTIVE = ("waiting", "running")
POLL_S = 1.0


def deployment(path: Path, party_id: str, bundle: Path | None = None, image: str | None = None,
               version: str | None = None) -> Deployment:
    """The party of ``path`` with its bundle folder and the image to run (``image`` a full
    reference, ``version`` only its tag; else the consortium file's)."""
    spec: ClusterSpec = load_cluster(path)
    party = spec.party(party_id)
    img = spec.image_of(party)
    if image is not None:
        repository, _, tag = image.rpartition(":")
        if not repository or "/" in tag:  # no ':' at all, or only a registry's port
            raise ConfigError(f"--image {image}: no tag; give REPOSITORY:TAG (a pinned version such as 0.1.0)")
        img = _image(f"--image {image}", repository, tag)
    elif version is not None:
        img = _image(f"--version {version}", img.repository, version)
    ref = f"{img.repository}:{img.tag}"
    folder = (bundle or Path(path).absolute().parent / f"bundle-{party.id}").absolute()
    return Deployment(spec, party, folder, ref)


def _image(option: str, repository: str, tag: str) -> Image:
    """The reference checked as the consortium file's ``image`` is: a pinned tag, never ``latest``."""
    try:
        return Image(repository=repository, tag=tag)
    except PydanticError as exc:
        raise ConfigError(f"{option}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def _ensure_bundle(dep: Deployment, source: Path, keys_home: Path) -> str:
    if (dep.bundle / "home" / "service_conf.yaml").is_file():
        return "found"
    from federation.auth import KeyStore
    from flow.ops.bundle import generate

    generate(dep.spec, dep.party.id, dep.bundle, KeyStore(keys_home), source=str(source))
    return "generated"


def install(tgt: Target, dep: Deployment, source: Path, keys_home: Path, wait_s: float) -> dict[str, Any]:
    bundle = _ensure_bundle(dep, source, keys_home)
    t0 = time.monotonic()
    out = tgt.install(dep)
    ready = wait_ready(tgt, dep, wait_s) if wait_s > 0 else None
    return {"party_id": dep.party.id, "target": tgt.name, "bundle": str(dep.bundle), "bundle_was": bundle,
            **out, "endpoint": tgt.endpoint(dep), "ready": ready,
            "seconds_to_ready": round(time.monotonic() - t0, 2) if ready else None}


def describe(tgt: Target, dep: Deployment) -> dict[str, Any]:
    services = tgt.describe(dep)
    installed = bool(services)
    return {"party_id": dep.party.id, "organisation": dep.party.organisation, "target": tgt.name,
            "installed": installed, "endpoint": tgt.endpoint(dep) if installed else None,
            "ready": readiness(tgt, dep) == "ready" if installed else None, "services": services}


def logs(tgt: Target, dep: Deployment, component: str, follow: bool, since: str | None,
         tail: int | None) -> Iterator[str]:
    return tgt.logs(dep, component, follow, parse_since(since), tail)


def upgrade(tgt: Target, dep: Deployment, drain: bool, wait_s: float) -> dict[str, Any]:
    _installed(tgt, dep)
    t0 = time.monotonic()
    drained = _drain(tgt, dep, drain, wait_s)
    t1 = time.monotonic()
    out = tgt.upgrade(dep)
    ready = wait_ready(tgt, dep, wait_s)
    return {"party_id": dep.party.id, "target": tgt.name, **out, "drained_jobs": drained, "ready": ready,
            "drain_seconds": round(t1 - t0, 2), "seconds": round(time.monotonic() - t1, 2)}


def scale(tgt: Target, dep: Deployment, workers: int) -> dict[str, Any]:
    """Spark workers beside the server: only a party whose consortium file runs its own
    (``computing: {engine: spark}`` without a ``master``) has any to scale."""
    comp = dep.party.engines.computing
    if not isinstance(comp, SparkComputing) or comp.master is not None:
        what = f"spark with master {comp.master}" if isinstance(comp, SparkComputing) else comp.engine
        raise DeployError(f"party {dep.party.id}: its computing engine ({what}) runs no Spark workers beside the "
                          "server; --spark-workers applies to engines.computing `engine: spark` without `master`")
    _installed(tgt, dep)
    return {"party_id": dep.party.id, "target": tgt.name, **tgt.scale(dep, workers)}


def _installed(tgt: Target, dep: Deployment) -> None:
    if not tgt.describe(dep):
        raise DeployError(f"party {dep.party.id} is not installed on --target {tgt.name}: `flow cluster install`")


def delete(tgt: Target, dep: Deployment, keep_data: bool) -> dict[str, Any]:
    return {"party_id": dep.party.id, "target": tgt.name, **tgt.delete(dep, keep_data)}


def active_jobs(tgt: Target, dep: Deployment) -> list[str]:
    """Ids of the party's jobs waiting or running, asked of its own server."""
    from flow.ops.remote import RemoteOps, ServerError

    beside = tgt.jobs(dep, ACTIVE)
    if beside is not None:
        return beside
    url = urlsplit(tgt.endpoint(dep))
    ops = RemoteOps(url.hostname or "127.0.0.1", url.port or dep.port, dep.token(), timeout=10)
    try:
        return [j["job_id"] for status in ACTIVE for j in ops.job_list(limit=1000, status=status)]
    except ServerError as exc:
        raise DeployError(f"party {dep.party.id}: cannot ask its server which jobs run ({exc}); "
                          "an upgrade needs that answer") from None


def _drain(tgt: Target, dep: Deployment, drain: bool, wait_s: float) -> list[str]:
    jobs = active_jobs(tgt, dep)
    if jobs and not drain:
        raise DeployError(f"party {dep.party.id} has {len(jobs)} job(s) waiting or running ({', '.join(jobs)}): "
                          "give --drain to wait for them to end, or stop them first")
    seen = list(jobs)
    end = time.monotonic() + wait_s
    while jobs:
        if time.monotonic() > end:
            raise DeployError(f"party {dep.party.id}: job(s) {', '.join(jobs)} still running after {wait_s:.0f}s "
                              "of --drain; nothing was upgraded")
        time.sleep(POLL_S)
        jobs = active_jobs(tgt, dep)
        seen += [j for j in jobs if j not in seen]
    return seen


def wait_ready(tgt: Target, dep: Deployment, wait_s: float) -> bool:
    """True once ``/readyz`` answers 200; DeployError with its last answer after ``wait_s``."""
    end = time.monotonic() + wait_s
    last = "no answer"
    while time.monotonic() < end:
        last = readiness(tgt, dep)
        if last == "ready":
            return True
        states = {s["component"]: s["state"] for s in tgt.describe(dep)}
        if states.get("server") in ("exited", "dead"):
            raise DeployError(f"party {dep.party.id}: the flow server stopped ({states['server']}): "
                              "`flow cluster logs` tells why")
        time.sleep(POLL_S)
    raise DeployError(f"party {dep.party.id}: not ready after {wait_s:.0f}s at {tgt.endpoint(dep)}/readyz "
                      f"({last}): `flow cluster logs` and `flow cluster describe` tell more")


def readiness(tgt: Target, dep: Deployment) -> str:
    """"ready" or what the server waits on: the target's own view, else ``/readyz``."""
    seen = tgt.ready(dep)
    return seen if seen is not None else _probe(tgt.endpoint(dep))


def _probe(base: str) -> str:
    """``/readyz``: "ready" or what it answered."""
    import httpx

    try:
        resp = httpx.get(f"{base}/readyz", timeout=5)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ready" if resp.status_code == 200 else f"{resp.status_code}: {' '.join(resp.text.split())[:300]}"
