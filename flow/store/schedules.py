"""Cron schedules and their firings in the job store (``cron_schedules``, ``cron_firings``).

Every query, session and transaction of those tables lives here; the scheduler
(:mod:`flow.schedules.loop`) keeps the rules and the clock and calls these methods. Rows
come back as dicts. A missing schedule is answered with None or False, not an error, so
the scheduler words the error (it knows what was asked).

Several tickers (servers, processes) may share one database, so every write that decides
who handles a slot or a job's end is a compare-and-set: one UPDATE whose WHERE clause holds
the value the caller read, and whose row count says whether this caller won.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import CronFiring, CronSchedule
from .repository import Repository, as_dict, changed


class Deployment(NamedTuple):
    """A job to make a schedule's deployed one, if ``replacing`` is still the deployed job."""

    job_id: str
    metrics: dict[str, Any]
    at: datetime
    replacing: str | None


def _view(s: Session, row: CronSchedule, history: int) -> dict[str, Any]:
    """The schedule's columns plus ``history``: its latest ``history`` firings, oldest first."""
    firings: list[CronFiring] = []
    if history > 0:
        firings = list(s.scalars(select(CronFiring).where(CronFiring.schedule == row.name)
                                 .order_by(CronFiring.id.desc()).limit(history)))[::-1]
    return {**as_dict(row), "history": [as_dict(f) for f in firings]}


def _mark_fired(s: Session, name: str, at: datetime) -> None:
    """Set the schedule's ``last_fire`` to ``at`` unless it already fired later (its next
    slot follows ``anchor``, which this leaves alone)."""
    row = s.get(CronSchedule, name)
    if row is not None and (row.last_fire is None or row.last_fire < at):
        s.execute(update(CronSchedule).where(CronSchedule.name == name).values(last_fire=at))


def _queued(s: Session, name: str) -> CronFiring | None:
    """The schedule's newest firing held back by overlap=queue."""
    return s.scalars(select(CronFiring).where(CronFiring.schedule == name, CronFiring.status == "queued")
                     .order_by(CronFiring.id.desc()).limit(1)).first()


