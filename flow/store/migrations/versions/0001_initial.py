"""Initial job store: jobs, party runs, tasks, metrics, outputs.

The schema that ``Base.metadata.create_all`` made before migrations existed; such a
database is stamped at this revision instead of being created again.

Revision ID: 0001
Revises:
Create Date: 2026-11-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)


def _party() -> list[sa.Column]:
    return [sa.Column("role", sa.String(16), nullable=False), sa.Column("party_id", sa.String(64), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("initiator_role", sa.String(16), nullable=False),
        sa.Column("initiator_party", sa.String(64), nullable=False),
        sa.Column("conf", sa.JSON(), nullable=False),
        sa.Column("dsl", sa.JSON(), nullable=False),
        sa.Column("conf_path", sa.Text(), nullable=False),
        sa.Column("dsl_path", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("supervisor_pid", sa.Integer(), nullable=True),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("started", TIMESTAMP, nullable=True),
        sa.Column("ended", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("job_id", name="jobs_pkey"),
    )
    op.create_table(
        "party_runs",
        _id(),
        sa.Column("job_id", sa.String(64), nullable=False),
        *_party(),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.UniqueConstraint("job_id", "role", "party_id", name="party_runs_job_id_role_party_id_key"),
    )
    op.create_table(
        "tasks",
        _id(),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("module", sa.String(64), nullable=False),
        *_party(),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started", TIMESTAMP, nullable=True),
        sa.Column("ended", TIMESTAMP, nullable=True),
        sa.UniqueConstraint("job_id", "component", "role", "party_id",
                            name="tasks_job_id_component_role_party_id_key"),
    )
    op.create_table(
        "metrics",
        _id(),
        sa.Column("job_id", sa.String(64), nullable=False),
        *_party(),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "outputs",
        _id(),
        sa.Column("job_id", sa.String(64), nullable=False),
        *_party(),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("ref", sa.JSON(), nullable=False),
        sa.UniqueConstraint("job_id", "role", "party_id", "component", "kind", "index",
                            name="outputs_job_id_role_party_id_component_kind_index_key"),
    )
    for table in ("party_runs", "tasks", "metrics", "outputs"):
        op.create_index(f"ix_{table}_job_id", table, ["job_id"])


def downgrade() -> None:
    for table in ("outputs", "metrics", "tasks", "party_runs"):
        op.drop_index(f"ix_{table}_job_id", table_name=table)
        op.drop_table(table)
    op.drop_table("jobs")
