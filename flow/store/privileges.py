"""Grants on this party's tables in the job store (``privileges``).

Every query and transaction of that table lives here; :mod:`flow.governance.privileges`
validates what is asked and decides access, and calls these methods. Rows come back as
dicts. The table's unique key (party, role, namespace, name) is what makes a grant made
twice, even by two processes at once, one row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .models import Privilege
from .repository import Repository, as_dict, changed


class PrivilegeRepository(Repository):
    """``store.privileges``: who may read which of this party's tables."""

    def grant(self, party_id: str, role: str, namespace: str, name: str) -> tuple[dict[str, Any], bool]:
        """The grant's row, and whether this call created it (False: it was there already)."""
        key = dict(party_id=party_id, role=role, namespace=namespace, name=name)
        try:
            with self._session() as s:
                s.add(Privilege(**key))
            created = True
        except IntegrityError:
            created = False
        with self._session() as s:
            return as_dict(s.scalars(select(Privilege).filter_by(**key)).one()), created

    def revoke(self, party_id: str, role: str, namespace: str, name: str) -> bool:
        """Delete exactly that grant; False when there was none."""
        with self._session() as s:
            return changed(s, delete(Privilege).where(Privilege.party_id == party_id, Privilege.role == role,
                                                      Privilege.namespace == namespace, Privilege.name == name)) > 0

    def find(self, *, party_id: str | None = None, namespace: str | None = None,
             name: str | None = None) -> list[dict[str, Any]]:
        """The grants matching every filter given, by party, namespace, name and role."""
        q = select(Privilege)
        for column, value in ((Privilege.party_id, party_id), (Privilege.namespace, namespace), (Privilege.name, name)):
            if value is not None:
                q = q.where(column == str(value))
        with self._session() as s:
            rows = s.scalars(q.order_by(Privilege.party_id, Privilege.namespace, Privilege.name, Privilege.role))
            return [as_dict(r) for r in rows]
