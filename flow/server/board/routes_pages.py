"""The board's Data, Models, Schedules, Audit and Server pages and their API: each route
calls the :class:`flow.ops.local.LocalOps` operation the CLI and ``/v1`` call, under that
operation's role (:func:`.routes.need`); everything shown is this home's own (its tables,
its parts of models, its audit logs)."""

from __future__ import annotations

import csv
from importlib import metadata
from itertools import islice
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from flow.ops.local import LocalOps
from flow.server.board.routes import _page, _session_user, need
from flow.server.routes import ok, ops_of

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/board/api")

#: the pages this module serves (one HTML file; the script draws the page its path names)
PAGES = ("data", "models", "schedules", "audit", "server")


def _serve(request: Request) -> Response:
    return _page("pages.html") if _session_user(request) else RedirectResponse("/login", status_code=303)


for _name in PAGES:
    router.add_api_route(f"/{_name}", _serve, methods=["GET"])


# data -------------------------------------------------------------------
@api.get("/tables", dependencies=[Depends(need("table_list"))])
def tables(request: Request, namespace: str | None = None):
    return ok(ops_of(request).table_list(namespace or None))


@api.get("/tables/{namespace}/{name}", dependencies=[Depends(need("table_info"))])
def table(namespace: str, name: str, request: Request):
    """Engine, address, schema and count (``flow table info``)."""
    return ok(ops_of(request).table_info(namespace, name))


def preview_rows(ops: LocalOps, namespace: str, name: str, limit: int) -> dict[str, Any]:
    """The header and first ``limit`` rows of a table, as ``flow data download`` writes them
    (audited as one); parsing stops there, and the reading session ends with it."""
    chunks = ops.iter_csv(namespace, name)
    try:  # lines with their ends, so a quoted field holding a newline stays one row
        lines = (line for chunk in chunks for line in chunk.splitlines(keepends=True))
        rows = list(islice(csv.reader(lines), limit + 1))
    finally:
        chunks.close()  # as flow tracking does: not left to the garbage collector
    return {"header": rows[0] if rows else [], "rows": rows[1:]}


@api.get("/tables/{namespace}/{name}/preview", dependencies=[Depends(need("data_download"))])
def preview(namespace: str, name: str, request: Request, limit: int = Query(20, ge=1, le=100)):
    """The table's first rows: its data, so only to whom may download it (operator)."""
    ops = ops_of(request)
    ops.table_info(namespace, name)  # a missing table is the table's 404, and the names' checks
    return ok(preview_rows(ops, namespace, name, limit))


# models -----------------------------------------------------------------
class DeployBody(BaseModel):
    job_id: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    cpn_list: list[str] | None = Field(None, description="components to deploy (default: as flow model deploy)")


@api.get("/models", dependencies=[Depends(need("model_list"))])
def models(request: Request):
    return ok(ops_of(request).model_list())


@api.post("/models/deploy", dependencies=[Depends(need("model_deploy", changes=True))])
def deploy(body: DeployBody, request: Request):
    """``flow model deploy``: records a deployment (and an audit entry); the predict DSL and
    conf it answers are the page's download."""
    return ok(ops_of(request).model_deploy(body.job_id, body.model_id, body.model_version, body.cpn_list))


# schedules --------------------------------------------------------------
@api.get("/schedules", dependencies=[Depends(need("schedule_list"))])
def schedules(request: Request):
    return ok(ops_of(request).schedule_list())


@api.get("/schedules/{name}/history", dependencies=[Depends(need("schedule_history"))])
def history(name: str, request: Request, limit: int = Query(50, ge=1, le=1000)):
    return ok(ops_of(request).schedule_history(name, limit))


#: what the schedule buttons ask for: the operation (its role) and how it is called
_SCHEDULE_ACTIONS = {
    "pause": ("schedule_pause", lambda ops, name: ops.schedule_pause(name)),
    "resume": ("schedule_resume", lambda ops, name: ops.schedule_resume(name)),
    "run-now": ("schedule_run_now", lambda ops, name: ops.schedule_run_now(name)),
}


def _schedule_route(action: str) -> None:
    op, call = _SCHEDULE_ACTIONS[action]

    def act(name: str, request: Request):
        return ok(call(ops_of(request), name))

    api.add_api_route(f"/schedules/{{name}}/{action}", act, methods=["POST"],
                      dependencies=[Depends(need(op, changes=True))])


for _action in _SCHEDULE_ACTIONS:
    _schedule_route(_action)


# audit and server -------------------------------------------------------
@api.get("/audit", dependencies=[Depends(need("audit_list"))])
def audit(request: Request, job: str | None = None, since: str | None = None, kind: str | None = None,
          party: str | None = None, limit: int = Query(200, ge=1, le=5000), everything: bool = False):
    """The newest entries as ``flow audit list`` shows them: the per-object federation traffic
    only when asked (``everything``, or a ``kind``)."""
    found = ops_of(request).audit_list(job=job or None, since=since or None, kind=kind or None,
                                       party=party or None)
    if not (everything or kind):
        found = [e for e in found if not str(e.get("kind", "")).startswith("federation.")]
    return ok(found[-limit:])


@api.get("/audit/verify", dependencies=[Depends(need("audit_verify"))])
def verify(request: Request, party: str | None = None):
    """Each log's chain (``flow audit verify``), with its first broken entry as recorded."""
    ops = ops_of(request)
    logs = ops.audit_verify(party=party or None)
    for log in logs:
        bad = log["first_bad_seq"]
        log["first_bad"] = None if bad is None else next(
            (e for e in ops.audit_list(party=log["party"]) if e.get("seq") == bad), None)
    return ok(logs)


@api.get("/server", dependencies=[Depends(need("server_status"))])
def server(request: Request):
    """``flow server status`` and the installed fedweave's version."""
    return ok({**ops_of(request).server_status(), "version": metadata.version("fedweave")})


router.include_router(api)
