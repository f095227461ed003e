"""The flow server's routes for ``flow model``: each calls the :class:`flow.models.ops.ModelOps`
method the CLI calls in standalone mode, on the server's home. An export comes back as the
archive's bytes (the client writes its ``-o`` file); an import is the archive in the body.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from flow.core.paths import client_file_name
from flow.server.routes import ok, ops_of

models = APIRouter(prefix="/models", tags=["models"])

#: the response header that carries an export's result (model, parties, sha256) next to its bytes
EXPORT_HEADER = "X-Fedweave-Export"


class DeployBody(BaseModel):
    job_id: str | None = Field(None, description="the training job (its id is the model version)")
    model_id: str | None = None
    model_version: str | None = None
    cpn_list: list[str] | None = Field(None, description="components to deploy (default: as flow model deploy)")


def _scratch(request: Request) -> Path:
    """A private folder under the server's home for one archive on its way in or out."""
    folder = ops_of(request).conf.home_path / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def _archive_name(filename: str) -> str:
    return client_file_name(filename, "model.zip")


@models.get("", summary="every model version kept in the server's home (flow model list)")
def list_models(request: Request, model_id: str | None = None):
    return ok(ops_of(request).model_list(model_id))


@models.post("/deploy", summary="derive and record a model's predict DSL and conf (flow model deploy)")
def deploy_model(body: DeployBody, request: Request):
    return ok(ops_of(request).model_deploy(body.job_id, body.model_id, body.model_version, body.cpn_list))


@models.get("/export", summary="a model version's parts as one archive, in the body (flow model export)",
            response_class=Response, responses={200: {"content": {"application/zip": {}}}})
def export_model(request: Request, job_id: str | None = None, model_id: str | None = None,
                 model_version: str | None = None, role: str | None = None, party_id: str | None = None,
                 filename: str = "model.zip"):
    folder = _scratch(request)
    try:
        result = ops_of(request).model_export(folder / _archive_name(filename), job_id, model_id, model_version,
                                              role, party_id)
        blob = Path(result["file"]).read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    meta = {k: v for k, v in result.items() if k != "file"}
    return Response(blob, media_type="application/zip", headers={EXPORT_HEADER: json.dumps(meta)})


@models.post("/import", summary="add the model archive in the request body to the server's home (flow model import)")
async def import_model(request: Request, force: bool = False, require_signed: bool = False,
                       filename: str = Query("model.zip")):
    ops = ops_of(request)
    folder = _scratch(request)
    try:
        path = folder / _archive_name(filename)
        with path.open("wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        result = await run_in_threadpool(ops.model_import, path, force, require_signed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return ok(result)


ROUTERS = [models]
