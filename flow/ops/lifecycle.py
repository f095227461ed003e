"""``flow cluster install|describe|logs|upgrade|delete``: one party of a consortium file on
a deployment target (:mod:`flow.ops.lifecycle_api`), the same steps on every target.

* install: the party's bundle (``--bundle``, by default ``bundle-<party>/`` beside the
  consortium file, written by ``flow cluster generate`` when absent), its services
  started, then ``/readyz`` awaited: a server that cannot reach its store, broker or
  storage is reported, not left to fail the first job.
* upgrade: refused while the party has jobs waiting or running, unless ``--drain``, which
  waits for them to end. The home (store, keys, tables, models, job history) stays on
  its volume; the new server upgrades the store's schema (Alembic) when it opens it,
  before it answers ``/readyz``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from flow.ops import lifecycle_docker  # noqa: F401 - registers the docker target
from flow.ops.cluster_conf import ClusterSpec, load_cluster
from flow.ops.lifecycle_api import TARGETS, DeployError, Deployment, Target, parse_since

ACTIVE = ("waiting", "running")
POLL_S = 1.0


def _kubernetes() -> Target:
    raise DeployError("--target k8s: not built yet; the bundle's k8s/ folder is a kustomize folder checked "
                      "against the Kubernetes schemas: `kubectl apply -k BUNDLE/k8s/` installs the party, "
                      "`kubectl -n NAMESPACE logs statefulset/fedweave-server` shows its logs")


TARGETS.setdefault("k8s", _kubernetes)


def deployment(path: Path, party_id: str, bundle: Path | None = None, image: str | None = None,
               version: str | None = None) -> Deployment:
    """The party of ``path`` with its bundle folder and the image to run (``image`` a full
    reference, ``version`` only its tag; else the consortium file's)."""
    spec: ClusterSpec = load_cluster(path)
    party = spec.party(party_id)
    img = spec.image_of(party)
    ref = image or f"{img.repository}:{version or img.tag}"
    folder = (bundle or Path(path).absolute().parent / f"bundle-{party.id}").absolute()
    return Deployment(spec, party, folder, ref)


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
            "ready": _probe(tgt.endpoint(dep)) if installed else None, "services": services}


def logs(tgt: Target, dep: Deployment, component: str, follow: bool, since: str | None,
         tail: int | None) -> Iterator[str]:
    return tgt.logs(dep, component, follow, parse_since(since), tail)


def upgrade(tgt: Target, dep: Deployment, drain: bool, wait_s: float) -> dict[str, Any]:
    if not tgt.describe(dep):
        raise DeployError(f"party {dep.party.id} is not installed on --target {tgt.name}: `flow cluster install`")
    t0 = time.monotonic()
    drained = _drain(tgt, dep, drain, wait_s)
    t1 = time.monotonic()
    out = tgt.upgrade(dep)
    ready = wait_ready(tgt, dep, wait_s)
    return {"party_id": dep.party.id, "target": tgt.name, **out, "drained_jobs": drained, "ready": ready,
            "drain_seconds": round(t1 - t0, 2), "seconds": round(time.monotonic() - t1, 2)}


def delete(tgt: Target, dep: Deployment, keep_data: bool) -> dict[str, Any]:
    return {"party_id": dep.party.id, "target": tgt.name, **tgt.delete(dep, keep_data)}


def active_jobs(tgt: Target, dep: Deployment) -> list[str]:
    """Ids of the party's jobs waiting or running, asked of its own server."""
    from flow.ops.remote import RemoteOps, ServerError

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
        last = _probe(tgt.endpoint(dep), detail=True)
        if last == "ready":
            return True
        states = {s["component"]: s["state"] for s in tgt.describe(dep)}
        if states.get("server") in ("exited", "dead"):
            raise DeployError(f"party {dep.party.id}: the flow server stopped ({states['server']}): "
                              "`flow cluster logs` tells why")
        time.sleep(POLL_S)
    raise DeployError(f"party {dep.party.id}: not ready after {wait_s:.0f}s at {tgt.endpoint(dep)}/readyz "
                      f"({last}): `flow cluster logs` and `flow cluster describe` tell more")


def _probe(base: str, detail: bool = False) -> Any:
    """``/readyz``: True/False, or with ``detail`` "ready" or what it answered."""
    import httpx

    try:
        resp = httpx.get(f"{base}/readyz", timeout=5)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if detail else False
    if not detail:
        return resp.status_code == 200
    return "ready" if resp.status_code == 200 else f"{resp.status_code}: {' '.join(resp.text.split())[:300]}"
