"""Schedules, privileges and the audit log as operations: what ``flow schedule``, ``flow
privilege`` and ``flow audit`` run in standalone mode, and what a flow server runs for
the same requests. Every method returns the JSON-able data the CLI prints.

A schedule keeps its own copy of the job's files (``<home>/schedules/<name>/``), so it
fires the job as added even when the originals move, and a client can add one by sending
the files' JSON to a server.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Literal

from flow.core.errors import FedweaveError
from flow.core.ids import check_id, identifiers
from flow.core.paths import safe_join
from flow.core.settings import ServiceConf
from flow.dsl.loader import plan_from_dicts
from flow.governance import privileges
from flow.governance.audit import AuditLog
from flow.governance.trail import home_log, home_logs, user_actor
from flow.schedules.loop import Scheduler
from flow.schedules.retrain import party_scheduler
from flow.schedules.rules import Schedule, ScheduleError, check_promote_target, evaluation_sources
from flow.store import Store


def _schedule_view(s: Schedule, sched: Scheduler) -> dict[str, Any]:
    out = s.model_dump(exclude={"history", "promote_if"})
    out["promote_if"] = s.promote_if.text if s.promote_if else None
    out["next_fire"] = sched.next_fire(s.name)
    if s.history:
        last = s.history[-1]
        out["last_job"] = {"job_id": last.job_id, "status": last.status, "fire_time": last.fire_time}
    return out


class GovernanceOps:
    """Mixed into an operations class that has ``conf`` (ServiceConf) and ``store`` (Store)."""

    conf: ServiceConf
    store: Store
    #: how this home's scheduler is built; a flow server sets it so firings go through its control plane
    make_scheduler: Callable[[], Scheduler] | None = None

    # schedules -----------------------------------------------------------
    def scheduler(self) -> Scheduler:
        return self.make_scheduler() if self.make_scheduler is not None else party_scheduler(self.conf, self.store)

    @identifiers(name="schedule")
    def schedule_folder(self, name: str) -> Path:
        return safe_join(self.conf.home_path / "schedules", name, fields=("name",))

    @identifiers(name="schedule")
    def schedule_add(self, cron: str, conf: Any, dsl: Any, *, name: str, timezone: str = "UTC",
                     overlap: str = "skip", promote_if: str | None = None, paused: bool = False,
                     conf_file: str = "conf.json", dsl_file: str = "dsl.json") -> dict[str, Any]:
        """Validate the job (``conf``/``dsl`` are the files' JSON; ``*_file`` name them in
        messages) and the schedule, keep a copy of both files, and add it."""
        plan_from_dicts(conf, dsl, conf_file=conf_file, dsl_file=dsl_file)
        folder = self.schedule_folder(name)
        fields = dict(timezone=timezone, overlap=overlap, promote_if=promote_if, paused=paused)
        checked = Schedule.build(name=name, cron=cron, conf_path=str(folder / "conf.json"),
                                 dsl_path=str(folder / "dsl.json"), **fields)  # every field checked before any write
        if checked.promote_if is not None:  # which evaluated component's metric it compares
            check_promote_target(checked.promote_if, evaluation_sources(dsl))
        sched = self.scheduler()
        if any(s.name == name for s in sched.list()):
            raise ScheduleError(f"schedule '{name}' already exists; remove it first or pick another name")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "conf.json").write_text(json.dumps(conf, indent=2))
        (folder / "dsl.json").write_text(json.dumps(dsl, indent=2))
        try:
            added = sched.add(name, cron, str(folder / "conf.json"), str(folder / "dsl.json"), timezone=timezone,
                              overlap=overlap, promote_if=promote_if, paused=paused)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return _schedule_view(added, sched)

    def schedule_list(self) -> list[dict[str, Any]]:
        """Every schedule with its next firing, its last job and its deployed job."""
        sched = self.scheduler()
        sched.refresh()
        return [_schedule_view(s, sched) for s in sched.list(history=1)]

    @identifiers(name="schedule")
    def schedule_pause(self, name: str) -> dict[str, Any]:
        self.scheduler().pause(name)
        return {"name": name, "paused": True}

    @identifiers(name="schedule")
    def schedule_resume(self, name: str) -> dict[str, Any]:
        sched = self.scheduler()
        sched.resume(name)
        return {"name": name, "paused": False, "next_fire": sched.next_fire(name)}

    @identifiers(name="schedule")
    def schedule_remove(self, name: str) -> dict[str, Any]:
        self.scheduler().remove(name)
        shutil.rmtree(self.schedule_folder(name), ignore_errors=True)
        return {"name": name, "removed": True}

    @identifiers(name="schedule")
    def schedule_run_now(self, name: str, force: bool = False) -> dict[str, Any]:
        job_id = self.scheduler().run_now(name, force=force)
        return {"name": name, "job_id": job_id, "queued": job_id is None}

    @identifiers(name="schedule")
    def schedule_history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        sched = self.scheduler()
        sched.refresh(name)
        return [f.model_dump() for f in sched.history(name, limit)]

    # privileges ----------------------------------------------------------
    def audit_log(self) -> AuditLog:
        """The log of this home's own actions (uploads, submissions, grants, schedules)."""
        return home_log(self.conf)

    def privilege_grant(self, party: str, namespace: str, name: str) -> dict[str, Any]:
        return self.privilege_change("grant", party, namespace, name)

    def privilege_revoke(self, party: str, namespace: str, name: str) -> dict[str, Any]:
        return self.privilege_change("revoke", party, namespace, name)

    def privilege_change(self, action: Literal["grant", "revoke"], party: str, namespace: str, name: str,
                         actor: str | None = None) -> dict[str, Any]:
        """A grant or revoke on behalf of ``actor`` (default: this machine's user): the flow
        server names its client here, which the operations of :class:`flow.ops.api.Ops` leave
        out because a client must not choose who the audit log says it is."""
        privileges.check_grant(party, namespace, name)  # before the audit log or the store is touched
        change = privileges.grant if action == "grant" else privileges.revoke
        return change(self.store, party, namespace, name, audit=self.audit_log(), actor=actor or user_actor())

    @identifiers(namespace="namespace")
    def privilege_list(self, party: str | None = None, namespace: str | None = None,
                       name: str | None = None) -> list[dict[str, Any]]:
        if name is not None and name != privileges.ANY_TABLE:
            check_id("table_name", name, "name")
        party_id = privileges.parse_party(party)[1] if party else None
        return privileges.list_privileges(self.store, party_id=party_id, namespace=namespace, name=name)

    # audit ---------------------------------------------------------------
    def _audit_logs(self, party: str | None) -> list[AuditLog]:
        logs = home_logs(self.conf.home_path)
        chosen = logs if party is None else [log for log in logs if log.party_id == party]
        if party is not None and not chosen:
            have = ", ".join(log.party_id for log in logs) or "none"
            raise FedweaveError(f"no audit log of party '{party}' in {self.conf.home_path / 'audit'} (logs: {have})")
        return chosen

    @identifiers(job="job_id", party="party_id")
    def audit_list(self, job: str | None = None, since: str | datetime | None = None, kind: str | None = None,
                   party: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries oldest first, merged across the home's logs by time; ``limit``: the newest N."""
        try:
            entries = [e for log in self._audit_logs(party) for e in log.entries(job=job, since=since, kind=kind)]
        except ValueError as exc:
            raise FedweaveError(f"since '{since}' is not an ISO time ({exc})") from None
        entries.sort(key=lambda e: (e["time"], e["party"], e["seq"]))
        return entries[-limit:] if limit else entries

    @identifiers(job="job_id", party="party_id")
    def audit_summary(self, job: str | None = None, party: str | None = None) -> list[dict[str, Any]]:
        """Objects and bytes per (party, direction, peer, variable) from the federation entries,
        most bytes first; what ``flow audit list`` leaves out unless asked."""
        totals: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for log in self._audit_logs(party):
            for e in log.entries(job=job, kind="federation"):
                d = e.get("details") or {}
                direction = str(e["kind"]).rpartition(".")[2]
                key = (str(e.get("party")), direction, str(d.get("peer")), str(d.get("name")))
                row = totals.setdefault(key, {"party": key[0], "direction": direction, "peer": key[2],
                                              "variable": key[3], "objects": 0, "bytes": 0, "jobs": set()})
                row["objects"] += 1
                row["bytes"] += int(d.get("bytes") or 0)
                row["jobs"].add(e.get("job"))
        out = [{**r, "jobs": len(r["jobs"])} for r in totals.values()]
        return sorted(out, key=lambda r: (-r["bytes"], r["party"], r["direction"], r["peer"], r["variable"]))

    @identifiers(party="party_id")
    def audit_verify(self, party: str | None = None) -> list[dict[str, Any]]:
        """Each log's chain checked: ``ok``, entries good, and the first bad entry with why."""
        out = []
        for log in self._audit_logs(party):
            r = log.verify()
            out.append({"party": log.party_id, "file": str(log.path), "ok": r.ok, "entries": r.count,
                        "first_bad_seq": r.first_bad_seq, "reason": r.reason})
        return out


class StandaloneGovernance(GovernanceOps):
    """The operations on this home's own conf and store."""

    def __init__(self, conf: ServiceConf, store: Store):
        self.conf, self.store = conf, store
