"""The builder's page and API: the module palette, live validation, submit, and a past
job's files to open again. Same sessions, roles and CSRF rule as :mod:`.routes`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from flow.server import routes as api_routes
from flow.server.board import builder
from flow.server.board.routes import _page, _session_user, need
from flow.server.routes import ok, ops_of

router = APIRouter(include_in_schema=False)


@router.get("/builder")
def builder_page(request: Request) -> Response:
    return _page("builder.html") if _session_user(request) else RedirectResponse("/login", status_code=303)


class PipelineBody(BaseModel):
    """The builder's two files, as they would be saved."""

    conf: dict[str, Any]
    dsl: dict[str, Any]
    description: str | None = Field(None, max_length=2000)


@router.get("/board/api/modules", dependencies=[Depends(need("component_list"))])
def modules():
    return ok({"modules": builder.palette()})


@router.post("/board/api/validate", dependencies=[Depends(need("component_list", changes=True))])
def validate(body: PipelineBody, request: Request):
    """``flow job validate`` on the builder's files: ``valid``, and each problem placed."""
    return ok(builder.validate(ops_of(request), body.conf, body.dsl))


@router.post("/board/api/submit", dependencies=[Depends(need("job_submit", changes=True))])
def submit(body: PipelineBody, request: Request):
    """Submit as ``flow job submit`` (between servers: proposed to the other parties first)."""
    return api_routes.submit_job(api_routes.SubmitBody(conf=body.conf, dsl=body.dsl, conf_file=builder.CONF_FILE,
                                                       dsl_file=builder.DSL_FILE, description=body.description),
                                 request)


@router.get("/board/api/jobs/{job_id}/pipeline", dependencies=[Depends(need("job_query"))])
def pipeline(job_id: str, request: Request):
    return ok(builder.pipeline(ops_of(request), job_id))
