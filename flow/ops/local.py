"""The operations behind the CLI's commands, run in this process.

Every identifier a caller passes (job id, role, party id, component, namespace, table,
schedule, model id and version) is checked against its kind (:mod:`flow.core.ids`) before
any path, query or queue name is built from it: ``@identifiers`` on each method. A bad
one is an :class:`flow.core.errors.InvalidIdentifier`: one line naming the field, exit
code 2 on the CLI, HTTP 400 from the server (whose routes call these methods).

The CLI calls these in standalone mode and the flow server calls the same ones for its
HTTP routes, so a command gives the same answer either way. Both this class and
``flow.ops.remote.RemoteOps`` (which sends them to a server) implement
:class:`flow.ops.api.Ops`. Nothing here imports FastAPI.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Generator, Iterator

from backends.computing import Session, create_session
from backends.storage import StorageEngine, engine_from_conf
from backends.storage.api import TableMeta
from backends.storage.csv_import import import_csv
from flow.core.errors import ConfigError, StoreError, TableExists
from flow.core.ids import check_id, identifiers
from flow.core.party import Party
from flow.core.paths import safe_join
from flow.core.settings import ServiceConf
from flow.dsl import JobPlan
from flow.dsl.dag import JobDAG
from flow.dsl.loader import plan_from_dicts
from flow.governance.trail import record as audit_record
from flow.models.format import model_view
from flow.models.ops import ModelOps
from flow.ops.api import Ops
from flow.ops.governance import GovernanceOps
from flow.ops.users import UserOps
from flow.runtime import job as jobs
from flow.runtime.logs import iter_follow, read_logs
from flow.runtime.preflight import check_tables
from flow.runtime.shares import remote_reports
from flow.store import FINAL_STATES, STATES, Store

#: what ``flow server start`` writes under the home while it serves: {pid, host, port, url, started}
SERVER_FILE = "server.json"
#: seconds between looks at a followed job's logs
LOG_POLL = 0.5


def table_view(meta) -> dict[str, Any]:
    return json.loads(meta.model_dump_json())


def read_server_file(home: Path) -> dict[str, Any] | None:
    """The running server of this home, or None (no file, or its process is gone)."""
    try:
        info = json.loads((home / SERVER_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


class LocalOps(GovernanceOps, ModelOps, UserOps, Ops):
    """Every CLI operation against this party's own conf, store and storage."""

    remote = False

    def __init__(self, conf: ServiceConf, store: Callable[[], Store] | Store):
        self.conf = conf
        self._store = store

    @property
    def store(self) -> Store:
        if not isinstance(self._store, Store):
            self._store = self._store()
        return self._store

    @store.setter
    def store(self, store: Store) -> None:
        self._store = store

    # engines ------------------------------------------------------------
    def storage(self, engine: str | None = None) -> StorageEngine:
        return engine_from_conf(self.conf, engine)

    def session(self, partitions: int) -> Session:
        """A computing session of this party's engine for moving a table in or out (one worker)."""
        return create_session(self.conf.default_engines.computing, partitions=partitions, workers=1)

    def partitions(self, storage: StorageEngine, meta: TableMeta) -> Generator[list[tuple[Any, Any]], None, None]:
        """A stored table's partitions in turn, read in a session that lives as long as the reading."""
        with self.session(meta.partitions) as session:
            yield from storage.read(meta, session).iter_partitions()

    # jobs ---------------------------------------------------------------
    def job_submit(self, plan: JobPlan, conf_path: str, dsl_path: str,
                   description: str | None = None) -> dict[str, Any]:
        unchecked = check_tables(self.conf, plan, conf_path)  # this party's tables, before anything exists
        info = jobs.submit_plan(self.conf, self.store, plan, conf_path, dsl_path, description=description)
        if unchecked:
            info = {**info, "unchecked_tables": unchecked}
        audit_record(self.conf, "job.submit", job=info["job_id"], conf=conf_path, dsl=dsl_path)
        return info

    @identifiers(job_id="job_id")
    def job_query(self, job_id: str) -> dict[str, Any]:
        """The job and its tasks; for a job proposed to other servers, their reported tasks too."""
        detail = jobs.job_detail(self.store, job_id, home=self.conf.home_path)
        reports = remote_reports(self.conf.home_path, job_id)
        if reports:
            detail["tasks"] += [t for r in reports for t in r.get("tasks") or []]
            detail["parties"] = {r["party_id"]: {"status": r["status"], "reason": r["reason"]} for r in reports}
        return detail

    @identifiers(role="role", party_id="party_id")
    def job_list(self, limit: int = 20, status: str | None = None, role: str | None = None,
                 party_id: str | None = None, initiator: str | None = None, since: str | None = None,
                 until: str | None = None, description: str | None = None) -> list[dict[str, Any]]:
        rows = self.store.jobs(limit, **job_filters(status, role, party_id, initiator, since, until, description))
        return [{"job_id": j["job_id"], "status": j["status"], "created": j["created"],
                 "initiator": f"{j['initiator_role']}:{j['initiator_party']}", "reason": j["reason"],
                 "description": j.get("description") or ""}
                for j in rows]

    @identifiers(job_id="job_id")
    def job_stop(self, job_id: str) -> dict[str, Any]:
        return jobs.stop_job(self.store, job_id)

    @identifiers(job_id="job_id", component="component")
    def job_rerun(self, job_id: str, component: str | None = None) -> dict[str, Any]:
        return jobs.rerun_job(self.conf, self.store, job_id, component)

    @identifiers(job_id="job_id", role="role", party_id="party_id", component="component")
    def job_logs(self, job_id: str, role: str | None = None, party_id: str | None = None,
                 component: str | None = None, follow: bool = False) -> Iterator[str]:
        """Log lines, each prefixed [role party component]; with ``follow`` until the job ends."""
        self.store.job(job_id)  # JobNotFound before anything is printed
        self._check_logs_here(job_id, role, party_id)
        home = self.conf.home_path
        if not follow:
            return read_logs(home, job_id, role, party_id, component)
        return iter_follow(home, job_id, role, party_id, component,
                           done=lambda: self.store.job(job_id)["status"] in FINAL_STATES, poll=LOG_POLL)

    def _check_logs_here(self, job_id: str, role: str | None, party_id: str | None) -> None:
        """A party this home did not run keeps its logs itself: say so (exit 2) rather than
        print nothing. A party runs here when the job records it (its party runs)."""
        if role is None and party_id is None:
            return
        ran = [(r["role"], str(r["party_id"])) for r in self.store.party_runs(job_id)]
        if any((role is None or r == role) and (party_id is None or p == party_id) for r, p in ran):
            return
        job = self.store.job(job_id)
        roles = job["conf"].get("role") if isinstance(job["conf"], dict) else None
        named = [(r, str(p)) for r, ids in (roles or {}).items() for p in (ids if isinstance(ids, list) else [ids])
                 if (role is None or r == role) and (party_id is None or str(p) == party_id)]
        here = ", ".join(f"{r} {p}" for r, p in ran) or "none"
        who = " ".join(x for x in (role, party_id) if x)
        if not named:
            raise LogsNotHere(f"job {job_id} has no party {who} (this home ran: {here})")
        keepers = ", ".join(sorted({p for _, p in named}))
        raise LogsNotHere(f"logs of {who} in job {job_id} are kept at party {keepers}, which ran it; "
                          f"this home ran {here} (ask party {keepers}'s flow server)")

    # data and tables ----------------------------------------------------
    @identifiers(namespace="namespace", name="table_name")
    def data_upload(self, file: Path, namespace: str, name: str, id_column: str = "id",
                    label_column: str | None = None, partitions: int | None = None,
                    engine: str | None = None, drop: bool = False, head: bool = True) -> dict[str, Any]:
        storage = self.storage(engine)
        if not drop and storage.exists(namespace, name):
            raise TableExists(f"table {namespace}/{name} exists; pass --drop to replace it")
        parts = partitions or self.conf.computing.partitions
        with self.session(parts) as session:
            meta = import_csv(file, storage, session, namespace, name,
                              id_column=id_column, label_column=label_column, partitions=parts, head=head)
        audit_record(self.conf, "data.upload", namespace=namespace, name=name, count=meta.count,
                     sha256=meta.sha256, file=str(file))
        return {"namespace": meta.namespace, "name": meta.name, "count": meta.count,
                "partitions": meta.partitions, "engine": meta.engine, "columns": meta.columns}

    @identifiers(namespace="namespace", name="table_name")
    def iter_csv(self, namespace: str, name: str, engine: str | None = None) -> Generator[str, None, None]:
        """A stored table as CSV text, header first, a partition at a time (a missing
        table raises here, before anything is written)."""
        storage = self.storage(engine)
        meta = storage.meta(namespace, name)
        audit_record(self.conf, "data.download", namespace=namespace, name=name, count=meta.count)
        return self._csv_chunks(storage, meta)

    def _csv_chunks(self, storage: StorageEngine, meta) -> Generator[str, None, None]:
        buf = io.StringIO()
        writer = csv.writer(buf)

        def flush() -> str:
            text = buf.getvalue()
            buf.seek(0)
            buf.truncate()
            return text

        writer.writerow([meta.id_column] + meta.columns)
        yield flush()
        for part in self.partitions(storage, meta):
            for key, row in part:
                writer.writerow([key, *row])
            yield flush()

    @identifiers(namespace="namespace", name="table_name")
    def data_download(self, namespace: str, name: str, output: Path, engine: str | None = None) -> dict[str, Any]:
        return {"file": str(output), "count": write_csv(self.iter_csv(namespace, name, engine), output)}

    @identifiers(namespace="namespace", name="table_name")
    def table_info(self, namespace: str, name: str, engine: str | None = None) -> dict[str, Any]:
        return table_view(self.storage(engine).meta(namespace, name))

    @identifiers(namespace="namespace", name="table_name")
    def table_bind(self, namespace: str, name: str, engine: str, address: dict[str, Any],
                   id_column: str = "id", label_column: str | None = None) -> dict[str, Any]:
        meta = self.storage(engine).bind(namespace, name, address, id_column=id_column, label_column=label_column)
        return table_view(meta)

    @identifiers(namespace="namespace")
    def table_list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [{"namespace": m.namespace, "name": m.name, "count": m.count, "engine": m.engine}
                for m in self.storage().list(namespace)]

    @identifiers(namespace="namespace", name="table_name")
    def table_delete(self, namespace: str, name: str) -> dict[str, Any]:
        storage = self.storage()
        storage.meta(namespace, name)
        storage.delete(namespace, name)
        return {"namespace": namespace, "name": name, "deleted": True}

    # tracking -----------------------------------------------------------
    def _check_task(self, job_id: str, role: str, party_id: str, component: str) -> None:
        if not any(t["component"] == component for t in self.store.tasks(job_id, role, party_id)):
            raise StoreError(f"job {job_id} has no task {component} on {role}:{party_id}")

    @identifiers(job_id="job_id", role="role", party_id="party_id", component="component")
    def tracking_metrics(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, dict]:
        self._check_task(job_id, role, party_id, component)
        out: dict[str, dict] = {}
        for m in self.store.metrics(job_id, role, party_id, component):
            out.setdefault(m["namespace"], {})[m["name"]] = m["value"]["value"]
        return out

    @identifiers(job_id="job_id", role="role", party_id="party_id", component="component")
    def tracking_output_data(self, job_id: str, role: str, party_id: str, component: str,
                             output_path: Path | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """A task's output tables: header and first ``limit`` rows; with ``output_path``
        each table is also written there as ``<component>_<index>.csv``."""
        self._check_task(job_id, role, party_id, component)
        result = []
        for ref in self.store.outputs(job_id, role, party_id, component, "data"):
            engine = ref["ref"].get("engine")  # the job's storage engine, not necessarily the default
            storage = self.storage(engine)
            meta = storage.meta(ref["ref"]["namespace"], ref["ref"]["name"])
            item = {"namespace": meta.namespace, "name": meta.name, "count": meta.count,
                    "header": [meta.id_column] + meta.columns, "index": ref["index"]}
            if output_path is not None:
                target = safe_join(output_path, f"{component}_{ref['index']}.csv", fields=("component",))
                write_csv(self.iter_csv(meta.namespace, meta.name, engine), target)
                item["file"] = str(target)
            rows: list[list] = []
            parts = self.partitions(storage, meta)
            for part in parts:
                rows.extend([k, *v] for k, v in part[: limit - len(rows)])
                if len(rows) >= limit:
                    break
            parts.close()  # the session ends here, not when the generator is collected
            item["rows"] = rows
            result.append(item)
        return result

    @identifiers(job_id="job_id", role="role", party_id="party_id", component="component")
    def tracking_output_model(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, Any]:
        self._check_task(job_id, role, party_id, component)
        refs = self.store.outputs(job_id, role, party_id, component, "model")
        if not refs:
            raise StoreError(f"{component} on {role}:{party_id} of job {job_id} has no model")
        model = model_view(Path(refs[0]["ref"]["path"]).read_text())
        return {"path": refs[0]["ref"]["path"], "model": model}

    def _job_plan(self, job_id: str) -> JobPlan:
        """The recorded job's conf and DSL, validated again into a plan."""
        job = self.store.job(job_id)
        return plan_from_dicts(job["conf"], job["dsl"], conf_file=f"job {job_id} conf", dsl_file=f"job {job_id} dsl")

    @identifiers(job_id="job_id")
    def component_list(self, job_id: str) -> dict[str, Any]:
        job = self.store.job(job_id)
        dag = JobDAG.from_dsl(job["dsl"])
        stage_of = {name: i for i, stage in enumerate(dag.stages(), start=1) for name in stage}
        modules = {name: (body or {}).get("module") for name, body in (job["dsl"].get("components") or {}).items()}
        return {"job_id": job_id,
                "components": [{"component_name": name, "module": modules.get(name), "stage": stage_of[name],
                                "upstreams": dag.upstream(name)} for name in dag.order()],
                "dsl": job["dsl"]}

    @identifiers(job_id="job_id", role="role", party_id="party_id", component="component")
    def component_parameters(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, Any]:
        plan = self._job_plan(job_id)
        params = plan.component_params(component, Party(role, party_id))
        return {"job_id": job_id, "role": role, "party_id": party_id, "component": component,
                "module": plan.module(component).module, "need_run": params is not None,
                "parameters": params.model_dump(mode="json") if params is not None else None}

    # server -------------------------------------------------------------
    def server_status(self) -> dict[str, Any]:
        """This party: its server (if one runs for this home), transport, store and engines."""
        import backends.computing
        import backends.storage
        import federation

        conf = self.conf
        fed = conf.default_engines.federation
        transport = {k: v for k, v in (getattr(conf.federation, fed, None) or {}).items()
                     if "password" not in k and "token" not in k and "secret" not in k}
        return {
            "server": read_server_file(conf.home_path),
            "mode": conf.mode,
            "home": str(conf.home_path),
            "service_conf": conf.source or None,
            "transport": {"engine": fed, **transport},
            "store": {"url": self.store.engine.url.render_as_string(hide_password=True),
                      "jobs": dict(Counter(j["status"] for j in self.store.jobs(1000)))},
            "engines": {
                "default": conf.default_engines.model_dump(),
                "computing": backends.computing.ENGINES.names(),
                "storage": backends.storage.ENGINES.names(),
                "federation": federation.ENGINES.names(),
            },
        }


class LogsNotHere(StoreError):
    """The logs asked for belong to a party that another home ran."""

    exit_code = 2


def job_filters(status: str | None, role: str | None, party_id: str | None, initiator: str | None,
                since: str | None, until: str | None, description: str | None) -> dict[str, Any]:
    """``flow job list``'s filters as :meth:`Store.jobs` takes them; a bad one is one line, exit 2."""
    if status is not None and status not in STATES:
        raise ConfigError(f"job status '{status}' is not one of {', '.join(STATES)}")
    who = None
    if initiator:
        r, _, pid = initiator.rpartition(":")
        check_id("party_id", pid, "initiator")
        if r:
            check_id("role", r, "initiator")
        who = (r or None, pid)
    return {"status": status, "role": role, "party_id": party_id, "initiator": who,
            "since": _when(since, "since"), "until": _when(until, "until"), "description": description}


def _when(value: str | None, field: str) -> datetime | None:
    """An ISO time (a date alone is its midnight; no zone: UTC)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{field} '{value}' is not an ISO time (e.g. 2026-11-26 or 2026-11-26T02:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def write_csv(chunks: Iterator[str], out: Path) -> int:
    """Write CSV text chunks (header first) to ``out``; returns the number of data rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        for chunk in chunks:
            fh.write(chunk)
    with out.open(newline="") as fh:
        return max(0, sum(1 for _ in csv.reader(fh)) - 1)
