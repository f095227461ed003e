"""Alembic environment of the job store.

:mod:`flow.store.migrate` hands in an open connection that already holds the migration
lock (``config.attributes["connection"]``); run any other way (the ``alembic`` command
with ``sqlalchemy.url`` set) it opens and locks one itself. Only the job store's own
tables are compared, so tables of other applications sharing the database are never
proposed for removal.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from flow.store.migrate import include_name, locked
from flow.store.models import Base
from flow.store.store import engine_for

config = context.config
target_metadata = Base.metadata


def _configure(**kw) -> None:
    context.configure(target_metadata=target_metadata, include_name=include_name,
                      compare_type=True, render_as_batch=True, **kw)


def run_offline() -> None:
    """``--sql``: print the DDL instead of running it."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_for(config.get_main_option("sqlalchemy.url"))
    try:
        with locked(engine) as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
