"""What the store's table repositories share: the Store's transactions and plain-dict rows.

A repository owns every query of its tables; it borrows the Store's ``session`` (one
transaction per ``with``) rather than opening its own engine, so it follows the Store's
backend settings, and hands back dicts so no ORM object leaves a session.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session

#: ``Store.session``: a new transaction, committed when the ``with`` ends, rolled back on an error
SessionFactory = Callable[[], AbstractContextManager[Session]]


def as_dict(obj: Any) -> dict[str, Any]:
    """Every column of an ORM row, by name."""
    return {c.name: getattr(obj, c.name) for c in obj.__table__.columns}


def changed(s: Session, stmt: Executable) -> int:
    """How many rows an UPDATE or DELETE matched: what a compare-and-set reads to know it won."""
    return cast(CursorResult[Any], s.execute(stmt)).rowcount


class Repository:
    """Base of the table repositories ``Store`` exposes (``store.schedules``, ``store.privileges``)."""

    def __init__(self, session: SessionFactory):
        self._session = session
