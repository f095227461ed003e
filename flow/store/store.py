"""The job store: what every party runtime and the CLI read and write about jobs.

SQLite under ``$FLOW_HOME`` by default (WAL mode and a busy timeout, so several party
processes write at once), PostgreSQL (``postgresql+psycopg://user@host/db``) for a flow
server; both behave the same. Opening a store brings its schema to the newest Alembic
revision (:mod:`flow.store.migrate`). Methods return plain dicts so callers never hold
ORM objects across sessions or processes.

Every update is one SQL statement, so writers in different processes never lose each
other's changes: the database applies each one atomically, whichever backend it is.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import JSON, Engine, String, case, create_engine, event, func, select, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from flow.core.errors import JobNotFound, StoreError
from flow.core.registry import did_you_mean

from .models import FINAL_STATES, STATES, Base, Job, Metric, Output, PartyRun, Task, UTCDateTime, utcnow
from .privileges import PrivilegeRepository
from .schedules import ScheduleRepository
from .users import UserRepository

#: bare scheme -> the driver fedweave ships (psycopg 3)
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
_OUTPUT_KEY = ("job_id", "role", "party_id", "component", "kind", "index")


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; anything else is kept as given."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"job store URL '{url}' is not a database URL: {exc}") from exc
    driver = _DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


def _sqlite_engine(url: URL) -> Engine:
    if url.database in (None, "", ":memory:"):  # one shared in-memory database, not one per thread
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, connect_args={"timeout": 60})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _party_rows(job_id: str, parties: list[tuple[str, str]],
                components: dict[tuple[str, str], list[tuple[str, str]]]) -> list[Base]:
    rows: list[Base] = []
    for role, pid in parties:
        rows.append(PartyRun(**_checked(PartyRun, dict(job_id=job_id, role=role, party_id=pid))))
        for name, module in components.get((role, pid), []):
            rows.append(Task(**_checked(Task, dict(job_id=job_id, component=name, module=module,
                                                   role=role, party_id=pid))))
    return rows


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    _wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _wal(cur: Any, wait_s: float = 60.0) -> None:
    """Switch the file to WAL. SQLite may refuse the switch with "database is locked" at
    once, without its busy handler, while another process holds a lock (several runtimes
    opening a new store together): retry until the mode is set, by us or by them."""
    end = time.monotonic() + wait_s
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            with contextlib.suppress(sqlite3.OperationalError):
                if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                    return
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def _postgresql_engine(url: URL) -> Engine:
    # runtimes live for hours: check a pooled connection before use rather than fail mid-job
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


_ENGINES: dict[str, Callable[[URL], Engine]] = {"sqlite": _sqlite_engine, "postgresql": _postgresql_engine}


def engine_for(url: str) -> Engine:
    """The engine a Store uses for ``url``: per-dialect settings, no schema work."""
    parsed = make_url(normalise_url(url))
    try:
        return _ENGINES.get(parsed.get_backend_name(), create_engine)(parsed)
    except ImportError as exc:  # the URL's driver is not installed
        raise StoreError(f"job store URL {parsed.render_as_string(hide_password=True)} needs a driver that is "
                         f"not installed ({exc}); for PostgreSQL: pip install 'fedweave[postgresql]'") from exc


def _row(obj) -> dict[str, Any]:
    return {c.name: getattr(obj, c.name) for c in obj.__table__.columns}


def _plain(value: Any, what: str) -> Any:
    """A JSON-clean copy. NaN and infinities become None (PostgreSQL's json refuses them,
    SQLite would keep them: both store null); numpy values become Python ones."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, (str, int)) or isinstance(k, bool)]
        if bad:
            raise StoreError(f"{what} has a key {bad[0]!r} that is not a string")
        return {str(k): _plain(v, what) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, what) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist(), what)
    raise StoreError(f"{what} holds a {type(value).__name__}, which is not JSON")


