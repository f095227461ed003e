"""The job page's result routes beyond the stored JSON: Evaluation's PR, lift, gain and
confusion counts, output columns' statistics, an output table as CSV, and a party's log
lines filtered by level and text, as a file. Each is refused (403) for a party this home
did not run (:func:`.routes.own_party`) and asks for the same operation as its ``flow
tracking`` or ``flow job log`` counterpart."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from flow.core.ids import check_id
from flow.server.board import results
from flow.server.board.routes import need, own_party
from flow.server.routes import ok, ops_of

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/board/api")
_TASK = "/jobs/{job_id}/tasks/{role}/{party_id}/{component}"


def _attachment(stem: list[tuple[str, str]], suffix: str) -> dict[str, str]:
    """Download headers; the file name is built only from the ``(kind, value)`` parts that
    pass :func:`check_id` (no quote, slash or newline can reach the header), whatever checked
    them before."""
    filename = "_".join(check_id(kind, value) for kind, value in stem) + suffix
    return {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff"}


@api.get(_TASK + "/curves", dependencies=[Depends(need("tracking_metrics"))])
def curves(job_id: str, role: str, party_id: str, component: str, request: Request,
           threshold: float | None = Query(None, ge=0, le=1)):
    """PR, lift, gain and confusion counts per namespace of Evaluation's metrics."""
    own_party(request, job_id, role, party_id)
    metrics = ops_of(request).tracking_metrics(job_id, role, party_id, component)
    return ok(results.evaluation_curves(metrics, threshold))


@api.get(_TASK + "/data/statistics", dependencies=[Depends(need("tracking_output_data"))])
def statistics(job_id: str, role: str, party_id: str, component: str, request: Request):
    own_party(request, job_id, role, party_id)
    return ok(results.column_statistics(ops_of(request), job_id, role, party_id, component))


@api.get(_TASK + "/data/{index}.csv", dependencies=[Depends(need("tracking_output_data"))])
def data_csv(job_id: str, role: str, party_id: str, component: str, index: int, request: Request):
    """The whole output table as ``flow tracking output-data -o`` writes it (audited as a download)."""
    own_party(request, job_id, role, party_id)
    ops = ops_of(request)
    namespace, name, engine = results.output_table(ops, job_id, role, party_id, component, index)
    chunks = ops.iter_csv(namespace, name, engine)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers=_attachment([("component", component)], f"_{index}.csv"))


@api.get("/jobs/{job_id}/logs.txt", dependencies=[Depends(need("job_logs"))])
def logs_file(job_id: str, role: str, party_id: str, request: Request, component: str | None = None,
              level: results.Level | None = None, q: str | None = Query(None, max_length=200)):
    """The party's log lines (of one component, or all) at ``level`` or above containing ``q``."""
    own_party(request, job_id, role, party_id)
    lines = ops_of(request).job_logs(job_id, role, party_id, component or None)
    body = (f"{line}\n" for line in results.filter_logs(lines, level, q))
    parts = [("job_id", job_id), ("role", role), ("party_id", party_id)]
    parts += [("component", component)] if component else []
    return StreamingResponse(body, media_type="text/plain; charset=utf-8", headers=_attachment(parts, ".log"))


router.include_router(api)
