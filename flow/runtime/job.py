"""Job operations behind the CLI: submit, stop, rerun, query.

Submitting validates both files first (nothing is created for a bad job), records the
job with a waiting task per (component, party), writes the files next to the job's
logs, then starts the supervisor detached so the CLI returns the job id at once.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from federation.api import Party
from flow.core.errors import FedweaveError, StoreError
from flow.core.settings import ServiceConf
from flow.dsl import JobPlan, load_job
from flow.models.store import check_predict_model, model_info
from flow.runtime.party import job_dir
from flow.runtime.transport import release_share
from flow.store import FINAL_STATES, Store, derive_status


def new_job_id() -> str:
    """FATE-style sortable id: UTC timestamp with microseconds plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f") + f"{secrets.randbelow(100):02d}"


def _start_supervisor(conf: ServiceConf, job_id: str) -> int:
    log = job_dir(conf.home_path, job_id) / "supervisor.log"
    env = dict(os.environ, FLOW_HOME=str(conf.home_path))
    if conf.source:
        env["FEDWEAVE_SERVICE_CONF"] = conf.source
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flow.runtime.supervisor", job_id],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env,
        )
    return proc.pid


def submit_job(conf: ServiceConf, store: Store, conf_path: Path, dsl_path: Path) -> dict[str, Any]:
    return submit_plan(conf, store, load_job(conf_path, dsl_path), str(conf_path), str(dsl_path))


def submit_plan(conf: ServiceConf, store: Store, plan: JobPlan, conf_path: str, dsl_path: str) -> dict[str, Any]:
    """Record and start a validated job (the files were read here, or by a client of the server)."""
    check_predict_model(conf.home_path, plan)  # a predict job's model must be here before anything starts
    job_id = new_job_id()
    jdir = job_dir(conf.home_path, job_id)
    jdir.mkdir(parents=True)
    try:
        (jdir / "conf.json").write_text(json.dumps(plan.raw_conf, indent=2))
        (jdir / "dsl.json").write_text(json.dumps(plan.raw_dsl, indent=2))
        parties = [p for ps in plan.parties.values() for p in ps]
        components = {
            (p.role, p.party_id): [(c, plan.module(c).module) for c in plan.party_components(p)] for p in parties
        }
        store.create_job(job_id, conf=plan.raw_conf, dsl=plan.raw_dsl,
                         initiator=(plan.initiator.role, plan.initiator.party_id),
                         parties=[(p.role, p.party_id) for p in parties], components=components,
                         conf_path=str(conf_path), dsl_path=str(dsl_path))
    except Exception:
        shutil.rmtree(jdir, ignore_errors=True)
        raise
    pid = _start_supervisor(conf, job_id)
    store.update_job(job_id, supervisor_pid=pid)
    return {"job_id": job_id, "dsl_path": str(jdir / "dsl.json"), "conf_path": str(jdir / "conf.json"),
            "parties": {r: [p.party_id for p in ps] for r, ps in plan.parties.items()},
            "model_info": model_info(plan, job_id)}