class ScheduleRepository(Repository):
    """``store.schedules``: the rows the cron scheduler reads and writes."""

    # -- schedules -------------------------------------------------------------------------
    def add(self, **values: Any) -> bool:
        """Insert a schedule row; False when one of that name exists (also when another
        process inserted it first)."""
        try:
            with self._session() as s:
                if s.get(CronSchedule, values["name"]) is not None:
                    return False
                s.add(CronSchedule(**values))
        except IntegrityError:
            return False
        return True

    def get(self, name: str, history: int = 0) -> dict[str, Any] | None:
        """The schedule's row with its latest ``history`` firings (see :func:`_view`), or None."""
        with self._session() as s:
            row = s.get(CronSchedule, name)
            return None if row is None else _view(s, row, history)

    def all(self, history: int = 0) -> list[dict[str, Any]]:
        """Every schedule by name, each with its latest ``history`` firings."""
        with self._session() as s:
            return [_view(s, r, history) for r in s.scalars(select(CronSchedule).order_by(CronSchedule.name))]

    def names(self, *, active_only: bool = False) -> list[str]:
        """Schedule names (only unpaused ones with ``active_only``), sorted."""
        q = select(CronSchedule.name).order_by(CronSchedule.name)
        if active_only:
            q = q.where(CronSchedule.paused.is_(False))
        with self._session() as s:
            return list(s.scalars(q))

    def pause(self, name: str, reason: str) -> bool:
        """Pause and drop the queued firing (marked skipped for ``reason``); False if missing."""
        with self._session() as s:
            row = s.get(CronSchedule, name)
            if row is None:
                return False
            row.paused, row.version = True, row.version + 1
            queued = _queued(s, name)
            if queued is not None:
                queued.status, queued.reason = "skipped", reason
            row.queued_fire = None
            return True

    def resume(self, name: str, anchor: datetime) -> bool:
        """Unpause a paused schedule, its next slot following ``anchor``; False if missing."""
        with self._session() as s:
            row = s.get(CronSchedule, name)
            if row is None:
                return False
            if row.paused:
                row.paused, row.anchor, row.version = False, anchor, row.version + 1
            return True

    def remove(self, name: str) -> bool:
        """Delete the schedule and its firings in one transaction; False if missing."""
        with self._session() as s:
            row = s.get(CronSchedule, name)
            if row is None:
                return False
            s.delete(row)
            s.execute(delete(CronFiring).where(CronFiring.schedule == name))
            return True

    def claim(self, name: str, version: int, **values: datetime | None) -> bool:
        """Take the schedule's ``version`` (compare-and-set) and set ``values`` with it, so a
        slot is handled once even with several tickers on one database."""
        with self._session() as s:
            return changed(s, update(CronSchedule).where(CronSchedule.name == name, CronSchedule.version == version)
                           .values(version=version + 1, **values)) == 1

    def queue_manual(self, name: str, at: datetime, reason: str) -> bool | None:
        """Hold a run-now firing at ``at`` until the running job ends, unless one is already
        held (False); None if the schedule is missing. The check and the write are one
        UPDATE, so two callers never both queue."""
        with self._session() as s:
            if s.get(CronSchedule, name) is None:
                return None
            if changed(s, update(CronSchedule).where(CronSchedule.name == name, CronSchedule.queued_fire.is_(None))
                       .values(queued_fire=at, version=CronSchedule.version + 1)) != 1:
                return False
            s.add(CronFiring(schedule=name, fire_time=at, status="queued", manual=True, reason=reason, recorded=at))
            return True

    def promote(self, name: str, firing_id: int, note: str, deploy: Deployment | None = None) -> bool:
        """Keep ``note`` (what promote_if decided) on the firing and, with ``deploy``, make its
        job the deployed one in the same transaction. False, with nothing written, when
        another promotion changed the deployed job since it was read."""
        with self._session() as s:
            if deploy is not None:
                col = CronSchedule.deployed_job
                same = col.is_(None) if deploy.replacing is None else col == deploy.replacing
                if changed(s, update(CronSchedule).where(CronSchedule.name == name, same).values(
                        deployed_job=deploy.job_id, deployed_metrics=deploy.metrics, deployed_at=deploy.at)) != 1:
                    return False
            s.execute(update(CronFiring).where(CronFiring.id == firing_id).values(promotion=note))
            return True

    # -- firings ---------------------------------------------------------------------------
    def record_firing(self, name: str, fire_time: datetime, status: str, *, job_id: str | None = None,
                      reason: str = "", manual: bool = False, recorded: datetime) -> None:
        with self._session() as s:
            s.add(CronFiring(schedule=name, fire_time=fire_time, job_id=job_id, status=status, reason=reason,
                             manual=manual, recorded=recorded))
            if manual:  # a cron slot sets last_fire when it is claimed; a run-now firing here
                _mark_fired(s, name, fire_time)

    def settle_queued(self, name: str, job_id: str | None, status: str, reason: str) -> bool | None:
        """Give the schedule's queued firing the outcome of its submission; returns whether
        it was a manual one, or None when no firing is queued."""
        with self._session() as s:
            row = _queued(s, name)
            if row is None:
                return None
            row.job_id, row.status, row.reason = job_id, status, reason
            if row.manual:
                _mark_fired(s, name, row.fire_time)
            return row.manual

    def live_firings(self, name: str, statuses: Iterable[str]) -> list[dict[str, Any]]:
        """The schedule's firings with a job whose recorded state is one of ``statuses``."""
        with self._session() as s:
            q = select(CronFiring).where(CronFiring.schedule == name, CronFiring.status.in_(tuple(statuses)),
                                         CronFiring.job_id.is_not(None))
            return [as_dict(f) for f in s.scalars(q)]

    def set_firing_status(self, firing_id: int, old: str, new: str) -> bool:
        """Move a firing from ``old`` to ``new`` (compare-and-set: one ticker sees each change)."""
        with self._session() as s:
            return changed(s, update(CronFiring).where(CronFiring.id == firing_id, CronFiring.status == old)
                           .values(status=new)) == 1
