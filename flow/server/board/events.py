"""Server-sent event streams of the board: job lines and job pages as they change, log lines.

The server looks at the store once a second for the jobs still running (finished ones are
not asked again); the browser only listens, it never polls.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator, Iterator

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from flow.ops.local import LocalOps
from flow.server.board.views import job_page, job_row

#: seconds between looks at the store
POLL = 1.0
#: seconds between keep-alive comments on a quiet stream
KEEPALIVE = 15.0
#: seconds a stream lasts before it ends and the browser reconnects (``retry``): a stream the
#: server was not told of never outlives it by long
LIFETIME = 300.0


def sse(event: str, data: Any) -> str:
    """One event; JSON keeps the data on one line, so no line of it can end the event early."""
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def log_events(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        yield sse("line", line)
    yield sse("end", {})


def _rows(ops: LocalOps, limit: int, seen: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest jobs' lines; a job already seen finished is not queried again."""
    rows = []
    for j in ops.job_list(limit):
        last = seen.get(j["job_id"])
        rows.append(last if last is not None and last["final"] and last["status"] == j["status"]
                    else job_row(ops.job_query(j["job_id"])))
    return rows


async def job_events(request: Request, ops: LocalOps, job_id: str | None, limit: int) -> AsyncIterator[str]:
    seen: dict[str, dict[str, Any]] = {}
    last_page: dict[str, Any] | None = None
    quiet_since = opened = time.monotonic()
    yield "retry: 2000\n\n"
    while not await request.is_disconnected() and time.monotonic() - opened < LIFETIME:
        if job_id:
            page = await run_in_threadpool(job_page, ops, job_id)
            moving = {k: v for k, v in page.items() if k != "job"} | {"status": page["job"]["status"]}
            if moving != last_page:
                last_page = moving
                quiet_since = time.monotonic()
                yield sse("detail", page)
            if page["job"]["final"]:
                yield sse("end", {"status": page["job"]["status"]})
                return
        else:
            for row in await run_in_threadpool(_rows, ops, limit, seen):
                before = seen.get(row["job_id"])
                if before is None or {**before, "duration_s": None} != {**row, "duration_s": None}:
                    seen[row["job_id"]] = row
                    quiet_since = time.monotonic()
                    yield sse("job", row)
        if time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL)
