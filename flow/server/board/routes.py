"""The board's pages, login and JSON API.

Each API route asks for one operation of :data:`flow.ops.api.ROLES` and is refused (403)
to a user whose role is below it, exactly as the ``/v1`` route of that operation is; a
request with no valid session gets 401 (pages redirect to ``/login``). POSTs also need the
session's CSRF token in ``X-CSRF-Token``. A party's board shows every party's task states,
but metrics, models, data and logs only of the parties this home ran.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from flow.ops.api import ROLES, role_allows
from flow.ops.users import acting_user
from flow.server import routes as api_routes
from flow.server.auth import identify
from flow.server.board import APP_DIR, events
from flow.server.board.session import COOKIE, CSRF_HEADER, Session, Sessions, csrf_ok
from flow.server.board.views import job_page, job_row, jobs_table, own_parties
from flow.server.routes import ok, ops_of

#: no script but the board's own files, no frames, nothing sent elsewhere
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


def _errors() -> Any:
    """The server's refusals (imported late: :mod:`flow.server.app` imports this module)."""
    from flow.server import app

    return app


def sessions(request: Request) -> Sessions:
    state = request.app.state
    if getattr(state, "board_sessions", None) is None:
        state.board_sessions = Sessions()
    return state.board_sessions


def _session_user(request: Request) -> tuple[Session, dict[str, Any]] | None:
    session = sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    user = identify(request.app.state.token, request.app.state.ops.store, session.token)
    return (session, user) if user else None


def board_user(request: Request) -> dict[str, Any]:
    """The user of the request's session; 401 without one. Its changes are audited under its name."""
    found = _session_user(request)
    if found is None:
        raise _errors().Unauthorized("no board session (log in at /login)")
    session, user = found
    app = _errors()
    request.scope[app.USER_KEY] = user
    request.state.board_session = session
    acting_user.set(user["name"])
    return user


def need(op: str, *, changes: bool = False) -> Callable[..., dict[str, Any]]:
    """A dependency: the session's user may ask for ``op`` (403 otherwise); ``changes``:
    the request also carries the session's CSRF token (403 otherwise)."""
    def check(request: Request, user: dict[str, Any] = Depends(board_user)) -> dict[str, Any]:
        app = _errors()
        request.scope[app.OP_KEY] = op
        if changes and not csrf_ok(request.state.board_session, request.headers.get(CSRF_HEADER)):
            raise app.Forbidden(f"{op}: missing or wrong {CSRF_HEADER} header (reload the board)")
        if not role_allows(user["role"], op):
            raise app.Forbidden(f"user '{user['name']}' ({user['role']}) may not {op}: needs {ROLES[op]}")
        return user
    return check


def own_party(request: Request, job_id: str, role: str, party_id: str) -> None:
    """403 unless this home ran ``role:party_id`` of the job (the others keep their own results)."""
    if {"role": role, "party_id": party_id} not in own_parties(ops_of(request), job_id):
        raise _errors().Forbidden(f"the results of {role} {party_id} in job {job_id} are kept by party "
                                  f"{party_id}, not shown here")


