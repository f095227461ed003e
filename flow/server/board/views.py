"""What the board's pages need, shaped from the answers of the CLI's operations.

Nothing here reads the store or files itself except :func:`own_parties`, which says which
parties this home ran (their metrics, models, data and logs are here; the others' are kept
by those parties, as ``flow tracking`` says too).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flow.ops.local import LocalOps
from flow.store import FINAL_STATES

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
    """The job page's data: its line, its components with each party's task, the DAG's edges."""
    detail = ops.job_query(job_id)
    components = ops.component_list(job_id)
    tasks = detail.get("tasks") or []
    nodes = []
    for c in components["components"]:
        mine = [t for t in tasks if t["component"] == c["component_name"]]
        nodes.append({"component": c["component_name"], "module": c["module"], "stage": c["stage"],
                      "state": node_state([t["status"] for t in mine]),
                      "tasks": [{**t, "duration_s": duration_s(t["started"], t["ended"])} for t in mine]})
    return {"job": job_row(detail), "components": nodes, "edges": dag_edges(components["dsl"]),
            "own": own_parties(ops, job_id), "dsl": components["dsl"]}
