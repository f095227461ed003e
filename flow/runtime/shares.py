"""A party's share of a job that runs between flow servers: what it records, which
tables it reads, what the initiator was told by the others, how it ends and cleans up.
Used by :mod:`flow.server.control` (and ``flow job query`` for the reports); no messaging here."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any, Callable

from federation.api import Party
from flow.core.settings import ServiceConf
from flow.dsl import JobPlan, load_job
from flow.runtime import job as jobs
from flow.runtime.party import job_dir
from flow.runtime.transport import release_share
from flow.store import Store


def tables_read(plan: JobPlan, party_id: str) -> list[dict[str, str]]:
    """The tables ``party_id``'s components read in ``plan`` (params with a ``table``)."""
    out = []
    for p in plan.all_parties():
        if p.party_id != party_id:
            continue
        for cpn in plan.party_components(p):
            table = getattr(plan.component_params(cpn, p), "table", None)
            if table is not None:
                out.append({"namespace": table.namespace, "name": table.name})
    return out


def record_job(conf: ServiceConf, store: Store, plan: JobPlan, job_id: str, party_id: str,
               description: str = "") -> None:
    """Record ``job_id`` with this party's parties only (its supervisor runs just those)."""
    jdir = job_dir(conf.home_path, job_id)
    jdir.mkdir(parents=True, exist_ok=True)
    (jdir / "conf.json").write_text(json.dumps(plan.raw_conf, indent=2))
    (jdir / "dsl.json").write_text(json.dumps(plan.raw_dsl, indent=2))
    mine = [p for p in plan.all_parties() if p.party_id == party_id]
    store.create_job(job_id, conf=plan.raw_conf, dsl=plan.raw_dsl,
                     initiator=(plan.initiator.role, plan.initiator.party_id),
                     parties=[(p.role, p.party_id) for p in mine], description=description,
                     components={(p.role, p.party_id): [(c, plan.module(c).module) for c in plan.party_components(p)]
                                 for p in mine})


def remote_reports(home: Path, job_id: str) -> list[dict[str, Any]]:
    """The latest status report of each other party of a job this server initiated."""
    folder = job_dir(home, job_id) / "remote"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` at once: a reader (``flow job query``) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def end_share(store: Store, job_id: str, reason: str) -> bool:
    """Fail this party's unfinished share of a job at once (its processes are killed);
    False when it had already ended."""
    # recorded before the kill: whoever then finds the supervisor gone (a `job query`) sees why
    if not store.end_job(job_id, "failed", reason):
        return False
    pids = [store.job(job_id)["supervisor_pid"]] + [run["pid"] for run in store.party_runs(job_id)]
    for pid in pids:
        if pid and jobs.process_alive(pid, job_id):
            os.kill(pid, signal.SIGKILL)
    return True


def cleanup_transport(conf: ServiceConf, store: Store, job_id: str) -> None:
    """Remove what this party's share of a finished job left in the transport (queues,
    topics): only once every party has ended, as nobody reads them any more."""
    jdir = job_dir(conf.home_path, job_id)
    plan = load_job(jdir / "conf.json", jdir / "dsl.json")
    for run in store.party_runs(job_id):
        release_share(conf, plan, job_id, Party(run["role"], run["party_id"]))


def audit_log(home: Path, party_id: str) -> Any:
    """The party's audit log (None where this build has none)."""
    try:
        from flow.governance.audit import AuditLog
    except ImportError:
        return None
    return AuditLog(home, party_id)


def default_access_check() -> Callable[..., list[str]]:
    """Why an initiator may not read this party's tables (``flow privilege``)."""
    from flow.governance.privileges import check_job_access

    return check_job_access
