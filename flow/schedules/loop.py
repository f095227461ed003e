"""Scheduled retraining: the scheduler that fires cron schedules by submitting their job.
(What a schedule is, its slot arithmetic and the promotion rule live in :mod:`flow.schedules.rules`.)

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
- ``promote_if``: once a fired job succeeds, its evaluation metrics (``job_metrics``; by
  default the guest's Evaluation metrics in the store) are compared with those of the
  schedule's deployed job, and the new job becomes the deployed one only if it is at least
  as good. The decision is kept on the firing (``promotion``).

Schedules live in the job store (``cron_schedules``, ``cron_firings``), whose
``store.schedules`` (:class:`flow.store.schedules.ScheduleRepository`) holds every query and
transaction; the scheduler keeps the rules and the clock. :func:`serve` is the loop a
foreground ``flow schedule serve`` or a flow server runs.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Callable

from flow.core.errors import FedweaveError, JobNotFound
from flow.core.registry import did_you_mean
from flow.schedules.rules import (
    UTC,
    Firing,
    PromoteRule,
    Schedule,
    ScheduleError,
    ScheduleNotFound,
    aware,
    evaluation_sources,
    judge_promotion,
    latest_slot,
    should_promote,
)
from flow.store import Store
from flow.store.models import FINAL_STATES
from flow.store.schedules import Deployment

__all__ = ["Firing", "PromoteRule", "Schedule", "ScheduleError", "ScheduleNotFound", "Scheduler",
           "evaluation_metrics", "serve", "should_promote"]

log = logging.getLogger(__name__)
_LIVE = ("submitted", "waiting", "running")  # firing states whose job may still be running
#: the builtin's name is taken inside Scheduler by its ``list`` method
_Firings = list[Firing]


# -- the scheduler ----------------------------------------------------------------------------


def evaluation_metrics(store: Store, job_id: str) -> dict[str, Any]:
    """The metrics ``promote_if`` compares, numbers only, from the guest's Evaluation
    components: by ``component.name`` for each evaluated component (``hetero_lr_0.auc``; an
    Evaluation with several inputs keeps each input's metrics under its upstream component's
    name, as FATE does) and for each Evaluation component (``evaluation_0.auc``, or
    ``evaluation_0.hetero_lr_0.auc`` when it has several inputs); by bare name (``auc``) only
    when exactly one component is evaluated, so a bare rule never picks one of several."""
    tasks = [t for t in store.tasks(job_id, "guest") if t["module"] == "Evaluation" and t["status"] == "success"]
    sources = evaluation_sources(store.job(job_id).get("dsl")) if tasks else {}
    nested: dict[str, Any] = {}
    evaluated: list[dict[str, Any]] = []
    for task in tasks:
        cpn = task["component"]
        by_namespace: dict[str, dict[str, Any]] = {}
        for m in store.metrics(job_id, "guest", task["party_id"], cpn):
            value = m["value"]["value"]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                by_namespace.setdefault(m["namespace"], {})[m["name"]] = value
        if "evaluation" in by_namespace or not by_namespace:  # one input: namespace "evaluation"
            values = by_namespace.get("evaluation", {})
            nested.setdefault(cpn, values)
            ups = sources.get(cpn, [])
            if len(ups) == 1:
                nested.setdefault(ups[0], values)
            evaluated.append(values)
        else:  # several inputs: one namespace per upstream component
            nested.setdefault(cpn, by_namespace)
            for upstream, values in by_namespace.items():
                nested.setdefault(upstream, values)
                evaluated.append(values)
    flat = dict(evaluated[0]) if len(evaluated) == 1 else {}
    return {**nested, **flat}


class Scheduler:
    """Keeps schedules in a job store and fires them through ``submit(schedule) -> job id``;
    ``job_status(job id) -> state`` tells whether a schedule's previous job still runs
    (default: the job's state in the store) and ``job_metrics(job id)`` what ``promote_if``
    compares (default: :func:`evaluation_metrics`)."""

    def __init__(self, store: Store | str, submit: Callable[[Schedule], str],
                 job_status: Callable[[str], str] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), *,
                 job_metrics: Callable[[str], dict[str, Any]] | None = None):
        self._own_store = isinstance(store, str)
        self.store = Store(store) if isinstance(store, str) else store
        self.submit, self._clock = submit, clock
        self.job_status = job_status or (lambda job_id: self.store.job(job_id)["status"])
        self.job_metrics = job_metrics or (lambda job_id: evaluation_metrics(self.store, job_id))

    def close(self) -> None:
        if self._own_store:
            self.store.close()

    def now(self) -> datetime:
        return aware(self._clock())  # type: ignore[return-value]

    # -- managing schedules -------------------------------------------------------------
    def add(self, name: str, cron: str, conf_path: str, dsl_path: str, *, timezone: str = "UTC",
            overlap: str = "skip", promote_if: str | None = None, paused: bool = False) -> Schedule:
        sched = Schedule.build(name=name, cron=cron, timezone=timezone, conf_path=str(conf_path),
                               dsl_path=str(dsl_path), overlap=overlap, promote_if=promote_if, paused=paused)
        now = self.now()
        if not self.store.schedules.add(name=name, cron=sched.cron, timezone=sched.timezone,
                                        conf_path=sched.conf_path, dsl_path=sched.dsl_path, overlap=sched.overlap,
                                        paused=paused, promote_if=sched.promote_if.text if sched.promote_if else "",
                                        created=now, anchor=now):
            raise ScheduleError(f"schedule '{name}' already exists; remove it first or pick another name")
        return self.get(name)

    def get(self, name: str, history: int = 50) -> Schedule:
        """The schedule with its latest ``history`` firings, oldest first."""
        return _schedule(self._row(name, history))

    def list(self, history: int = 0) -> list[Schedule]:
        return [_schedule(r) for r in self.store.schedules.all(history)]

    def history(self, name: str, limit: int | None = None) -> _Firings:
        return self.get(name, history=limit if limit is not None else 1 << 31).history

    def next_fire(self, name: str) -> datetime | None:
        """When the schedule fires next (None while paused)."""
        sched, anchor, _ = self._with_anchor(name)
        return None if sched.paused else sched.next_after(anchor)

    def pause(self, name: str) -> None:
        if not self.store.schedules.pause(name, reason="schedule paused"):
            raise self._not_found(name)

    def resume(self, name: str) -> None:
        """Unpause; the slots missed while paused are not replayed."""
        if not self.store.schedules.resume(name, anchor=self.now()):
            raise self._not_found(name)

    def remove(self, name: str) -> None:
        if not self.store.schedules.remove(name):
            raise self._not_found(name)

    def run_now(self, name: str, *, force: bool = False) -> str | None:
        """Submit the schedule's job now, outside its cron slots (also while paused).
        While its previous job runs: ``force`` starts another anyway; otherwise overlap
        ``queue`` queues it (returns None) and ``skip`` refuses."""
        now = self.now()
        running = self._running_job(name)
        row = self._row(name)
        if running and not force:
            if row["overlap"] == "skip":
                raise ScheduleError(f"schedule '{name}': job {running} is still running (overlap=skip); "
                                    "use force to start another")
            if self.store.schedules.queue_manual(name, now, reason=f"waiting for job {running}") is None:
                raise self._not_found(name)
            return None
        firing = self._fire(_schedule(row), now, manual=True)
        if firing.status == "failed":
            raise ScheduleError(f"schedule '{name}': submitting its job failed: {firing.reason}")
        return firing.job_id

    def refresh(self, name: str | None = None) -> None:
        """Bring firings' states up to their jobs' (and apply promote_if to jobs that
        succeeded) without firing anything: what a listing does before it shows them."""
        for one in [name] if name else self.store.schedules.names():
            self._row(one)
            self._running_job(one)

    # -- firing --------------------------------------------------------------------------
    def tick(self) -> _Firings:
        """Handle every active schedule's due slot; returns the firings recorded."""
        now, out = self.now(), _Firings()
        for name in self.store.schedules.names(active_only=True):
            try:
                out += self._tick_one(name, now)
            except ScheduleNotFound:  # removed meanwhile
                continue
        return out

    def _tick_one(self, name: str, now: datetime) -> _Firings:
        out: _Firings = []
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
            was_manual = self.store.schedules.settle_queued(sched.name, job_id, status, reason)
            if was_manual is not None:
                return Firing(schedule=sched.name, fire_time=fire_time, job_id=job_id, status=status,
                              reason=reason, manual=was_manual)
        return self._record(sched.name, fire_time, status, job_id=job_id, reason=reason, manual=manual)

    def _record(self, name: str, fire_time: datetime, status: str, *, job_id: str | None = None,
                reason: str = "", manual: bool = False) -> Firing:
        self.store.schedules.record_firing(name, fire_time, status, job_id=job_id, reason=reason, manual=manual,
                                           recorded=self.now())
        return Firing(schedule=name, fire_time=fire_time, job_id=job_id, status=status, reason=reason,
                      manual=manual)

    def _claim(self, name: str, version: int, **values: datetime | None) -> bool:
        """Take the schedule's current version, so a slot is handled once even with several
        tickers on one database (the repository's compare-and-set)."""
        return self.store.schedules.claim(name, version, **values)

    def _running_job(self, name: str) -> str | None:
        """The schedule's job that still runs, if any; firings of ended jobs take the job's state."""
        running = None
        for firing in self.store.schedules.live_firings(name, _LIVE):
            job_id = firing["job_id"]
            try:
                state = self.job_status(job_id)
            except JobNotFound:
                state = "lost"
            except Exception as exc:  # cannot tell: assume it runs rather than overlap it
                log.warning("schedule %s: status of job %s unknown: %s", name, job_id, exc)
                running = job_id
                continue
            ended = state in FINAL_STATES or state == "lost"
            if not ended:
                running = job_id
            if state != firing["status"] and (ended or state in _LIVE):
                # compare-and-set: one ticker sees each change, so one promotes
                changed = self.store.schedules.set_firing_status(firing["id"], firing["status"], state)
                if changed and state == "success":
                    self._promote(name, firing["id"], job_id)
        return running

    def _promote(self, name: str, firing_id: int, job_id: str) -> None:
        """Apply the schedule's promote_if to a job that just succeeded."""
        for _ in range(5):  # retried only when another promotion changed the deployed job meanwhile
            row = self.store.schedules.get(name)
            if row is None or not row["promote_if"]:
                return
            deployed, current = row["deployed_job"], row["deployed_metrics"]
            try:
                new = self.job_metrics(job_id)
                better, why = judge_promotion(row["promote_if"], new, current)
            except FedweaveError as exc:
                better, why = False, str(exc)
            note = f"deployed ({why})" if better else f"kept {deployed or 'no model'} ({why})"
            deploy = Deployment(job_id, new, self.now(), replacing=deployed) if better else None
            if not self.store.schedules.promote(name, firing_id, note, deploy):
                continue
            log.info("schedule %s: job %s %s", name, job_id, note)
            return

    # -- rows -----------------------------------------------------------------------------
    def _row(self, name: str, history: int = 0) -> dict[str, Any]:
        """The schedule's stored row (with ``history`` firings); ScheduleNotFound if none."""
        row = self.store.schedules.get(name, history)
        if row is None:
            raise self._not_found(name)
        return row

    def _not_found(self, name: str) -> ScheduleNotFound:
        return ScheduleNotFound(f"no schedule '{name}'{did_you_mean(name, self.store.schedules.names())}")

    def _with_anchor(self, name: str) -> tuple[Schedule, datetime, int]:
        """The schedule, the time its next slot follows, and its version for a claim."""
        row = self._row(name)
        return _schedule(row), row["anchor"], row["version"]


def _schedule(row: dict[str, Any]) -> Schedule:
    """The model of a stored schedule row (:meth:`ScheduleRepository.get`), firings included."""
    return Schedule(
        name=row["name"], cron=row["cron"], timezone=row["timezone"], conf_path=row["conf_path"],
        dsl_path=row["dsl_path"], overlap=row["overlap"], paused=row["paused"],
        promote_if=row["promote_if"] or None, created=row["created"], last_fire=row["last_fire"],
        queued_fire=row["queued_fire"], deployed_job=row["deployed_job"],
        deployed_metrics=row["deployed_metrics"], deployed_at=row["deployed_at"],
        history=[Firing(schedule=row["name"], fire_time=f["fire_time"], job_id=f["job_id"], status=f["status"],
                        reason=f["reason"], manual=f["manual"], promotion=f["promotion"]) for f in row["history"]],
    )  # fmt: skip


# -- the loop ---------------------------------------------------------------------------------


def serve(scheduler: Scheduler, *, interval: float = 10.0, should_stop: Callable[[], bool] = lambda: False,
          sleep: Callable[[float], None] = time.sleep,
          on_firing: Callable[[Firing], None] | None = None) -> int:
    """Tick until ``should_stop()``; returns the number of ticks. A tick that fails (the
    database is briefly away) is logged and retried at the next one, so the loop outlives it.
    A server runs this in a thread; ``flow schedule serve`` in the foreground."""
    ticks = 0
    while not should_stop():
        try:
            for firing in scheduler.tick():
                if on_firing is not None:
                    on_firing(firing)
        except Exception:  # noqa: BLE001 - the loop must survive one bad tick
            log.exception("schedule tick failed; retrying in %ss", interval)
        ticks += 1
        if should_stop():
            break
        sleep(interval)
    return ticks
