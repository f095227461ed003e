"""The HTTP routes of a party's flow server: one per CLI operation, each calling the same
:class:`flow.ops.local.LocalOps` method the CLI calls in standalone mode.

Every answer is FATE's envelope ``{"retcode": 0, "retmsg": "success", "data": ...}``;
logs and table downloads are streamed as they are produced.
"""

from __future__ import annotations

import shutil
import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from flow.core.ids import check_id
from flow.core.paths import client_file_name, safe_join
from flow.dsl.loader import plan_from_dicts
from flow.ops.local import LocalOps


def ok(data: Any = None) -> dict[str, Any]:
    return {"retcode": 0, "retmsg": "success", "data": data}


def ops_of(request: Request) -> LocalOps:
    return request.app.state.ops


class SubmitBody(BaseModel):
    """A job as the client read it: the two JSON files and their names (for messages)."""

    conf: dict[str, Any]
    dsl: dict[str, Any]
    conf_file: str = "conf.json"
    dsl_file: str = "dsl.json"
    description: str | None = Field(None, description="what the job is (FATE's notes), shown by query and list")


class RerunBody(BaseModel):
    component: str | None = Field(None, description="rerun from this component (default: the first failed one)")


class BindBody(BaseModel):
    namespace: str
    name: str
    engine: str
    address: dict[str, Any]
    id_column: str = "id"
    label_column: str | None = None


jobs = APIRouter(prefix="/jobs", tags=["jobs"])
data = APIRouter(prefix="/data", tags=["data"])
tables = APIRouter(prefix="/tables", tags=["tables"])
tracking = APIRouter(prefix="/tracking/{job_id}/{role}/{party_id}/{component}", tags=["tracking"])
server = APIRouter(prefix="/server", tags=["server"])


# jobs -------------------------------------------------------------------
@jobs.post("", summary="validate and start a job (flow job submit)")
def submit_job(body: SubmitBody, request: Request):
    plan = plan_from_dicts(body.conf, body.dsl, conf_file=body.conf_file, dsl_file=body.dsl_file)
    control = request.app.state.control
    if control is not None:  # between servers: proposed to the other parties first
        return ok(control.submit(plan, body.conf_file, body.dsl_file, description=body.description))
    return ok(ops_of(request).job_submit(plan, body.conf_file, body.dsl_file, description=body.description))


@jobs.get("", summary="recent jobs, newest first (flow job list)")
def list_jobs(request: Request, limit: int = Query(20, ge=0), status: str | None = None, role: str | None = None,
              party_id: str | None = None, initiator: str | None = None, since: str | None = None,
              until: str | None = None, description: str | None = None):
    return ok(ops_of(request).job_list(limit, status=status, role=role, party_id=party_id, initiator=initiator,
                                       since=since, until=until, description=description))


@jobs.get("/{job_id}", summary="a job and every party's tasks (flow job query)")
def query_job(job_id: str, request: Request):
    return ok(ops_of(request).job_query(job_id))


@jobs.get("/{job_id}/components", summary="a job's components and DSL (flow component list, flow job dag)")
def list_components(job_id: str, request: Request):
    return ok(ops_of(request).component_list(job_id))


@jobs.post("/{job_id}/stop", summary="cancel a job (flow job stop)")
def stop_job(job_id: str, request: Request):
    result = ops_of(request).job_stop(job_id)
    if request.app.state.control is not None:
        request.app.state.control.broadcast(job_id, {"type": "stop"})
    return ok(result)


@jobs.post("/{job_id}/rerun", summary="rerun a finished job from a component (flow job rerun)")
def rerun_job(job_id: str, request: Request, body: RerunBody | None = None):
    component = body.component if body else None
    result = ops_of(request).job_rerun(job_id, component)
    if request.app.state.control is not None:
        request.app.state.control.broadcast(job_id, {"type": "rerun", "component": result["rerun_from"]})
    return ok(result)


@jobs.get("/{job_id}/logs", summary="component logs as text lines; follow=true streams until the job ends",
          response_class=StreamingResponse)
