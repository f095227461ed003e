"""The people who may use a party's flow server: users, their roles and hashed tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("rotated", TIMESTAMP, nullable=True),
        sa.Column("last_used", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("name", name="users_pkey"),
        sa.UniqueConstraint("token_id", name="users_token_id_key"),
    )


def downgrade() -> None:
    op.drop_table("users")
