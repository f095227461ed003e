"""What a schedule's firing does in a party's home: pick the newest table version, submit
the job exactly like ``flow job submit``, and audit it.

The newest version of a table: in the conf, a Reader's table ``name`` may contain the
placeholder ``{latest}`` once, e.g. ``{"namespace": "bank", "name": "loans_{latest}"}``.
At each firing it is replaced by the table of that namespace whose name is the text
around the placeholder with one or more characters in its place (``loans_2024_05``,
``loans_v7``, not ``loans_``), choosing the one stored last (the table's ``created``
time, when it was uploaded or bound; equal times go to the name that sorts last). No
such table fails the firing with a reason naming the pattern. Placeholders are resolved
against this home's storage: in standalone mode that holds every party's tables; a
party server resolves those of the roles it plays (``roles``).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from backends.storage import StorageEngine, engine_from_conf
from flow.core.errors import ValidationError
from flow.core.settings import ServiceConf
from flow.dsl import JobPlan
from flow.dsl.loader import plan_from_dicts
from flow.governance.audit import AuditLog
from flow.governance.trail import home_log
from flow.schedules.loop import Scheduler
from flow.schedules.rules import Schedule, ScheduleError
from flow.store import Store

LATEST = "{latest}"
#: which roles' tables a firing resolves: all (None), these, or a function of the job's conf
Roles = Iterable[str] | Callable[[dict[str, Any]], Iterable[str]] | None


def _readers(raw_dsl: dict[str, Any]) -> set[str]:
    components = raw_dsl.get("components") if isinstance(raw_dsl, dict) else None
    return {n for n, c in (components or {}).items() if isinstance(c, dict) and c.get("module") == "Reader"}


def _table_refs(raw_conf: dict[str, Any], readers: set[str], roles: Iterable[str] | None
                ) -> list[tuple[str, dict[str, Any]]]:
    """(where, table dict) of every Reader table in the conf's component parameters."""
    params = raw_conf.get("component_parameters") or {}
    out: list[tuple[str, dict[str, Any]]] = []

    def scan(section: Any, where: str) -> None:
        for cpn, p in (section or {}).items() if isinstance(section, dict) else ():
            table = p.get("table") if cpn in readers and isinstance(p, dict) else None
            if isinstance(table, dict) and isinstance(table.get("name"), str):
                out.append((f"{where}.{cpn}.table.name", table))

    scan(params.get("common"), "component_parameters.common")
    wanted = None if roles is None else set(roles)
    for role, by_index in (params.get("role") or {}).items():
        if wanted is not None and role not in wanted:
            continue
        for key, section in (by_index or {}).items() if isinstance(by_index, dict) else ():
            scan(section, f"component_parameters.role.{role}.{key}")
    return out


def newest_table(storage: StorageEngine, namespace: str, pattern: str) -> str | None:
    """The name of the newest table of ``namespace`` matching ``pattern`` (see the module doc)."""
    head, _, tail = pattern.partition(LATEST)
    regex = re.compile(re.escape(head) + ".+" + re.escape(tail), re.DOTALL)
    found = [m for m in storage.list(namespace) if m.namespace == namespace and regex.fullmatch(m.name)]
    return max(found, key=lambda m: (m.created.timestamp(), m.name)).name if found else None


def resolve_latest(raw_conf: dict[str, Any], raw_dsl: dict[str, Any], storage: StorageEngine, *,
                   roles: Iterable[str] | None = None, label: str = "conf.json"
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of ``raw_conf`` with each ``{latest}`` resolved, and {where: table chosen}."""
    conf = copy.deepcopy(raw_conf)
    chosen: dict[str, str] = {}
    problems = []
    for where, table in _table_refs(conf, _readers(raw_dsl), roles):
        pattern = table["name"]
        if LATEST not in pattern:
            continue
        if pattern.count(LATEST) > 1:
            problems.append(f"{label}: {where}: '{pattern}' has {LATEST} more than once")
            continue
        namespace = str(table.get("namespace", ""))
        name = newest_table(storage, namespace, pattern)
        if name is None:
            problems.append(f"{label}: {where}: no table in namespace '{namespace}' matches '{pattern}' "
                            f"({LATEST} stands for one or more characters)")
            continue
        table["name"] = chosen[where] = name
    if problems:
        raise ValidationError(problems)
    return conf, chosen


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise ScheduleError(f"{path}: cannot read the schedule's {what}: {exc}") from None


class FiringSubmitter:
    """``submit(schedule) -> job id`` for a :class:`Scheduler` of a party's home: reads the
    schedule's files, resolves ``{latest}`` tables, then validates and starts the job as
    ``flow job submit`` does."""

    def __init__(self, conf: ServiceConf, store: Store, *, roles: Roles = None,
                 audit: AuditLog | None = None,
                 start: Callable[[ServiceConf, Store, JobPlan, str, str], dict[str, Any]] | None = None):
        from flow.runtime import job as jobs  # the runtime is only needed when a schedule fires

        self.conf, self.store, self.roles = conf, store, roles
        self.audit = audit if audit is not None else home_log(conf)
        self.start = start or jobs.submit_plan

    def __call__(self, sched: Schedule) -> str:
        raw_conf, raw_dsl = _read_json(sched.conf_path, "conf"), _read_json(sched.dsl_path, "dsl")
        chosen: dict[str, str] = {}
        if LATEST in json.dumps(raw_conf):
            storage = engine_from_conf(self.conf)
            roles = self.roles(raw_conf) if callable(self.roles) else self.roles
            raw_conf, chosen = resolve_latest(raw_conf, raw_dsl, storage, roles=roles, label=sched.conf_path)
        plan = plan_from_dicts(raw_conf, raw_dsl, conf_file=sched.conf_path, dsl_file=sched.dsl_path)
        info = self.start(self.conf, self.store, plan, sched.conf_path, sched.dsl_path)
        self.audit.append("schedule.fire", actor=f"schedule:{sched.name}", job=info["job_id"],
                          details={"schedule": sched.name, "cron": sched.cron, "tables": chosen})
        return str(info["job_id"])


def job_state(store: Store) -> Callable[[str], str]:
    """A job's state as ``flow job query`` shows it (a job whose supervisor is gone is failed)."""
    from flow.runtime import job as jobs

    return lambda job_id: str(jobs.job_detail(store, job_id)["status"])


def roles_of(party_id: str) -> Callable[[dict[str, Any]], list[str]]:
    """``roles`` for a party's server: the roles ``party_id`` plays in a job's conf (only
    its own tables are in its storage)."""
    def roles(raw_conf: dict[str, Any]) -> list[str]:
        table = raw_conf.get("role") if isinstance(raw_conf, dict) else None
        return [r for r, ids in (table or {}).items()
                if isinstance(ids, list) and str(party_id) in {str(i) for i in ids}]
    return roles


def party_scheduler(conf: ServiceConf, store: Store, *, clock: Callable[[], datetime] | None = None,
                    roles: Roles = None,
                    start: Callable[[ServiceConf, Store, JobPlan, str, str], dict[str, Any]] | None = None
                    ) -> Scheduler:
    """The scheduler of a party's home, as ``flow schedule`` and the flow server use it
    (``start``: how a firing starts its job; by default as ``flow job submit`` here)."""
    extra = {"clock": clock} if clock is not None else {}
    return Scheduler(store, FiringSubmitter(conf, store, roles=roles, start=start), job_state(store), **extra)


__all__ = ["LATEST", "FiringSubmitter", "job_state", "newest_table", "party_scheduler", "resolve_latest", "roles_of"]
