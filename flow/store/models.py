"""SQLAlchemy tables of the job store: jobs, tasks, party runs, metrics, outputs, the
privileges other parties hold on this party's tables, cron schedules with their firings, and
the people who may use the party's flow server (users, their roles and hashed tokens).

The schema itself is created and changed only by the Alembic revisions in
``flow/store/migrations/versions``; a change here needs a new revision there.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Dialect, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always read back UTC-aware.

    SQLite keeps no time zone (it hands back naive values) and PostgreSQL answers in the
    session's zone; this makes both return the same aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)


def _as_utc(value: datetime) -> datetime:
    """Naive values are taken as UTC (all this store ever writes)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


#: constraint names as PostgreSQL would pick them, so databases made by the old
#: ``create_all`` and by the migrations agree, and later revisions can name them
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: every state a job, a party run or a task can be in
STATES = ("waiting", "running", "success", "failed", "canceled", "timeout")
FINAL_STATES = frozenset({"success", "failed", "canceled", "timeout"})


class Job(Base):
    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    initiator_role: Mapped[str] = mapped_column(String(16))
    initiator_party: Mapped[str] = mapped_column(String(64))
    conf: Mapped[dict] = mapped_column(JSON)
    dsl: Mapped[dict] = mapped_column(JSON)
    conf_path: Mapped[str] = mapped_column(Text, default="")
    dsl_path: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    #: what the person who submitted it said it is (``flow job submit --description``)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    supervisor_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PartyRun(Base):
    """One party's runtime process for one job attempt."""

    __tablename__ = "party_runs"
    __table_args__ = (UniqueConstraint("job_id", "role", "party_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    party_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    attempt: Mapped[int] = mapped_column(Integer, default=0)


class Task(Base):
    """One party's share of one component."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("job_id", "component", "role", "party_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    component: Mapped[str] = mapped_column(String(128))
    module: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    party_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    started: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Metric(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    party_id: Mapped[str] = mapped_column(String(64))
    component: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[dict] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Output(Base):
    """Where a task's output data table or model lives."""

    __tablename__ = "outputs"
    __table_args__ = (UniqueConstraint("job_id", "role", "party_id", "component", "kind", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    party_id: Mapped[str] = mapped_column(String(64))
    component: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))  # "data" | "model"
    index: Mapped[int] = mapped_column(Integer, default=0)
    ref: Mapped[dict] = mapped_column(JSON)


class Privilege(Base):
    """A table of this party that another party's jobs may read. An empty ``role`` grants
    the party in whatever role it initiates; ``name`` ``*`` grants the whole namespace."""

    __tablename__ = "privileges"
    __table_args__ = (UniqueConstraint("party_id", "role", "namespace", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    party_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16), default="")
    namespace: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    granted: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CronSchedule(Base):
    """A job submitted again and again on a cron expression (driven by :mod:`flow.schedules.loop`)."""

    __tablename__ = "cron_schedules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cron: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    conf_path: Mapped[str] = mapped_column(Text)
    dsl_path: Mapped[str] = mapped_column(Text)
    overlap: Mapped[str] = mapped_column(String(8), default="skip")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    promote_if: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: the next slot is the first one strictly after this (creation, resume, last handled slot)
    anchor: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the last slot the schedule handled, whatever came of it (submitted, skipped, queued)
    last_fire: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: a firing held back (overlap=queue) until the previous job ends
    queued_fire: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: bumped by every claim, so two tickers never handle the same slot twice
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: the job whose model is deployed (promote_if), with the metrics it was chosen on
    deployed_job: Mapped[str | None] = mapped_column(String(64), nullable=True)
    deployed_metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    deployed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CronFiring(Base):
    """One firing of a schedule and what came of it."""

    __tablename__ = "cron_firings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(64), index=True)
    fire_time: Mapped[datetime] = mapped_column(UTCDateTime())
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: submitted | queued | skipped | failed, then the job's own state once seen
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    #: what promote_if decided once the job succeeded ("" when it has no rule or has not ended)
    promotion: Mapped[str] = mapped_column(Text, default="")
    recorded: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    """A person who may use this party's flow server, with a role (viewer, operator, admin).

    The token itself is never kept: only its SHA-256 ``token_hash`` and ``token_id``, a short
    random part of the token that is no secret and finds the row (:mod:`flow.ops.users`)."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: when the token was last replaced (``flow user rotate``)
    rotated: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
