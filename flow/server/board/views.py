"""What the board's pages need, shaped from the answers of the CLI's operations.

Nothing here reads the store or files itself except :func:`own_parties`, which says which
parties this home ran (their metrics, models, data and logs are here; the others' are kept
by those parties, as ``flow tracking`` says too).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flow.core.ids import check_id
from flow.dsl.dag import JobDAG
from flow.ops.local import LocalOps, job_filters
from flow.runtime.shares import remote_reports
from flow.store import FINAL_STATES
from flow.store.job_pages import jobs_page, tasks_of

#: a component's state shown for a node when its parties disagree: the first one any party has
STATE_ORDER = ("failed", "timeout", "canceled", "running", "waiting", "success")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def duration_s(started: str | None, ended: str | None) -> float | None:
    """Seconds from start to end (to now while running); None before it starts."""
    start = _time(started)
    if start is None:
        return None
    end = _time(ended) or datetime.now(timezone.utc)
    return round((end - start).total_seconds(), 3)


def parties_of(tasks: list[dict[str, Any]]) -> dict[str, list[str]]:
    """role -> party ids, in the order the tasks name them."""
    out: dict[str, list[str]] = {}
    for t in tasks:
        ids = out.setdefault(t["role"], [])
        if str(t["party_id"]) not in ids:
            ids.append(str(t["party_id"]))
    return out


def progress(tasks: list[dict[str, Any]]) -> int:
    """Percent of the job's task work done: the mean of its tasks' progress (a finished task is 100)."""
    if not tasks:
        return 0
    done = [100 if t["status"] == "success" else int(t.get("progress") or 0) for t in tasks]
    return round(sum(done) / len(done))


def job_row(detail: dict[str, Any]) -> dict[str, Any]:
    """One line of the jobs table from ``job_query``'s answer."""
    tasks = detail.get("tasks") or []
    initiator = detail.get("initiator") or {}
    return {"job_id": detail["job_id"], "status": detail["status"], "reason": detail.get("reason") or "",
            "description": detail.get("description") or "",
            "initiator": f"{initiator.get('role')}:{initiator.get('party_id')}",
            "parties": parties_of(tasks), "created": detail.get("created"), "started": detail.get("started"),
            "ended": detail.get("ended"), "duration_s": duration_s(detail.get("started"), detail.get("ended")),
            "progress": progress(tasks), "final": detail["status"] in FINAL_STATES}


def node_state(states: list[str]) -> str:
    """The state a node shows for its parties' states."""
    return next((s for s in STATE_ORDER if s in states), states[0] if states else "waiting")


def _refs(value: Any) -> list[str]:
    """``["cpn.output", ...]`` from a DSL input entry (a list, or a dict of lists)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


def dag_edges(dsl: dict[str, Any]) -> list[dict[str, str]]:
    """One edge per input of each component: its source, target and kind (data or model)."""
    edges: list[dict[str, str]] = []
    for name, body in (dsl.get("components") or {}).items():
        inputs = (body or {}).get("input") or {}
        for key, value in inputs.items():
            kind = "data" if key == "data" else "model"
            for ref in _refs(value):
                source = ref.split(".", 1)[0]
                edge = {"source": source, "target": name, "kind": kind, "port": ref}
                if edge not in edges:
                    edges.append(edge)
    return edges


def own_parties(ops: LocalOps, job_id: str) -> list[dict[str, str]]:
    """The parties of the job this home ran: whose metrics, models, data and logs it holds."""
    return [{"role": r["role"], "party_id": str(r["party_id"])} for r in ops.store.party_runs(job_id)]


def job_page(ops: LocalOps, job_id: str) -> dict[str, Any]:
    """The job page's data: its line, its components (in ``flow component list``'s order and
    stages, from one pass over the DAG) with each party's task, the DAG's edges."""
    detail = ops.job_query(job_id)
    dsl = ops.store.job(job_id)["dsl"]
    dag = JobDAG.from_dsl(dsl)
    stage_of = {name: i for i, stage in enumerate(dag.stages(), start=1) for name in stage}
    tasks = detail.get("tasks") or []
    nodes = []
    for name in dag.order():
        mine = [t for t in tasks if t["component"] == name]
        nodes.append({"component": name, "module": (dsl["components"][name] or {}).get("module"),
                      "stage": stage_of[name], "state": node_state([t["status"] for t in mine]),
                      "tasks": [{**t, "duration_s": duration_s(t["started"], t["ended"])} for t in mine]})
    return {"job": job_row(detail), "components": nodes, "edges": dag_edges(dsl),
            "own": own_parties(ops, job_id), "dsl": dsl}


def jobs_table(ops: LocalOps, offset: int, limit: int, sort: str, descending: bool, *, status: str | None = None,
               role: str | None = None, party_id: str | None = None, partner: str | None = None,
               since: str | None = None, until: str | None = None, q: str | None = None) -> dict[str, Any]:
    """One page of the jobs table and how many jobs match: ``flow job list``'s filters (a bad
    one is its one-line error), ``partner`` (a party id the job names in any role), ``q``
    (part of the job id)."""
    filters = job_filters(status, None, None, None, since, until, None)
    del filters["role"], filters["party_id"]
    parties = []
    if role or party_id:
        parties.append((check_id("role", role, "role") if role else None,
                        check_id("party_id", party_id, "party_id") if party_id else None))
    if partner:
        parties.append((None, check_id("party_id", partner, "partner")))
    rows, total = jobs_page(ops.store, offset, limit, sort=sort, descending=descending, id_contains=q,
                            parties=tuple(parties), **filters)
    tasks = tasks_of(ops.store, [j["job_id"] for j in rows if j["status"] in FINAL_STATES])
    return {"jobs": [job_row(_finished(ops, j, tasks[j["job_id"]]) if j["job_id"] in tasks
                             else ops.job_query(j["job_id"])) for j in rows],
            "total": total, "offset": offset, "limit": limit}


def _finished(ops: LocalOps, job: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """``job_query``'s answer for a finished job from rows already read (a page's jobs share one
    task query); an unfinished one goes through ``job_query``, which also ends orphaned jobs."""
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    remote = [t for r in remote_reports(ops.conf.home_path, job["job_id"]) for t in r.get("tasks") or []]
    return {"job_id": job["job_id"], "status": job["status"], "reason": job["reason"],
            "description": job.get("description") or "",
            "initiator": {"role": job["initiator_role"], "party_id": job["initiator_party"]},
            "created": iso(job["created"]), "started": iso(job["started"]), "ended": iso(job["ended"]),
            "tasks": [{"role": t["role"], "party_id": t["party_id"], "status": t["status"],
                       "progress": t["progress"]} for t in tasks] + remote}
