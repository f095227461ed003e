"""Privileges on this party's tables, and cron schedules with their firings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "privileges",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("party_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("granted", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("party_id", "role", "namespace", "name",
                            name="privileges_party_id_role_namespace_name_key"),
    )
    op.create_index("ix_privileges_party_id", "privileges", ["party_id"])
    op.create_table(
        "cron_schedules",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("cron", sa.String(128), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("conf_path", sa.Text(), nullable=False),
        sa.Column("dsl_path", sa.Text(), nullable=False),
        sa.Column("overlap", sa.String(8), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("promote_if", sa.Text(), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("anchor", TIMESTAMP, nullable=False),
        sa.Column("last_fire", TIMESTAMP, nullable=True),
        sa.Column("queued_fire", TIMESTAMP, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deployed_job", sa.String(64), nullable=True),
        sa.Column("deployed_metrics", sa.JSON(), nullable=True),
        sa.Column("deployed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("name", name="cron_schedules_pkey"),
    )
    op.create_table(
        "cron_firings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("schedule", sa.String(64), nullable=False),
        sa.Column("fire_time", TIMESTAMP, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("promotion", sa.Text(), nullable=False),
        sa.Column("recorded", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_cron_firings_schedule", "cron_firings", ["schedule"])


def downgrade() -> None:
    op.drop_index("ix_cron_firings_schedule", table_name="cron_firings")
    op.drop_table("cron_firings")
    op.drop_table("cron_schedules")
    op.drop_index("ix_privileges_party_id", table_name="privileges")
    op.drop_table("privileges")
