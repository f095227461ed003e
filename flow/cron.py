"""Scheduled retraining: the scheduler that fires cron schedules by submitting their job.
(What a schedule is, its slot arithmetic and the promotion rule live in :mod:`flow.schedules`.)

The scheduler is a pure core: it never sleeps or reads the wall clock itself. A server
calls :meth:`Scheduler.tick` now and then with an injected clock, which keeps every rule
below testable without waiting:

- Slots are computed with croniter in the schedule's own time zone, so "every day at 02:00
  Europe/Berlin" follows daylight saving time. A fixed-hour slot whose wall time happens
  twice when clocks fall back fires once; hourly-or-finer schedules follow real time.
- After downtime the missed slots fire once, at the latest one, not once per slot.
- ``overlap="skip"`` drops a slot while the schedule's previous job still runs (recorded as
  skipped); ``overlap="queue"`` keeps one pending firing and starts it when that job ends.
- A paused schedule fires nothing; resuming does not replay the slots it slept through.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from flow.errors import JobNotFound
from flow.registry import did_you_mean
from flow.schedules import (
    UTC,
    Firing,
    FiringRow,
    PromoteRule,
    Schedule,
    ScheduleError,
    ScheduleNotFound,
    ScheduleRow,
    aware,
    latest_slot,
    make_engine,
    should_promote,
)
from flow.store.models import FINAL_STATES

__all__ = ["Firing", "PromoteRule", "Schedule", "ScheduleError", "ScheduleNotFound", "Scheduler", "should_promote"]

log = logging.getLogger(__name__)
_LIVE = ("submitted", "waiting", "running")  # firing states whose job may still be running


# -- the scheduler ----------------------------------------------------------------------------


class Scheduler:
    """Keeps schedules in ``store_url`` and fires them through ``submit(schedule) -> job id``;
    ``job_status(job id) -> state`` tells whether a schedule's previous job still runs."""

    def __init__(self, store_url: str, submit: Callable[[Schedule], str], job_status: Callable[[str], str],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.engine = make_engine(store_url)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.submit, self.job_status, self._clock = submit, job_status, clock

    def now(self) -> datetime:
        return aware(self._clock())

    def _tx(self) -> Session:
        return self._session.begin()  # type: ignore[return-value]

    # -- managing schedules -------------------------------------------------------------
    def add(self, name: str, cron: str, conf_path: str, dsl_path: str, *, timezone: str = "UTC",
            overlap: str = "skip", promote_if: str | None = None, paused: bool = False) -> Schedule:
        sched = Schedule.build(name=name, cron=cron, timezone=timezone, conf_path=str(conf_path),
                               dsl_path=str(dsl_path), overlap=overlap, promote_if=promote_if, paused=paused)
        now = self.now()
        with self._tx() as s:
            if s.get(ScheduleRow, name) is not None:
                raise ScheduleError(f"schedule '{name}' already exists; remove it first or pick another name")
            s.add(ScheduleRow(name=name, cron=sched.cron, timezone=sched.timezone, conf_path=sched.conf_path,
                              dsl_path=sched.dsl_path, overlap=sched.overlap, paused=paused,
                              promote_if=sched.promote_if.text if sched.promote_if else "",
                              created=now, anchor=now))
        return self.get(name)

    def get(self, name: str, history: int = 50) -> Schedule:
        """The schedule with its latest ``history`` firings, oldest first."""
        with self._tx() as s:
            return self._load(s, self._row(s, name), history)

    def list(self, history: int = 0) -> list[Schedule]:
        with self._tx() as s:
            return [self._load(s, r, history) for r in s.scalars(select(ScheduleRow).order_by(ScheduleRow.name))]

    def history(self, name: str, limit: int | None = None) -> list[Firing]:
        return self.get(name, history=limit if limit is not None else 1 << 31).history

    def next_fire(self, name: str) -> datetime | None:
        """When the schedule fires next (None while paused)."""
        sched, anchor, _ = self._with_anchor(name)
        return None if sched.paused else sched.next_after(anchor)

    def pause(self, name: str) -> None:
        with self._tx() as s:
            row = self._row(s, name)
            row.paused, row.version = True, row.version + 1
            queued = self._queued(s, name)
            if queued is not None:
                queued.status, queued.reason = "skipped", "schedule paused"
            row.queued_fire = None

    def resume(self, name: str) -> None:
        """Unpause; the slots missed while paused are not replayed."""
        with self._tx() as s:
            row = self._row(s, name)
            if row.paused:
                row.paused, row.anchor, row.version = False, self.now(), row.version + 1

    def remove(self, name: str) -> None:
        with self._tx() as s:
            s.delete(self._row(s, name))
            s.execute(delete(FiringRow).where(FiringRow.schedule == name))

    def run_now(self, name: str, *, force: bool = False) -> str | None:
        """Submit the schedule's job now, outside its cron slots (also while paused).
        While its previous job runs: ``force`` starts another anyway; otherwise overlap
        ``queue`` queues it (returns None) and ``skip`` refuses."""
        now = self.now()
        running = self._running_job(name)
        with self._tx() as s:
            row = self._row(s, name)
            if running and not force:
                if row.overlap == "skip":
                    raise ScheduleError(f"schedule '{name}': job {running} is still running (overlap=skip); "
                                        "use force to start another")
                if row.queued_fire is None:
                    row.queued_fire, row.version = now, row.version + 1
                    s.add(FiringRow(schedule=name, fire_time=now, status="queued", manual=True,
                                    reason=f"waiting for job {running}", recorded=now))
                return None
            sched = self._load(s, row, 0)
        firing = self._fire(sched, now, manual=True)
        if firing.status == "failed":
            raise ScheduleError(f"schedule '{name}': submitting its job failed: {firing.reason}")
        return firing.job_id

    # -- firing --------------------------------------------------------------------------
    def tick(self) -> list[Firing]:
        """Handle every active schedule's due slot; returns the firings recorded."""
        now, out = self.now(), []
        with self._tx() as s:
            names = list(s.scalars(select(ScheduleRow.name).where(ScheduleRow.paused.is_(False))))
        for name in names:
            try:
                out += self._tick_one(name, now)
            except ScheduleNotFound:  # removed meanwhile
                continue
        return out

    def _tick_one(self, name: str, now: datetime) -> list[Firing]:
        out: list[Firing] = []
        running = self._running_job(name)
        sched, anchor, version = self._with_anchor(name)
        if sched.queued_fire is not None and running is None and self._claim(name, version, queued_fire=None):
            firing = self._fire(sched, sched.queued_fire, queued=True)
            out.append(firing)
            running = firing.job_id if firing.status == "submitted" else None
            sched, anchor, version = self._with_anchor(name)
        due = sched.next_after(anchor)
        if sched.paused or due > now:
            return out
        slot = latest_slot(sched.cron, sched.tz, now)
        reason = f"caught up after downtime (first missed slot {due.isoformat()})" if slot != due else ""
        if running is None:
            if self._claim(name, version, anchor=slot, last_fire=slot):
                out.append(self._fire(sched, slot, note=reason))
            return out
        if sched.overlap == "queue" and sched.queued_fire is None:
            if self._claim(name, version, anchor=slot, last_fire=slot, queued_fire=slot):
                out.append(self._record(name, slot, "queued", reason=f"waiting for job {running}"))
            return out
        why = f"job {running} is still running" if sched.queued_fire is None else "a firing is already queued"
        if self._claim(name, version, anchor=slot, last_fire=slot):
            out.append(self._record(name, slot, "skipped", reason=why))
        return out

    def _fire(self, sched: Schedule, fire_time: datetime, *, manual: bool = False, queued: bool = False,
              note: str = "") -> Firing:
        try:
            job_id, status, reason = str(self.submit(sched)), "submitted", note
        except Exception as exc:  # a bad submission must not stop the other schedules
            log.warning("schedule %s: submitting its job failed: %s", sched.name, exc)
            job_id, status, reason = None, "failed", str(exc) or type(exc).__name__
        if queued:
            with self._tx() as s:
                row = self._queued(s, sched.name)
                if row is not None:
                    row.job_id, row.status, row.reason = job_id, status, reason
                    return Firing(fire_time=fire_time, job_id=job_id, status=status, reason=reason, manual=row.manual)
        return self._record(sched.name, fire_time, status, job_id=job_id, reason=reason, manual=manual)

    def _record(self, name: str, fire_time: datetime, status: str, *, job_id: str | None = None,
                reason: str = "", manual: bool = False) -> Firing:
        with self._tx() as s:
            s.add(FiringRow(schedule=name, fire_time=fire_time, job_id=job_id, status=status, reason=reason,
                            manual=manual, recorded=self.now()))
        return Firing(fire_time=fire_time, job_id=job_id, status=status, reason=reason, manual=manual)

    def _claim(self, name: str, version: int, **values: Any) -> bool:
        """Take the schedule's current version (compare-and-set), so a slot is handled once
        even with several tickers on one database."""
        with self._tx() as s:
            res = s.execute(update(ScheduleRow).where(ScheduleRow.name == name, ScheduleRow.version == version)
                            .values(version=version + 1, **values))
            return res.rowcount == 1

    def _running_job(self, name: str) -> str | None:
        """The schedule's job that still runs, if any; firings of ended jobs take the job's state."""
        with self._tx() as s:
            live = list(s.scalars(select(FiringRow).where(FiringRow.schedule == name, FiringRow.status.in_(_LIVE),
                                                          FiringRow.job_id.is_not(None))))
        running = None
        for firing in live:
            try:
                state = self.job_status(firing.job_id)  # type: ignore[arg-type]
            except JobNotFound:
                state = "lost"
            except Exception as exc:  # cannot tell: assume it runs rather than overlap it
                log.warning("schedule %s: status of job %s unknown: %s", name, firing.job_id, exc)
                running = firing.job_id
                continue
            ended = state in FINAL_STATES or state == "lost"
            if not ended:
                running = firing.job_id
            if state != firing.status and (ended or state in _LIVE):
                with self._tx() as s:
                    s.execute(update(FiringRow).where(FiringRow.id == firing.id).values(status=state))
        return running

    # -- rows -----------------------------------------------------------------------------
    @staticmethod
    def _row(s: Session, name: str) -> ScheduleRow:
        row = s.get(ScheduleRow, name)
        if row is None:
            names = list(s.scalars(select(ScheduleRow.name)))
            raise ScheduleNotFound(f"no schedule '{name}'{did_you_mean(name, names)}")
        return row

    @staticmethod
    def _queued(s: Session, name: str) -> FiringRow | None:
        return s.scalars(select(FiringRow).where(FiringRow.schedule == name, FiringRow.status == "queued")
                         .order_by(FiringRow.id.desc()).limit(1)).first()

    def _with_anchor(self, name: str) -> tuple[Schedule, datetime, int]:
        """The schedule, the time its next slot follows, and its version for a claim."""
        with self._tx() as s:
            row = self._row(s, name)
            return self._load(s, row, 0), aware(row.anchor), row.version  # type: ignore[return-value]

    @staticmethod
    def _load(s: Session, row: ScheduleRow, history: int) -> Schedule:
        firings: list[FiringRow] = []
        if history > 0:
            firings = list(s.scalars(select(FiringRow).where(FiringRow.schedule == row.name)
                                     .order_by(FiringRow.id.desc()).limit(history)))[::-1]
        return Schedule(
            name=row.name, cron=row.cron, timezone=row.timezone, conf_path=row.conf_path, dsl_path=row.dsl_path,
            overlap=row.overlap, paused=row.paused, promote_if=row.promote_if or None, created=aware(row.created),
            last_fire=aware(row.last_fire), queued_fire=aware(row.queued_fire),
            history=[Firing(fire_time=aware(f.fire_time), job_id=f.job_id, status=f.status, reason=f.reason,
                            manual=f.manual) for f in firings],
        )  # fmt: skip