def run_party(conf: ServiceConf, store: Store, conf_path: Path, dsl_path: Path, job_id: str,
              party: Party) -> tuple[dict[str, Any], int]:
    """Run one party's share of a job in this process, against this party's own home.

    For deployments where each organisation starts its share itself (a batch scheduler,
    Airflow): every party runs the same files under the same agreed job id and meets the
    others only through the federation transport. Running it again resumes: components
    that succeeded are reused.
    """
    from flow.runtime.party import PartyRuntime  # heavy: only this command needs it

    plan = load_job(conf_path, dsl_path)
    plan.party_index(party)  # ValidationError naming the parties if this one is not in the job
    jdir = job_dir(conf.home_path, job_id)
    # a home normally belongs to one organisation: record every role it plays in this job
    mine = [p for p in plan.all_parties() if p.party_id == party.party_id]
    components = {(p.role, p.party_id): [(c, plan.module(c).module) for c in plan.party_components(p)]
                  for p in plan.all_parties()}
    try:
        recorded = store.job(job_id)
    except StoreError:
        recorded = None
        jdir.mkdir(parents=True, exist_ok=True)
        (jdir / "conf.json").write_text(json.dumps(plan.raw_conf, indent=2))
        (jdir / "dsl.json").write_text(json.dumps(plan.raw_dsl, indent=2))
        try:
            store.create_job(job_id, conf=plan.raw_conf, dsl=plan.raw_dsl,
                             initiator=(plan.initiator.role, plan.initiator.party_id),
                             parties=[(p.role, p.party_id) for p in mine], components=components,
                             conf_path=str(conf_path), dsl_path=str(dsl_path))
        except SQLAlchemyError:  # another party of this home recorded it at the same moment
            pass
    store.add_parties(job_id, [(party.role, party.party_id)], components)
    store.update_job(job_id, status="running")
    # the files recorded first are the job's: a resumed run given other files runs those
    same = recorded is None or (recorded["conf"], recorded["dsl"]) == (plan.raw_conf, plan.raw_dsl)
    code = PartyRuntime(job_id, party, conf, plan if same else None).run()
    # what only this party reads can go now, whatever the others still do; a rerun
    # starts on empty channels
    release_share(conf, plan, job_id, party)
    run = next(r for r in store.party_runs(job_id) if r["role"] == party.role and r["party_id"] == party.party_id)
    status = derive_status([t["status"] for t in store.tasks(job_id, party.role, party.party_id)])
    store.update_job(job_id, status=status, reason=run["reason"])
    return job_detail(store, job_id), code


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_job(store: Store, job_id: str) -> dict[str, Any]:
    job = store.job(job_id)
    if job["status"] in FINAL_STATES:
        raise FedweaveError(f"job {job_id} is already {job['status']}")
    if _alive(job["supervisor_pid"]):
        os.kill(job["supervisor_pid"], signal.SIGTERM)
    else:  # no supervisor left: stop the parties ourselves
        for run in store.party_runs(job_id):
            if _alive(run["pid"]):
                os.kill(run["pid"], signal.SIGKILL)
        store.update_tasks(job_id, ("running", "waiting"), status="canceled", reason="stopped by user")
        store.update_job(job_id, status="canceled", reason="stopped by user")
    return {"job_id": job_id, "status": "canceling"}


def rerun_job(conf: ServiceConf, store: Store, job_id: str, component: str | None = None) -> dict[str, Any]:
    """Rerun from ``component`` (or the earliest failed one) and everything downstream of it."""
    job = store.job(job_id)
    if job["status"] not in FINAL_STATES:
        raise FedweaveError(f"job {job_id} is {job['status']}; stop it before rerunning")
    jdir = job_dir(conf.home_path, job_id)
    plan = load_job(jdir / "conf.json", jdir / "dsl.json")
    order = plan.dag.order()
    tasks = store.tasks(job_id)
    if component is None:
        unfinished = {t["component"] for t in tasks if t["status"] != "success"}
        if not unfinished:
            raise FedweaveError(f"job {job_id} has no failed component; name one with -cpn")
        component = min(unfinished, key=order.index)
    elif component not in order:
        raise FedweaveError(f"job {job_id} has no component '{component}'")
    again = {component} | set(plan.dag.downstream(component))
    for t in tasks:
        if t["component"] in again:
            store.update_task(job_id, t["component"], t["role"], t["party_id"], status="waiting",
                              reason="", progress=0)
    for run in store.party_runs(job_id):
        store.update_party_run(job_id, run["role"], run["party_id"], status="waiting", reason="", pid=None)
    store.update_job(job_id, status="waiting", reason="", attempt=int(job["attempt"]) + 1, ended=None)
    store.update_job(job_id, supervisor_pid=_start_supervisor(conf, job_id))
    return {"job_id": job_id, "rerun_from": component, "components": sorted(again, key=order.index)}


def job_detail(store: Store, job_id: str) -> dict[str, Any]:
    job = store.job(job_id)
    if job["status"] not in FINAL_STATES and job["supervisor_pid"] and not _alive(job["supervisor_pid"]):
        reason = job["reason"] or "job supervisor is gone"
        store.update_job(job_id, status="failed", reason=reason)
        store.update_tasks(job_id, ("running", "waiting"), status="failed", reason=reason)
        job = store.job(job_id)
    tasks = store.tasks(job_id)

    def when(v):
        return v.isoformat() if v else None

    return {
        "job_id": job_id, "status": job["status"], "reason": job["reason"], "attempt": job["attempt"],
        "initiator": {"role": job["initiator_role"], "party_id": job["initiator_party"]},
        "created": when(job["created"]), "started": when(job["started"]), "ended": when(job["ended"]),
        "tasks": [{"component": t["component"], "module": t["module"], "role": t["role"],
                   "party_id": t["party_id"], "status": t["status"], "progress": t["progress"],
                   "attempt": t["attempt"], "reason": t["reason"],
                   "started": when(t["started"]), "ended": when(t["ended"])} for t in tasks],
    }
