"""A party's flow server: the FastAPI app behind the CLI's client mode.

Every route, the OpenAPI spec included, needs ``Authorization: Bearer <token>``: a user's
token (``flow user add``, :mod:`flow.ops.users`) or the party's own token
(:mod:`flow.server.auth`), which acts as the admin ``admin``; anything else gets 401. A known
user whose role is below the operation's (:data:`flow.ops.api.ROLES`) gets 403. Every refusal
(401, 403, 400, 422) and every request that changes something (POST, DELETE) goes to the
party's audit log with the user's name as actor. Errors come back in FATE's envelope with
the exit code the CLI would have used, so a client prints them exactly as standalone mode does.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from flow.core.errors import ConfigError, FedweaveError, JobNotFound, StorageError, StoreError, ValidationError
from flow.core.settings import ServiceConf
from flow.ops.api import ROLES, ROUTES, role_allows
from flow.ops.local import LocalOps
from flow.ops.users import acting_user
from flow.server.auth import identify
from flow.server.board import install as install_board
from flow.server.governance_routes import ROUTERS as GOVERNANCE_ROUTERS
from flow.server.model_routes import ROUTERS as MODEL_ROUTERS
from flow.server.ops_routes import install as install_ops_routes
from flow.server.routes import ROUTERS
from flow.server.user_routes import ROUTERS as USER_ROUTERS
from flow.server.worker import Worker
from flow.store import Store

if TYPE_CHECKING:
    from flow.schedules.loop import Scheduler

API_PREFIX = "/v1"
log = logging.getLogger("fedweave.server")

#: HTTP status of each error family (most specific class first); anything else is 500
HTTP_STATUS: list[tuple[type[FedweaveError], int]] = [
    (JobNotFound, 404),
    (ValidationError, 400),
    (ConfigError, 400),
    (StoreError, 404),
    (StorageError, 404),
    (FedweaveError, 409),
]

_bearer = HTTPBearer(auto_error=False,
                     description="a user's token (flow user add), or the party's API token (service_conf server.token)")


#: where a request's scope carries what the audit of its answer needs (see :class:`AuditRequests`)
USER_KEY, OP_KEY, REASON_KEY = "fedweave.user", "fedweave.operation", "fedweave.reason"
#: answers that refuse a request: each is audited with its reason
REFUSED = frozenset({400, 403, 422})


class Unauthorized(Exception):
    """No token, or not this party's nor a user's."""


class Forbidden(Exception):
    """A known user whose role may not ask for this operation."""


async def require_token(request: Request,
                        creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """The user behind the request's token (name and role); 401 when there is none. The
    user's changes are audited under its name (:data:`flow.ops.users.acting_user`)."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("missing 'Authorization: Bearer <token>'")
    user = await run_in_threadpool(identify, request.app.state.token, request.app.state.ops.store,
                                   creds.credentials)
    if user is None:
        raise Unauthorized("wrong token")
    request.scope[USER_KEY] = user
    acting_user.set(user["name"])
    return user


async def require_role(request: Request, user: dict[str, Any] = Depends(require_token)) -> None:
    """403 unless the user's role may ask for the route's operation (:data:`flow.ops.api.ROLES`);
    a route no operation claims is refused to everyone."""
    route = request.scope.get("route")
    op = request.app.state.operations.get((request.method, id(route))) or _BY_PATH.get(
        (request.method, getattr(route, "path", None)))  # a FastAPI that copies included routes
    request.scope[OP_KEY] = op
    if op is None:
        raise Forbidden(f"user '{user['name']}' ({user['role']}) may not {request.method} {request.url.path}: "
                        f"no operation in flow.ops.api.ROUTES claims this route")
    if not role_allows(user["role"], op):
        raise Forbidden(f"user '{user['name']}' ({user['role']}) may not {op}: needs {ROLES[op]}")


#: (method, full path) -> operation
_BY_PATH = {(method, API_PREFIX + path): op for op, (method, path) in ROUTES.items()}


def route_operations(routers: list[APIRouter]) -> dict[tuple[str, int], str]:
    """(method, id of the route object) -> operation, for every route of ``routers``; a route
    whose operation is not in :data:`flow.ops.api.ROUTES`, or has no role in
    :data:`flow.ops.api.ROLES`, is a ConfigError: no route is served unguarded."""
    found: dict[tuple[str, int], str] = {}
    for router in routers:
        for route in router.routes:
            for method in sorted(getattr(route, "methods", None) or ()):
                op = _BY_PATH.get((method, API_PREFIX + getattr(route, "path", "")))
                if op is None or op not in ROLES:
                    raise ConfigError(f"flow server route {method} {API_PREFIX}{getattr(route, 'path', '')} has "
                                      f"{'no role in flow.ops.api.ROLES' if op else 'no operation in ROUTES'}")
                found[(method, id(route))] = op
    return found


def audit_party(conf: ServiceConf) -> str:
    """Whose audit log the server writes: its party's, or ``local`` for a standalone home."""
    return conf.server.party_id or "local"


def _audit_refusal(request: Request, reason: str) -> None:
    """A refused login goes to the party's audit log (who tried, on which route); a failure
    to write it is logged and never changes the answer."""
    try:
        from flow.governance.audit import AuditLog

        conf = request.app.state.ops.conf
        client = request.client.host if request.client else "unknown"
        AuditLog(conf.home_path, audit_party(conf)).append(
            "server.login.refused", actor=f"client:{client}", details={"path": request.url.path, "reason": reason})
    except Exception:  # noqa: BLE001
        log.exception("could not audit a refused request")


