"""Create and upgrade the job store's schema with Alembic.

Every ``Store(url)`` calls :func:`ensure_schema`, and several party runtimes open the
same database at once, so upgrading must be idempotent and serialised:

- a database already at :data:`HEAD` costs two small queries and never imports Alembic
  (the CLI opens the store on every command);
- otherwise the upgrade runs in one transaction that first takes a lock: a transaction
  advisory lock on PostgreSQL (DDL is transactional there), ``BEGIN IMMEDIATE`` on
  SQLite (the database's write lock, waited for through the busy timeout). Whoever
  comes second finds the schema at head and does nothing;
- a database made by ``create_all`` before migrations existed (tables, no
  ``alembic_version``) is stamped at :data:`BASELINE` and then upgraded.

Run it without the ``flow`` command: ``python -m flow.store.migrate URL [REVISION]``.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import Connection, Engine, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from flow.core.errors import StoreError

#: the newest revision in migrations/versions (a unit test keeps the two in step)
HEAD = "0004"
#: the revision that matches databases created by ``create_all`` before migrations
BASELINE = "0001"
SCRIPT_LOCATION = Path(__file__).resolve().with_name("migrations")
VERSION_TABLE = "alembic_version"
#: PostgreSQL advisory lock key of schema upgrades (any constant; "fwst" in ASCII)
PG_LOCK_KEY = 0x66777374


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic filter: only the job store's own tables (others may share the database)."""
    from flow.store.models import Base

    return type_ != "table" or name in Base.metadata.tables


def _lock_postgresql(conn: Connection) -> None:
    conn.execute(select(func.pg_advisory_xact_lock(PG_LOCK_KEY)))


def _lock_sqlite(conn: Connection) -> None:
    # pysqlite opens no transaction before DDL by itself; this one holds the write lock
    conn.exec_driver_sql("BEGIN IMMEDIATE")


#: how each dialect keeps two processes from migrating at once; others run unlocked
_LOCKS: dict[str, Callable[[Connection], None]] = {
    "postgresql": _lock_postgresql,
    "sqlite": _lock_sqlite,
}


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the migration lock; commits on exit."""
    with engine.connect() as conn:
        _LOCKS.get(conn.dialect.name, lambda _c: None)(conn)
        yield conn
        conn.commit()


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None when it has none (empty, or made by create_all)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        query = f"SELECT version_num FROM {VERSION_TABLE}"  # noqa: S608 - a constant table name
        return conn.execute(text(query)).scalar()


def alembic_config(url: str | None = None, connection: Connection | None = None):
    """An Alembic Config pointing at the packaged migrations; no alembic.ini needed."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` under the migration lock (no-op when already there)."""
    from alembic import command
    from alembic.util import CommandError

    try:
        with locked(engine) as conn:
            cfg = alembic_config(connection=conn)
            tables = inspect(conn)
            if not tables.has_table(VERSION_TABLE) and tables.has_table("jobs"):
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, revision)
    except CommandError as exc:
        raise StoreError(f"cannot migrate the job store at {_shown(engine)} to '{revision}': {exc}"
                         " (a newer fedweave may have written it)") from exc


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` ("base" drops every table of the store)."""
    from alembic import command
    from alembic.util import CommandError

    try:
        with locked(engine) as conn:
            command.downgrade(alembic_config(connection=conn), revision)
    except CommandError as exc:
        raise StoreError(f"cannot downgrade the job store at {_shown(engine)} to '{revision}': {exc}") from exc


def ensure_schema(engine: Engine) -> None:
    """What ``Store(url)`` does on open: upgrade to head unless already there."""
    try:
        if current_revision(engine) == HEAD:
            return
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the job store at {_shown(engine)}: {exc.__class__.__name__}: "
                         f"{str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0]}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flow.store.migrate",
                                     description="Create or upgrade a fedweave job store database.")
    parser.add_argument("url", help="SQLAlchemy URL, e.g. sqlite:////path/flow.sqlite or "
                                    "postgresql+psycopg://user@host/db")
    parser.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    parser.add_argument("--downgrade", action="store_true", help="go back to REVISION ('base': drop all)")
    parser.add_argument("--current", action="store_true", help="print the current revision, change nothing")
    parser.add_argument("--sql", action="store_true", help="print the upgrade's SQL instead of running it")
    args = parser.parse_args(argv)

    from flow.store.store import engine_for, normalise_url  # the Store's own engine settings

    if args.sql:
        from alembic import command

        command.upgrade(alembic_config(url=normalise_url(args.url)), args.revision, sql=True)
        return 0
    engine = engine_for(args.url)
    try:
        if not args.current:
            (downgrade if args.downgrade else upgrade)(engine, args.revision)
        print(current_revision(engine) or "base")
    except (StoreError, SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
