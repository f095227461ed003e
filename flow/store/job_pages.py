"""One page of the job list, sorted and counted in the database (the board's jobs table).

:meth:`Store.jobs` answers "the newest N"; a person paging through thousands of jobs needs
a page at an offset, a total, and another order (start, end, duration). Column filters are
the same as :meth:`Store.jobs`'s; party filters read the conf's ``role`` (as there), so with
one the matching ids are found first from that column alone and then one page is read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from flow.core.errors import StoreError

from .models import Job, Task
from .store import Store, _has_party, _row, job_filters

#: the columns of a job's line (not its conf and DSL, which a page has no use for)
LINE = (Job.job_id, Job.status, Job.initiator_role, Job.initiator_party, Job.reason, Job.description, Job.attempt,
        Job.created, Job.started, Job.ended)
#: what a page can be sorted by
SORTS = ("created", "started", "ended", "duration")


def _sort_key(store: Store, sort: str) -> Any:
    if sort == "duration":  # seconds on SQLite (julianday), an interval on PostgreSQL: both sort
        if store.engine.dialect.name == "sqlite":
            return func.julianday(Job.ended) - func.julianday(Job.started)
        return Job.ended - Job.started
    if sort not in SORTS:
        raise StoreError(f"jobs cannot be sorted by '{sort}': one of {', '.join(SORTS)}")
    return getattr(Job, sort)


def jobs_page(store: Store, offset: int = 0, limit: int = 50, *, sort: str = "created", descending: bool = True,
              id_contains: str | None = None, parties: tuple[tuple[str | None, str | None], ...] = (),
              **filters: Any) -> tuple[list[dict[str, Any]], int]:
    """The lines (:data:`LINE`) of jobs ``offset`` to ``offset + limit`` of those that match, and
    how many match.

    ``parties``: (role or None, party id or None) pairs the job's conf must each name;
    ``filters``: :func:`flow.store.store.job_filters`'s. Jobs not started or not ended come
    last in either direction of a sort by their times.
    """
    if offset < 0 or limit < 0:
        raise StoreError(f"a jobs page needs offset and limit of 0 or more, got {offset} and {limit}")
    key = _sort_key(store, sort)
    q = job_filters(select(Job), **filters)
    if id_contains:
        q = q.where(func.lower(Job.job_id).contains(id_contains.lower(), autoescape=True))
    order = [(key.desc() if descending else key.asc()).nulls_last(),
             Job.created.desc() if descending else Job.created.asc(), Job.job_id.desc()]
    with store.session() as s:
        if not parties:
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            page = q.with_only_columns(*LINE).order_by(*order).offset(offset).limit(limit)
            return [dict(r) for r in s.execute(page).mappings()], total
        ids = [job_id for job_id, conf in s.execute(q.with_only_columns(Job.job_id, Job.conf).order_by(*order))
               if all(_has_party(conf, role, party) for role, party in parties)]
        chosen = ids[offset:offset + limit]
        found = s.execute(select(*LINE).where(Job.job_id.in_(chosen))).mappings().all() if chosen else []
        rows: dict[str, dict[str, Any]] = {r["job_id"]: dict(r) for r in found}
        return [rows[i] for i in chosen], len(ids)


def tasks_of(store: Store, job_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every task of each job, by job id, in one query (a page's progress bars)."""
    out: dict[str, list[dict[str, Any]]] = {j: [] for j in job_ids}
    if job_ids:
        with store.session() as s:
            for t in s.scalars(select(Task).where(Task.job_id.in_(job_ids)).order_by(Task.id)):
                out[t.job_id].append(_row(t))
    return out
