"""PostgreSQL for tests: a uniquely named database per test session, dropped at the end.

The server is the machine's own (127.0.0.1:5432, trust auth; ``make test`` starts it via
tests/services_postgres.sh). Point ``FEDWEAVE_TEST_POSTGRES_URL`` at another server's
maintenance database to use that one. When the server cannot be reached the tests that
need it go through ``service_unavailable``: skipped locally, failed in CI.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from tests.conftest import service_unavailable

ADMIN_URL = os.environ.get("FEDWEAVE_TEST_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _admin_engine() -> Engine:
    """Autocommit: CREATE/DROP DATABASE refuse to run inside a transaction."""
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                         connect_args={"connect_timeout": 5})


def unreachable_reason() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can."""
    try:
        engine = _admin_engine()
    except ImportError as exc:  # the driver is missing
        return f"driver: {exc}"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        return str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    reason = unreachable_reason()
    if reason is not None:
        shown = make_url(ADMIN_URL).render_as_string(hide_password=True)
        service_unavailable(f"PostgreSQL at {shown} ({reason})")


@contextmanager
def fresh_database(prefix: str = "fedweave_test") -> Iterator[str]:
    """Create an empty database with a name no other run uses; yield its URL; drop it."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:  # FORCE: a leaked connection must not keep it alive
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database shared by this test session."""
    require_postgres()
    with fresh_database() as url:
        yield url
