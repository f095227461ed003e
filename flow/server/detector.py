"""The job detector: no job stays ``running`` (or ``waiting``) forever.

A flow server sweeps its store when it starts and every ``server.detect_interval``
seconds. It ends a job whose processes are gone (its supervisor, or for jobs started
party by party with ``flow job run``, every party runtime) as ``failed``, and a job
past its timeout as ``timeout``, each with a reason naming what happened; the job's
unfinished tasks and party runs get the same state and reason.

Every end is one conditional UPDATE (still unfinished, same supervisor and attempt),
so a supervisor that records the job's real outcome at the same moment always wins.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update

from flow.core.settings import ServiceConf
from flow.runtime.job import process_alive, reap_supervisors, supervisor_gone
from flow.server.worker import Worker
from flow.store import FINAL_STATES, Store
from flow.store.models import Job, PartyRun, Task, utcnow

log = logging.getLogger("fedweave.server.detector")

#: a job's supervisor ends it at its timeout and needs a few seconds to stop the parties
TIMEOUT_GRACE_S = 30.0
#: a job recorded but never started (its supervisor never came up) is failed after this
START_GRACE_S = 120.0
DEFAULT_TIMEOUT_S = 3600.0


def _job_timeout(job: dict[str, Any]) -> float:
    common = ((job.get("conf") or {}).get("job_parameters") or {}).get("common") or {}
    try:
        return float(common.get("timeout") or DEFAULT_TIMEOUT_S)
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT_S


def _kill(pid: int | None, job_id: str) -> None:
    if process_alive(pid, job_id):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class JobDetector(Worker):
    """Ends jobs whose processes are gone or whose timeout passed; runs in a thread."""

    def __init__(self, conf: ServiceConf, store: Store, interval: float):
        super().__init__(interval)
        self.conf, self.store = conf, store
        self.sweeps = 0
        self.ended: list[dict[str, str]] = []

    # the verdict --------------------------------------------------------
    def verdict(self, job: dict[str, Any], now: datetime) -> tuple[str, str] | None:
        """(status, reason) to end ``job`` with, or None while it is fine."""
        job_id = job["job_id"]
        started = self._attempt_start(job)
        timeout = _job_timeout(job)
        if started is not None and now - started > timedelta(seconds=timeout + TIMEOUT_GRACE_S):
            return "timeout", f"job exceeded its timeout of {timeout:g}s (ended by the job detector)"
        if job["supervisor_pid"]:
            if not process_alive(job["supervisor_pid"], job_id):  # how it ended, where it can be told
                return "failed", f"{supervisor_gone(self.conf.home_path, job)} (found by the job detector)"
            return None
        runs = self.store.party_runs(job_id)
        live = [r for r in runs if r["status"] == "running" and process_alive(r["pid"], job_id)]
        dead = [r for r in runs if r["status"] == "running" and not process_alive(r["pid"], job_id)]
        for run in dead:
            self._end_party(job_id, run, f"{run['role']}:{run['party_id']} runtime (pid {run['pid']}) is gone "
                                         "(found by the job detector)")
        if dead and not live:
            return "failed", "; ".join(f"{r['role']}:{r['party_id']} runtime (pid {r['pid']}) is gone"
                                       for r in dead) + " (found by the job detector)"
        if job["status"] == "waiting" and not live and now - job["created"] > timedelta(seconds=START_GRACE_S):
            return "failed", f"job never started in {START_GRACE_S:g}s (found by the job detector)"
        return None

    def _attempt_start(self, job: dict[str, Any]) -> datetime | None:
        """When the job's current attempt began (a rerun keeps the job's first start)."""
        if not job["attempt"]:
            return job["started"]
        starts = [t["started"] for t in self.store.tasks(job["job_id"])
                  if t["attempt"] == job["attempt"] and t["started"] is not None]
        return min(starts) if starts else None

    # ending -------------------------------------------------------------
    def _end_party(self, job_id: str, run: dict[str, Any], reason: str) -> None:
        with self.store.session() as s:
            s.execute(update(PartyRun).where(PartyRun.id == run["id"], PartyRun.status == "running")
                      .values(status="failed", reason=reason))
            s.execute(update(Task).where(Task.job_id == job_id, Task.role == run["role"],
                                         Task.party_id == run["party_id"], Task.status == "running")
                      .values(status="failed", reason=reason, ended=utcnow()))

    def end(self, job: dict[str, Any], status: str, reason: str) -> bool:
        """End the job if it is still the run we judged; kill what is left of it."""
        job_id = job["job_id"]
        with self.store.session() as s:
            won = s.execute(update(Job).where(
                Job.job_id == job_id, Job.status.not_in(FINAL_STATES), Job.attempt == job["attempt"],
                (Job.supervisor_pid.is_(None) if job["supervisor_pid"] is None
                 else Job.supervisor_pid == job["supervisor_pid"]),
            ).values(status=status, reason=reason, ended=utcnow())).rowcount
        if not won:
            return False
        _kill(job["supervisor_pid"], job_id)
        for run in self.store.party_runs(job_id):
            if run["status"] in ("running", "waiting"):
                _kill(run["pid"], job_id)
                self.store.update_party_run(job_id, run["role"], run["party_id"], status=status, reason=reason)
        self.store.update_tasks(job_id, ("running", "waiting"), status=status, reason=reason)
        self.ended.append({"job_id": job_id, "status": status, "reason": reason})
        log.warning("job %s ended as %s: %s", job_id, status, reason)
        return True

    def sweep(self, now: datetime | None = None) -> list[str]:
        """One pass over the unfinished jobs; returns the ids it ended."""
        now = now or datetime.now(timezone.utc)
        reap_supervisors()  # the server's own children that ended: no zombies between submissions
        with self.store.session() as s:
            ids = list(s.scalars(select(Job.job_id).where(Job.status.not_in(FINAL_STATES))))
        ended = []
        for job_id in ids:
            job = self.store.job(job_id)
            if job["status"] in FINAL_STATES:
                continue
            found = self.verdict(job, now)
            if found and self.end(job, *found):
                ended.append(job_id)
        self.sweeps += 1
        return ended

    # the thread ---------------------------------------------------------
    name, join_timeout = "job-detector", 5.0

    def step(self) -> bool:
        self.sweep()
        return False

    def view(self) -> dict[str, Any]:
        return {"interval_s": self.interval, "sweeps": self.sweeps, "ended": self.ended[-20:],
                "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