def _checked(model: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    """Values for ``model``'s columns, refused with one clear line when a backend would
    differ (SQLite ignores lengths, PostgreSQL enforces them) or a name is wrong."""
    table = model.__table__
    out = {}
    for key, value in values.items():
        col = table.columns.get(key)
        if col is None or col.autoincrement is True:
            raise StoreError(f"{table.name} has no field '{key}' to set{did_you_mean(key, table.columns.keys())}")
        if isinstance(col.type, String) and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # party ids arrive as ints from JSON confs
        if key == "status" and value not in STATES:
            raise StoreError(f"{table.name}.status '{value}' is not one of {', '.join(STATES)}")
        length = getattr(col.type, "length", None)
        if length and isinstance(value, str) and len(value) > length:
            raise StoreError(f"{table.name}.{key} is {len(value)} characters long, at most {length} fit: "
                             f"'{value[:40]}...'")
        if isinstance(col.type, JSON):
            value = _plain(value, f"{table.name}.{key}")
        out[key] = value
    return out


def _ended(status: str | None) -> dict[str, Any]:
    return {"ended": utcnow()} if status in FINAL_STATES else {}


def _upsert_generic(session: Session, values: dict[str, Any]) -> None:
    old = session.scalars(select(Output).filter_by(**{k: values[k] for k in _OUTPUT_KEY})).one_or_none()
    if old is not None:
        old.ref = values["ref"]
    else:
        session.add(Output(**values))


def _upsert_on_conflict(insert) -> Callable[[Session, dict[str, Any]], None]:
    def upsert(session: Session, values: dict[str, Any]) -> None:
        stmt = insert(Output).values(**values)
        session.execute(stmt.on_conflict_do_update(index_elements=list(_OUTPUT_KEY), set_={"ref": stmt.excluded.ref}))

    return upsert


#: one atomic statement where the dialect has one, read-then-write elsewhere
_UPSERTS: dict[str, Callable[[Session, dict[str, Any]], None]] = {
    "postgresql": _upsert_on_conflict(pg_insert),
    "sqlite": _upsert_on_conflict(sqlite_insert),
}


class Store:
    def __init__(self, url: str):
        from .migrate import ensure_schema  # here, so `python -m flow.store.migrate` runs one copy

        self.url = url
        self.engine = engine_for(url)
        try:
            ensure_schema(self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self._where = self.engine.url.render_as_string(hide_password=True)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        #: the repositories that own the other tables' queries (on this store's transactions)
        self.schedules = ScheduleRepository(self.session)
        self.privileges = PrivilegeRepository(self.session)
        self.users = UserRepository(self.session)

    @classmethod
    def for_home(cls, home: Path) -> "Store":
        home.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{home / 'flow.sqlite'}")

    def close(self) -> None:
        """Close the pooled connections (PostgreSQL keeps them open otherwise)."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session.begin() as s:
            yield s

    def _update(self, model: type[Base], where: list, values: dict[str, Any], missing: StoreError) -> None:
        """One UPDATE statement; ``missing`` is raised when it matches no row."""
        with self.session() as s:
            if values:
                found = s.execute(update(model).where(*where).values(values)).rowcount
            else:
                found = s.scalar(select(func.count()).select_from(model).where(*where))
            if not found:
                raise missing

    # jobs ---------------------------------------------------------------
    def create_job(self, job_id: str, *, conf: dict, dsl: dict, initiator: tuple[str, str],
                   parties: list[tuple[str, str]], components: dict[tuple[str, str], list[tuple[str, str]]],
                   conf_path: str = "", dsl_path: str = "", description: str = "") -> None:
        """Record a job, one party run per party and one waiting task per (component, party).

        A job id already recorded raises SQLAlchemy's IntegrityError (callers race on it)."""
        rows: list[Base] = [Job(**_checked(Job, dict(
            job_id=job_id, conf=conf, dsl=dsl, initiator_role=initiator[0], initiator_party=initiator[1],
            conf_path=conf_path, dsl_path=dsl_path, description=description or "")))]
        rows += _party_rows(job_id, parties, components)
        with self.session() as s:
            s.add_all(rows)

    def add_parties(self, job_id: str, parties: list[tuple[str, str]],
                    components: dict[tuple[str, str], list[tuple[str, str]]]) -> None:
        """Record party runs and tasks of a known job for the parties it does not list yet
        (each party of a home records itself when it starts; two may do so at once)."""
        self.job(job_id)
        known = {(r["role"], r["party_id"]) for r in self.party_runs(job_id)}
        missing = [p for p in parties if (p[0], str(p[1])) not in known]
        if not missing:
            return
        try:
            with self.session() as s:
                s.add_all(_party_rows(job_id, missing, components))
        except IntegrityError:  # another process of this home recorded them first
            pass

    def job(self, job_id: str) -> dict[str, Any]:
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise JobNotFound(f"no job '{job_id}' in {self._where}")
            return _row(job)

    def jobs(self, limit: int = 20, *, status: str | None = None, initiator: tuple[str | None, str] | None = None,
             since: datetime | None = None, until: datetime | None = None, description: str | None = None,
             role: str | None = None, party_id: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` jobs, newest first, of those that match every filter given:
        ``status``; ``initiator`` (role or None, party id); created at or after ``since`` and
        before ``until``; ``description`` holding the text (any case); a party of ``role``
        and/or ``party_id`` among the job's parties (its conf's ``role``, so a job whose other
        parties run elsewhere is found by them too)."""
        if limit < 0:
            raise StoreError(f"jobs limit must be 0 or more, got {limit}")
        q = job_filters(select(Job).order_by(Job.created.desc(), Job.job_id.desc()), status=status,
                        initiator=initiator, since=since, until=until, description=description)
        if role is None and party_id is None:
            with self.session() as s:
                return [_row(j) for j in s.scalars(q.limit(limit))]
        out: list[dict[str, Any]] = []
        with self.session() as s:  # the parties are in the conf's JSON: matched here, on any backend
            for job in s.scalars(q.execution_options(yield_per=200)):
                if len(out) >= limit:
                    break
                if _has_party(job.conf, role, party_id):
                    out.append(_row(job))
        return out

    def job_counts(self) -> dict[str, int]:
        """How many jobs are in each state (the flow server's /metrics)."""
        with self.session() as s:
            return {status: n for status, n in s.execute(select(Job.status, func.count()).group_by(Job.status))}

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set fields; the first status running stamps ``started``, a final status stamps ``ended``."""
        fields = _checked(Job, fields)
        values = _ended(fields.get("status"))
        if fields.get("status") == "running":  # a rerun keeps the job's first start
            values["started"] = case((Job.started.is_(None), type_coerce(utcnow(), UTCDateTime())),
                                     else_=Job.started)
        self._update(Job, [Job.job_id == job_id], {**values, **fields},
                     JobNotFound(f"no job '{job_id}' in {self._where}"))

    def end_job(self, job_id: str, status: str, reason: str) -> bool:
        """Give an unfinished job, and its party runs and tasks still running or waiting, the
        final ``status`` and ``reason`` in one transaction; False (nothing changed) when the job
        had already ended: of two parts of the system that each find it failing, the first says why."""
        if status not in FINAL_STATES:
            raise StoreError(f"job status '{status}' is not final ({', '.join(FINAL_STATES)})")
        unfinished = ("running", "waiting")
        with self.session() as s:
            if not s.execute(update(Job).where(Job.job_id == job_id, Job.status.not_in(FINAL_STATES))
                             .values(status=status, reason=reason, ended=utcnow())).rowcount:
                return False
            s.execute(update(PartyRun).where(PartyRun.job_id == job_id, PartyRun.status.in_(unfinished))
                      .values(status=status, reason=reason))
            s.execute(update(Task).where(Task.job_id == job_id, Task.status.in_(unfinished))
                      .values(status=status, reason=reason, ended=utcnow()))
        return True

    # party runs ---------------------------------------------------------
    def party_runs(self, job_id: str) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(PartyRun).where(PartyRun.job_id == job_id).order_by(PartyRun.id)
            return [_row(p) for p in s.scalars(q)]

    def update_party_run(self, job_id: str, role: str, party_id: str, **fields: Any) -> None:
        where = [PartyRun.job_id == job_id, PartyRun.role == role, PartyRun.party_id == str(party_id)]
        self._update(PartyRun, where, _checked(PartyRun, fields),
                     StoreError(f"no party run {role}:{party_id} in job '{job_id}' in {self._where}"))

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
        """Set fields; status running stamps ``started`` and clears ``ended``, a final one stamps ``ended``."""
        fields = _checked(Task, fields)
        status = fields.get("status")
        values = {"started": utcnow(), "ended": None} if status == "running" else _ended(status)
        where = [Task.job_id == job_id, Task.component == component, Task.role == role,
                 Task.party_id == str(party_id)]
        self._update(Task, where, {**values, **fields},
                     StoreError(f"no task {component} of {role}:{party_id} in job '{job_id}' in {self._where}"))

    def update_tasks(self, job_id: str, where_status: tuple[str, ...], **fields: Any) -> None:
        """Set fields on every task of the job whose status is one of ``where_status``
        (a final status stamps ``ended``); matching no task is not an error."""
        unknown = [s for s in where_status if s not in STATES]
        if unknown:
            raise StoreError(f"task status '{unknown[0]}' is not one of {', '.join(STATES)}")
        fields = _checked(Task, fields)
        values = {**_ended(fields.get("status")), **fields}
        if not values:
            return
        with self.session() as s:
            s.execute(update(Task).where(Task.job_id == job_id, Task.status.in_(where_status)).values(values))

    # metrics and outputs ------------------------------------------------
    def add_metric(self, job_id: str, role: str, party_id: str, component: str,
                   namespace: str, name: str, value: Any) -> None:
        """Append a metric; ``value`` is any JSON-able value (stored as ``{"value": value}``)."""
        row = _checked(Metric, dict(job_id=job_id, role=role, party_id=party_id, component=component,
                                    namespace=namespace, name=name, value={"value": value}))
        with self.session() as s:
            s.add(Metric(**row))

    def metrics(self, job_id: str, role: str, party_id: str, component: str) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(Metric).where(Metric.job_id == job_id, Metric.role == role,
                                     Metric.party_id == str(party_id), Metric.component == component)
            return [_row(m) for m in s.scalars(q.order_by(Metric.id))]

    def put_output(self, job_id: str, role: str, party_id: str, component: str,
                   kind: str, index: int, ref: dict[str, Any]) -> None:
        """Record where an output lives; the same (job, party, component, kind, index) is replaced."""
        values = _checked(Output, dict(job_id=job_id, role=role, party_id=party_id, component=component,
                                       kind=kind, index=index, ref=ref))
        with self.session() as s:
            _UPSERTS.get(self.engine.dialect.name, _upsert_generic)(s, values)

    def outputs(self, job_id: str, role: str, party_id: str, component: str, kind: str) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(Output).where(Output.job_id == job_id, Output.role == role,
                                     Output.party_id == str(party_id), Output.component == component,
                                     Output.kind == kind)
            return [_row(o) for o in s.scalars(q.order_by(Output.index))]


def job_filters(q: Any, *, status: str | None = None, initiator: tuple[str | None, str] | None = None,
                since: datetime | None = None, until: datetime | None = None, description: str | None = None) -> Any:
    """``q`` (a select of jobs) narrowed by :meth:`Store.jobs`'s column filters."""
    if status is not None:
        q = q.where(Job.status == status)
    if initiator is not None:
        q = q.where(Job.initiator_party == str(initiator[1]))
        if initiator[0]:
            q = q.where(Job.initiator_role == initiator[0])
    if since is not None:
        q = q.where(Job.created >= since)
    if until is not None:
        q = q.where(Job.created < until)
    if description:
        q = q.where(func.lower(Job.description).contains(description.lower(), autoescape=True))
    return q


def _has_party(conf: Any, role: str | None, party_id: str | None) -> bool:
    """Whether a job's conf names a party of ``role`` (any, when None) with ``party_id``
    (any, when None)."""
    roles = conf.get("role") if isinstance(conf, dict) else None
    if not isinstance(roles, dict):
        return False
    for name, ids in roles.items():
        if role is not None and name != role:
            continue
        ids = ids if isinstance(ids, list) else [ids]
        if party_id is None and ids or any(str(i) == str(party_id) for i in ids):
            return True
    return False


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