def _page(name: str) -> FileResponse:
    return FileResponse(APP_DIR / name, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


# pages ------------------------------------------------------------------
@router.get("/")
def jobs_page(request: Request) -> Response:
    return _page("index.html") if _session_user(request) else RedirectResponse("/login", status_code=303)


@router.get("/jobs/{job_id}")
def one_job_page(job_id: str, request: Request) -> Response:
    return _page("job.html") if _session_user(request) else RedirectResponse("/login", status_code=303)


@router.get("/login")
def login_page() -> Response:
    return _page("login.html")


class LoginBody(BaseModel):
    token: str = Field(min_length=1, max_length=512)


@router.post("/board/login")
def login(body: LoginBody, request: Request) -> Response:
    """Exchange a token for a session cookie; only JSON is taken, so no other site's form can log in."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise _errors().Forbidden("log in with a JSON body {\"token\": ...}")
    user = identify(request.app.state.token, request.app.state.ops.store, body.token)
    if user is None:
        raise _errors().Unauthorized("wrong token")
    request.scope[_errors().USER_KEY] = user
    sid, session = sessions(request).open(body.token)
    answer = JSONResponse(ok({"user": user["name"], "role": user["role"], "csrf": session.csrf}),
                          headers={"Cache-Control": "no-store"})
    answer.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/",
                      secure=request.url.scheme == "https", max_age=12 * 3600)
    return answer


@router.post("/board/logout")
def logout(request: Request, _user: dict = Depends(board_user)) -> Response:
    if not csrf_ok(request.state.board_session, request.headers.get(CSRF_HEADER)):
        raise _errors().Forbidden(f"logout: missing or wrong {CSRF_HEADER} header")
    sessions(request).close(request.cookies.get(COOKIE))
    answer = JSONResponse(ok({"logged_out": True}))
    answer.delete_cookie(COOKIE, path="/")
    return answer


# API --------------------------------------------------------------------
api = APIRouter(prefix="/board/api")


@api.get("/session")
def session_info(request: Request, user: dict = Depends(board_user)):
    conf = ops_of(request).conf
    return ok({"user": user["name"], "role": user["role"], "csrf": request.state.board_session.csrf,
               "party_id": conf.server.party_id, "mode": conf.mode})


@api.get("/jobs", dependencies=[Depends(need("job_list"))])
def jobs(request: Request, offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500),
         sort: Literal["created", "started", "ended", "duration"] = "created",
         order: Literal["asc", "desc"] = "desc", status: str | None = None, role: str | None = None,
         party_id: str | None = None, partner: str | None = None, since: str | None = None,
         until: str | None = None, q: str | None = None):
    """One page of the jobs table (each line with ``job_query``'s parties, times and progress)
    and the number of jobs that match (:func:`.views.jobs_table`)."""
    return ok(jobs_table(ops_of(request), offset, limit, sort, order == "desc", status=status or None,
                         role=role or None, party_id=party_id or None, partner=partner or None,
                         since=since or None, until=until or None, q=q or None))


@api.get("/jobs/{job_id}", dependencies=[Depends(need("job_query"))])
def job(job_id: str, request: Request):
    return ok(job_page(ops_of(request), job_id))


_TASK = "/jobs/{job_id}/tasks/{role}/{party_id}/{component}"


@api.get(_TASK + "/parameters", dependencies=[Depends(need("component_parameters"))])
def parameters(job_id: str, role: str, party_id: str, component: str, request: Request):
    return ok(ops_of(request).component_parameters(job_id, role, party_id, component))


@api.get(_TASK + "/metrics", dependencies=[Depends(need("tracking_metrics"))])
def metrics(job_id: str, role: str, party_id: str, component: str, request: Request):
    own_party(request, job_id, role, party_id)
    return ok(ops_of(request).tracking_metrics(job_id, role, party_id, component))


@api.get(_TASK + "/model", dependencies=[Depends(need("tracking_output_model"))])
def model(job_id: str, role: str, party_id: str, component: str, request: Request):
    own_party(request, job_id, role, party_id)
    return ok(ops_of(request).tracking_output_model(job_id, role, party_id, component)["model"])


@api.get(_TASK + "/data", dependencies=[Depends(need("tracking_output_data"))])
def data(job_id: str, role: str, party_id: str, component: str, request: Request,
         limit: int = Query(100, ge=0, le=100)):
    own_party(request, job_id, role, party_id)
    return ok(ops_of(request).tracking_output_data(job_id, role, party_id, component, None, limit))


@api.get("/jobs/{job_id}/logs", dependencies=[Depends(need("job_logs"))])
def logs(job_id: str, role: str, party_id: str, request: Request, component: str | None = None,
         follow: bool = False):
    """A party's log lines as server-sent events (``line``), then ``end``; ``follow``: until the job ends."""
    own_party(request, job_id, role, party_id)
    lines = ops_of(request).job_logs(job_id, role, party_id, component or None, follow=follow)
    return StreamingResponse(events.log_events(lines), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@api.get("/events", dependencies=[Depends(need("job_query"))])
async def job_events(request: Request, job_id: str | None = None, limit: int = Query(50, ge=1, le=500)):
    """Server-sent events: ``job`` for each job line that changed among the newest ``limit``
    (or, with ``job_id``, ``detail`` with that job's page data until it ends, then ``end``)."""
    ops = ops_of(request)
    if job_id:
        await run_in_threadpool(ops.job_query, job_id)  # 404 now rather than an empty stream
    stream = events.job_events(request, ops, job_id, limit)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class RerunBody(BaseModel):
    component: str | None = Field(None, description="rerun from this component (default: the first failed one)")


@api.post("/jobs/{job_id}/stop", dependencies=[Depends(need("job_stop", changes=True))])
def stop(job_id: str, request: Request):
    return api_routes.stop_job(job_id, request)


@api.post("/jobs/{job_id}/rerun", dependencies=[Depends(need("job_rerun", changes=True))])
def rerun(job_id: str, request: Request, body: RerunBody | None = None):
    return api_routes.rerun_job(job_id, request, api_routes.RerunBody(component=body.component if body else None))


class NoteBody(BaseModel):
    note: str = Field(max_length=2000, description="what the job is (FATE's notes; the job's description)")


@api.post("/jobs/{job_id}/note", dependencies=[Depends(need("job_submit", changes=True))])
def note(job_id: str, body: NoteBody, request: Request):
    """Set the job's note (its description, as ``flow job submit --description``); whoever may
    submit jobs may describe them. Audited as ``job_note``."""
    request.scope[_errors().OP_KEY] = "job_note"
    ops = ops_of(request)
    ops.job_query(job_id)  # 404 for no such job, the id's own checks
    ops.store.update_job(job_id, description=body.note.strip())
    return ok(job_row(ops.job_query(job_id)))


router.include_router(api)
