"""The people who may use this party's flow server, in the job store (``users``).

Every query and transaction of that table lives here; :mod:`flow.ops.users` makes tokens,
hashes them and checks roles, and calls these methods. Rows come back as dicts, the
token's hash included: callers show a person only what :func:`flow.ops.users.user_view`
keeps. A missing user is answered with None or False, not an error, so the caller words it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from .models import User, utcnow
from .repository import Repository, as_dict, changed


class UserRepository(Repository):
    """``store.users``: names, roles and token hashes."""

    def add(self, name: str, role: str, token_id: str, token_hash: str) -> dict[str, Any] | None:
        """Insert a user; None when one of that name exists (also when another process
        inserted it first)."""
        try:
            with self._session() as s:
                if s.get(User, name) is not None:
                    return None
                row = User(name=name, role=role, token_id=token_id, token_hash=token_hash, created=utcnow())
                s.add(row)
                s.flush()
                return as_dict(row)
        except IntegrityError:
            return None

    def get(self, name: str) -> dict[str, Any] | None:
        with self._session() as s:
            row = s.get(User, name)
            return None if row is None else as_dict(row)

    def by_token_id(self, token_id: str) -> dict[str, Any] | None:
        """The user whose token carries ``token_id`` (no secret: the hash must still match)."""
        with self._session() as s:
            row = s.scalars(select(User).where(User.token_id == token_id)).first()
            return None if row is None else as_dict(row)

    def all(self) -> list[dict[str, Any]]:
        """Every user, by name."""
        with self._session() as s:
            return [as_dict(r) for r in s.scalars(select(User).order_by(User.name))]

    def remove(self, name: str) -> bool:
        """Delete the user; False when there was none."""
        with self._session() as s:
            return changed(s, delete(User).where(User.name == name)) > 0

    def set_token(self, name: str, token_id: str, token_hash: str) -> dict[str, Any] | None:
        """Replace the user's token (the old one stops working at once); None when no such user."""
        with self._session() as s:
            done = changed(s, update(User).where(User.name == name).values(
                token_id=token_id, token_hash=token_hash, rotated=utcnow()))
            if not done:
                return None
            row = s.get(User, name)
            return None if row is None else as_dict(row)

    def touch(self, name: str, when: datetime, unless_since: datetime) -> bool:
        """Record a use of the user's token at ``when``, unless one is recorded after
        ``unless_since`` already (so a busy client costs one write a minute, not one a request)."""
        with self._session() as s:
            return changed(s, update(User).where(User.name == name, or_(
                User.last_used.is_(None), User.last_used < unless_since)).values(last_used=when)) > 0
