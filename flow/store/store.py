"""The job store: what every party runtime and the CLI read and write about jobs.

SQLite under ``$FLOW_HOME`` by default (WAL mode, so several party processes write
at once), any SQLAlchemy URL otherwise. Methods return plain dicts so callers never
hold ORM objects across sessions or processes.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from flow.errors import JobNotFound

from .models import FINAL_STATES, Base, Job, Metric, Output, PartyRun, Task, utcnow


def _row(obj) -> dict[str, Any]:
    return {c.name: getattr(obj, c.name) for c in obj.__table__.columns}


class Store:
    def __init__(self, url: str):
        self.url = url
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(url, connect_args={"timeout": 60} if sqlite else {}, future=True)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def for_home(cls, home: Path) -> "Store":
        home.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{home / 'flow.sqlite'}")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session.begin() as s:
            yield s

    # jobs ---------------------------------------------------------------
    def create_job(self, job_id: str, *, conf: dict, dsl: dict, initiator: tuple[str, str],
                   parties: list[tuple[str, str]], components: dict[tuple[str, str], list[tuple[str, str]]],
                   conf_path: str = "", dsl_path: str = "") -> None:
        """Record a job, one party run per party and one waiting task per (component, party)."""
        with self.session() as s:
            s.add(Job(job_id=job_id, conf=conf, dsl=dsl, initiator_role=initiator[0],
                      initiator_party=initiator[1], conf_path=conf_path, dsl_path=dsl_path))
            for role, pid in parties:
                s.add(PartyRun(job_id=job_id, role=role, party_id=pid))
                for name, module in components.get((role, pid), []):
                    s.add(Task(job_id=job_id, component=name, module=module, role=role, party_id=pid))

    def job(self, job_id: str) -> dict[str, Any]:
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise JobNotFound(f"no job '{job_id}' in {self.url}")
            return _row(job)

    def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = s.scalars(select(Job).order_by(Job.created.desc()).limit(limit))
            return [_row(j) for j in rows]

    def update_job(self, job_id: str, **fields: Any) -> None:
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise JobNotFound(f"no job '{job_id}' in {self.url}")
            if fields.get("status") == "running" and job.started is None:
                job.started = utcnow()
            if fields.get("status") in FINAL_STATES:
                job.ended = utcnow()
            for k, v in fields.items():
                setattr(job, k, v)

    # party runs ---------------------------------------------------------
    def party_runs(self, job_id: str) -> list[dict[str, Any]]:
        with self.session() as s:
            return [_row(p) for p in s.scalars(select(PartyRun).where(PartyRun.job_id == job_id))]

    def update_party_run(self, job_id: str, role: str, party_id: str, **fields: Any) -> None:
        with self.session() as s:
            run = s.scalars(select(PartyRun).where(
                PartyRun.job_id == job_id, PartyRun.role == role, PartyRun.party_id == party_id)).one()
            for k, v in fields.items():
                setattr(run, k, v)

    # tasks --------------------------------------------------------------
    def tasks(self, job_id: str, role: str | None = None, party_id: str | None = None) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(Task).where(Task.job_id == job_id)
            if role:
                q = q.where(Task.role == role)
            if party_id:
                q = q.where(Task.party_id == str(party_id))
            return [_row(t) for t in s.scalars(q.order_by(Task.id))]

    def update_task(self, job_id: str, component: str, role: str, party_id: str, **fields: Any) -> None:
        with self.session() as s:
            task = s.scalars(select(Task).where(
                Task.job_id == job_id, Task.component == component,
                Task.role == role, Task.party_id == party_id)).one()
            if fields.get("status") == "running":
                task.started, task.ended = utcnow(), None
            if fields.get("status") in FINAL_STATES:
                task.ended = utcnow()
            for k, v in fields.items():
                setattr(task, k, v)

    def update_tasks(self, job_id: str, where_status: tuple[str, ...], **fields: Any) -> None:
        """Set fields on every task of the job whose status is one of ``where_status``."""
        with self.session() as s:
            for task in s.scalars(select(Task).where(Task.job_id == job_id, Task.status.in_(where_status))):
                if fields.get("status") in FINAL_STATES:
                    task.ended = utcnow()
                for k, v in fields.items():
                    setattr(task, k, v)

    # metrics and outputs ------------------------------------------------
    def add_metric(self, job_id: str, role: str, party_id: str, component: str,
                   namespace: str, name: str, value: Any) -> None:
        with self.session() as s:
            s.add(Metric(job_id=job_id, role=role, party_id=party_id, component=component,
                         namespace=namespace, name=name, value={"value": value}))

    def metrics(self, job_id: str, role: str, party_id: str, component: str) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(Metric).where(Metric.job_id == job_id, Metric.role == role,
                                     Metric.party_id == party_id, Metric.component == component)
            return [_row(m) for m in s.scalars(q.order_by(Metric.id))]

    def put_output(self, job_id: str, role: str, party_id: str, component: str,
                   kind: str, index: int, ref: dict[str, Any]) -> None:
        with self.session() as s:
            old = s.scalars(select(Output).where(
                Output.job_id == job_id, Output.role == role, Output.party_id == party_id,
                Output.component == component, Output.kind == kind, Output.index == index)).one_or_none()
            if old is not None:
                old.ref = ref
            else:
                s.add(Output(job_id=job_id, role=role, party_id=party_id, component=component,
                             kind=kind, index=index, ref=ref))

    def outputs(self, job_id: str, role: str, party_id: str, component: str, kind: str) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(Output).where(Output.job_id == job_id, Output.role == role, Output.party_id == party_id,
                                     Output.component == component, Output.kind == kind)
            return [_row(o) for o in s.scalars(q.order_by(Output.index))]


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def derive_status(task_states: list[str]) -> str:
    """A job's state from its tasks': the worst final state wins, then running, then waiting."""
    for state in ("failed", "timeout", "canceled"):
        if state in task_states:
            return state
    if task_states and all(s == "success" for s in task_states):
        return "success"
    if any(s in ("running", "success") for s in task_states):
        return "running"
    return "waiting"
