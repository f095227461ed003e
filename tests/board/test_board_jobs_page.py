"""One page of the jobs table from the store (flow.store.job_pages), on SQLite and
PostgreSQL: pages cover the matching jobs once each in order, the total counts them, and
each sort and filter agrees with the same sort and filter done in Python on every job."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from flow.core.errors import StoreError
from flow.store import Store
from flow.store.job_pages import jobs_page
from tests.postgres import fresh_database, require_postgres

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _fill(store: Store) -> list[dict]:
    """40 jobs: created a minute apart, some never started, some still running, random durations."""
    rng = random.Random(7)
    jobs = []
    for i in range(40):
        guest, host = str(9000 + i % 3), str(10000 + i % 4)
        job_id = f"2026030100{i:02d}{'abc'[i % 3]}"
        conf = {"role": {"guest": [int(guest)], "host": [int(host)], "arbiter": [int(host)]}}
        store.create_job(job_id, conf=conf, dsl={}, initiator=("guest", guest), parties=[], components={})
        created = T0 + timedelta(minutes=i)
        started = created + timedelta(seconds=5) if i % 7 else None
        ended = started + timedelta(seconds=rng.randint(1, 5000)) if started and i % 5 else None
        status = "waiting" if not started else "running" if not ended else "success"
        store.update_job(job_id, created=created, started=started, ended=ended, status=status)
        jobs.append({"job_id": job_id, "created": created, "started": started, "ended": ended,
                     "guest": guest, "host": host})
    return jobs


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.for_home(tmp_path)
        yield s
        s.close()
        return
    require_postgres()
    with fresh_database("board_pages") as url:
        s = Store(url)
        try:
            yield s
        finally:
            s.close()


def _all_pages(store: Store, size: int, **kw) -> tuple[list[str], int]:
    ids: list[str] = []
    offset, total = 0, None
    while total is None or offset < total:
        rows, total = jobs_page(store, offset, size, **kw)
        ids += [r["job_id"] for r in rows]
        offset += size
    return ids, total or 0


def _expected(jobs: list[dict], key, descending: bool) -> list[str]:
    """Python's order: jobs with no value last, then by creation in the same direction."""
    have = [j for j in jobs if key(j) is not None]
    none = [j for j in jobs if key(j) is None]
    have.sort(key=lambda j: (key(j), j["created"]), reverse=descending)
    none.sort(key=lambda j: j["created"], reverse=descending)
    return [j["job_id"] for j in have + none]


@pytest.mark.parametrize("sort", ["created", "started", "ended", "duration"])
@pytest.mark.parametrize("descending", [True, False])
def test_pages_follow_each_sort(store: Store, sort: str, descending: bool):
    jobs = _fill(store)
    keys = {"created": lambda j: j["created"], "started": lambda j: j["started"], "ended": lambda j: j["ended"],
            "duration": lambda j: (j["ended"] - j["started"]).total_seconds() if j["ended"] else None}
    ids, total = _all_pages(store, 7, sort=sort, descending=descending)
    assert total == 40 and ids == _expected(jobs, keys[sort], descending)


def test_filters_and_totals(store: Store):
    jobs = _fill(store)
    ids, total = _all_pages(store, 6, parties=((None, "10001"),))
    assert ids == [j["job_id"] for j in reversed(jobs) if j["host"] == "10001"] and total == 10
    ids, total = _all_pages(store, 4, parties=(("guest", "9002"), (None, "10003")))
    assert ids == [j["job_id"] for j in reversed(jobs) if j["guest"] == "9002" and j["host"] == "10003"]
    ids, total = _all_pages(store, 5, id_contains="B", status="success")
    assert ids == [j["job_id"] for j in reversed(jobs) if j["job_id"].endswith("b") and j["ended"]]
    rows, total = jobs_page(store, 100, 10)
    assert rows == [] and total == 40
    with pytest.raises(StoreError, match="cannot be sorted by 'size'"):
        jobs_page(store, 0, 10, sort="size")
