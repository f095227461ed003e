"""A job's description, given at submit (``flow job submit --description``, FATE's notes).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a database adopted from create_all (stamped at 0001) may hold the column already
    online = not context.is_offline_mode()  # --sql prints the statements: nothing to inspect
    if online and "description" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("jobs")}:
        return
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("description")