def _audit_request(scope: dict[str, Any], status: int) -> None:
    """One entry in the party's audit log for a refused or state-changing request, by the
    user who asked (requests with no user are 401s, audited by their handler)."""
    user = scope.get(USER_KEY)
    method = scope.get("method", "")
    refused = status in REFUSED
    if user is None or not (refused or method in ("POST", "DELETE")):
        return
    try:
        from flow.governance.audit import AuditLog

        conf = scope["app"].state.ops.conf
        details: dict[str, Any] = {"operation": scope.get(OP_KEY), "method": method, "path": scope.get("path"),
                                   "status": status}
        if refused:
            details["reason"] = (str(scope.get(REASON_KEY) or "").splitlines() or [""])[0]
        AuditLog(conf.home_path, audit_party(conf)).append(
            "server.request.refused" if refused else "server.request", actor=user["name"], details=details)
    except Exception:  # noqa: BLE001
        log.exception("could not audit a request")


class AuditRequests:
    """ASGI middleware: audits each answer as it starts (:func:`_audit_request`), before the
    client sees it; a streamed answer (a followed log) is audited once, not per line."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def audited_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                await run_in_threadpool(_audit_request, scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not started:
                await run_in_threadpool(_audit_request, scope, 500)
            raise


def _envelope(status: int, retcode: int, retmsg: str, data: Any = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"retcode": retcode, "retmsg": retmsg, "data": data}, status_code=status, headers=headers)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized):
        _audit_refusal(request, str(exc))
        return _envelope(401, 401, f"unauthorized: {exc}", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        request.scope[REASON_KEY] = str(exc)
        return _envelope(403, 403, str(exc))

    @app.exception_handler(FedweaveError)
    async def _fedweave(request: Request, exc: FedweaveError):
        status = next(code for cls, code in HTTP_STATUS if isinstance(exc, cls))
        data = {"problems": exc.problems} if isinstance(exc, ValidationError) else None
        retmsg = "; ".join(exc.problems) if isinstance(exc, ValidationError) else str(exc)
        request.scope[REASON_KEY] = retmsg
        return _envelope(status, exc.exit_code, retmsg, data)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        request.scope[REASON_KEY] = "; ".join(problems)
        return _envelope(422, 2, "; ".join(problems), {"problems": problems})

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception):  # still logged by the server
        return _envelope(500, 1, f"flow server internal error: {type(exc).__name__}: {exc}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        return _envelope(exc.status_code, 1, str(exc.detail), headers=getattr(exc, "headers", None))


def server_scheduler(conf: ServiceConf, store: Store, control: Any = None) -> Scheduler:
    """The party's scheduler as its server runs it: between servers a firing resolves
    ``{latest}`` only in the tables of the roles this party plays (the others resolve
    theirs when the job is proposed to them) and is proposed like ``flow job submit``."""
    from flow.schedules.retrain import party_scheduler, roles_of

    if control is None:
        return party_scheduler(conf, store)
    return party_scheduler(conf, store, roles=roles_of(control.party_id),
                           start=lambda _conf, _store, plan, c, d: control.submit(plan, c, d))


class ScheduleLoop(Worker):
    """Fires this party's cron schedules (``flow schedule``) while the server runs; a firing
    submits the job as ``flow job submit`` to this server would (proposed to the others
    between servers)."""

    name = "schedules"

    def __init__(self, conf: ServiceConf, store: Store, control: Any = None):
        super().__init__(conf.server.schedule_interval)
        self.scheduler = server_scheduler(conf, store, control)
        self.ticks = 0

    def step(self) -> bool:
        try:
            self.scheduler.tick()
        finally:
            self.ticks += 1
        return False

    def view(self) -> dict[str, Any]:
        return {"interval_s": self.interval, "ticks": self.ticks, "alive": self.alive}


def create_app(conf: ServiceConf, token: str, *, store: Store | None = None, detect: bool = True,
               runtime: dict[str, Any] | None = None) -> FastAPI:
    """The app for one party. ``detect`` runs the job detector while the app serves."""
    if not token:
        raise ConfigError("the flow server needs an API token (service_conf server.token or its token file)")
    conf.home_path.mkdir(parents=True, exist_ok=True)
    store = store or Store(conf.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from flow.server.detector import JobDetector

        if conf.mode != "standalone":
            from flow.server.control import ControlPlane

            app.state.control = ControlPlane(conf, store)
            app.state.control.start()
        control = app.state.control
        app.state.ops.make_scheduler = lambda: server_scheduler(conf, store, control)  # run-now as the loop fires
        if detect:
            app.state.detector = JobDetector(conf, store, conf.server.detect_interval)
            app.state.detector.start()
            app.state.schedules = ScheduleLoop(conf, store, app.state.control)
            app.state.schedules.start()
        try:
            yield
        finally:
            if app.state.schedules:
                app.state.schedules.stop()
            if app.state.detector:
                app.state.detector.stop()
            if app.state.control:
                app.state.control.stop()

    app = FastAPI(title="fedweave flow server", version="1", lifespan=lifespan,
                  description="One party's flow server: the operations behind every `flow` command.",
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.token = token
    app.state.ops = LocalOps(conf, store)
    app.state.detector = None
    app.state.control = None
    app.state.schedules = None
    app.state.runtime = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         **(runtime or {})}
    _install_handlers(app)
    app.add_middleware(AuditRequests)
    routers = ROUTERS + GOVERNANCE_ROUTERS + MODEL_ROUTERS + USER_ROUTERS
    app.state.operations = route_operations(routers)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_role)])
    for router in routers:
        api.include_router(router)
    app.include_router(api)
    install_ops_routes(app, require_token)  # /healthz, /readyz (no token), /metrics (token)
    install_board(app)  # the board at / (its own session cookie; same operations and roles)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    return app
