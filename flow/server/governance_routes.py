"""The flow server's routes for ``flow schedule``, ``flow privilege`` and ``flow audit``:
each calls the :class:`flow.ops.governance.GovernanceOps` method the CLI calls in standalone
mode, so the answers are the same. A schedule added here keeps the server's copy of the
job's files (the client sends their JSON); it fires from the server's schedule loop.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from flow.ops.users import acting_user
from flow.server.routes import ok, ops_of

schedules = APIRouter(prefix="/schedules", tags=["schedules"])
privileges = APIRouter(prefix="/privileges", tags=["privileges"])
audit = APIRouter(prefix="/audit", tags=["audit"])


def _actor(request: Request) -> str:
    """Who changed a grant through the server, as the audit log records it: the user whose token
    the request carried (the server token acts as ``admin``), else the client's address."""
    return acting_user.get() or f"client:{request.client.host if request.client else 'unknown'}"


class ScheduleBody(BaseModel):
    """A schedule as the client read it: the job's two JSON files (the server keeps a copy)."""

    name: str
    cron: str = Field(description='cron expression, e.g. "0 2 * * *" or @daily')
    conf: dict[str, Any]
    dsl: dict[str, Any]
    timezone: str = "UTC"
    overlap: Literal["skip", "queue"] = "skip"
    promote_if: str | None = None
    paused: bool = False
    conf_file: str = "conf.json"
    dsl_file: str = "dsl.json"


class GrantBody(BaseModel):
    party: str = Field(description="ROLE:ID (e.g. guest:9999) or ID for any role")
    namespace: str
    name: str = Field(description="table name, or * for every table of the namespace")


# schedules --------------------------------------------------------------
@schedules.post("", summary="add a schedule from the job's conf/dsl JSON (flow schedule add)")
def add_schedule(body: ScheduleBody, request: Request):
    return ok(ops_of(request).schedule_add(
        body.cron, body.conf, body.dsl, name=body.name, timezone=body.timezone, overlap=body.overlap,
        promote_if=body.promote_if, paused=body.paused, conf_file=body.conf_file, dsl_file=body.dsl_file))


@schedules.get("", summary="every schedule: next firing, last and deployed job (flow schedule list)")
def list_schedules(request: Request):
    return ok(ops_of(request).schedule_list())


@schedules.post("/{name}/pause", summary="stop firing (flow schedule pause)")
def pause_schedule(name: str, request: Request):
    return ok(ops_of(request).schedule_pause(name))


@schedules.post("/{name}/resume", summary="fire again from the next slot (flow schedule resume)")
def resume_schedule(name: str, request: Request):
    return ok(ops_of(request).schedule_resume(name))


@schedules.delete("/{name}", summary="delete a schedule and its history (flow schedule remove)")
def remove_schedule(name: str, request: Request):
    return ok(ops_of(request).schedule_remove(name))


@schedules.post("/{name}/run-now", summary="submit the schedule's job now (flow schedule run-now)")
def run_schedule_now(name: str, request: Request, force: bool = False):
    return ok(ops_of(request).schedule_run_now(name, force=force))


@schedules.get("/{name}/history", summary="the schedule's firings, oldest first (flow schedule history)")
def schedule_history(name: str, request: Request, limit: int = Query(50, ge=0)):
    return ok(ops_of(request).schedule_history(name, limit))


# privileges -------------------------------------------------------------
@privileges.post("/grant", summary="let a party's jobs read a table (flow privilege grant)")
def grant(body: GrantBody, request: Request):
    return ok(ops_of(request).privilege_change("grant", body.party, body.namespace, body.name,
                                                 actor=_actor(request)))


@privileges.post("/revoke", summary="take back a grant (flow privilege revoke)")
def revoke(body: GrantBody, request: Request):
    return ok(ops_of(request).privilege_change("revoke", body.party, body.namespace, body.name,
                                                 actor=_actor(request)))


@privileges.get("", summary="the grants held, by party and table (flow privilege list)")
def list_grants(request: Request, party: str | None = None, namespace: str | None = None, name: str | None = None):
    return ok(ops_of(request).privilege_list(party=party, namespace=namespace, name=name))


# audit ------------------------------------------------------------------
@audit.get("", summary="audit entries oldest first, merged across logs (flow audit list)")
def list_audit(request: Request, job: str | None = None, since: str | None = None, kind: str | None = None,
               party: str | None = None, limit: int | None = Query(None, ge=0)):
    return ok(ops_of(request).audit_list(job=job, since=since, kind=kind, party=party, limit=limit))


@audit.get("/summary", summary="federation objects and bytes per peer and variable (flow audit summary)")
def summarize_audit(request: Request, job: str | None = None, party: str | None = None):
    return ok(ops_of(request).audit_summary(job=job, party=party))


@audit.get("/verify", summary="check every audit log's hash chain (flow audit verify)")
def verify_audit(request: Request, party: str | None = None):
    return ok(ops_of(request).audit_verify(party=party))


ROUTERS = [schedules, privileges, audit]