def job_logs(job_id: str, request: Request, role: str | None = None, party_id: str | None = None,
             component: str | None = None, follow: bool = False):
    lines = ops_of(request).job_logs(job_id, role, party_id, component, follow=follow)
    return StreamingResponse((line + "\n" for line in lines), media_type="text/plain; charset=utf-8")


# data and tables --------------------------------------------------------
@data.post("/upload", summary="store the CSV in the request body as table namespace/name (flow data upload)")
async def upload(request: Request, namespace: str, name: str, id_column: str = "id",
                 label_column: str | None = None, partitions: int | None = Query(None, ge=1),
                 engine: str | None = None, filename: str = "upload.csv", drop: bool = False,
                 head: bool = True):
    ops = ops_of(request)
    safe = client_file_name(filename, "upload.csv")
    check_id("namespace", namespace, "namespace")  # before anything is written
    check_id("table_name", name, "name")
    folder = ops.conf.home_path / "uploads" / uuid.uuid4().hex
    target = safe_join(folder, safe, fields=("filename",))
    folder.mkdir(parents=True)
    try:
        with target.open("wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        result = await run_in_threadpool(ops.data_upload, target, namespace, name, id_column,
                                         label_column, partitions, engine, drop, head)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return ok(result)


@data.get("/download", summary="a table as CSV, streamed (flow data download)", response_class=StreamingResponse)
def download(request: Request, namespace: str, name: str, engine: str | None = None):
    return StreamingResponse(ops_of(request).iter_csv(namespace, name, engine), media_type="text/csv")


@tables.get("", summary="tables in this party's storage (flow table list)")
def list_tables(request: Request, namespace: str | None = None):
    return ok(ops_of(request).table_list(namespace))


@tables.post("/bind", summary="register an existing Hive table or HDFS path (flow table bind)")
def bind_table(body: BindBody, request: Request):
    return ok(ops_of(request).table_bind(body.namespace, body.name, body.engine, body.address,
                                         body.id_column, body.label_column))


@tables.get("/{namespace}/{name}", summary="engine, address, schema, count and checksum (flow table info)")
def table_info(namespace: str, name: str, request: Request, engine: str | None = None):
    return ok(ops_of(request).table_info(namespace, name, engine))


@tables.delete("/{namespace}/{name}", summary="remove a table (flow table delete)")
def delete_table(namespace: str, name: str, request: Request):
    return ok(ops_of(request).table_delete(namespace, name))


# tracking ---------------------------------------------------------------
@tracking.get("/metrics", summary="metrics a task logged (flow tracking metrics)")
def metrics(job_id: str, role: str, party_id: str, component: str, request: Request):
    return ok(ops_of(request).tracking_metrics(job_id, role, party_id, component))


@tracking.get("/output-data", summary="a task's output tables, first rows (flow tracking output-data)")
def output_data(job_id: str, role: str, party_id: str, component: str, request: Request,
                limit: int = Query(10, ge=0)):
    return ok(ops_of(request).tracking_output_data(job_id, role, party_id, component, None, limit))


@tracking.get("/output-model", summary="the model part this party holds (flow tracking output-model)")
def output_model(job_id: str, role: str, party_id: str, component: str, request: Request):
    return ok(ops_of(request).tracking_output_model(job_id, role, party_id, component))


@tracking.get("/parameters", summary="a task's effective parameters (flow component parameters)")
def component_parameters(job_id: str, role: str, party_id: str, component: str, request: Request):
    return ok(ops_of(request).component_parameters(job_id, role, party_id, component))


# server -----------------------------------------------------------------
@server.get("/status", summary="this server, its transport, store and engines (flow server status)")
def status(request: Request):
    state = request.app.state
    info = ops_of(request).server_status()
    info["server"] = {**(info.get("server") or {}), **state.runtime,
                      "detector": state.detector.view() if state.detector else None,
                      "schedules": state.schedules.view() if state.schedules else None,
                      "control_plane": {"party_id": state.control.party_id, "peers": state.control.peers}
                      if state.control else None}
    return ok(info)


ROUTERS = [jobs, data, tables, tracking, server]
