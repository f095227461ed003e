"""Which of this party's tables other parties' jobs may read.

A party accepts a job proposed by another only if every table the job asks it to read has
been granted to the initiator (``flow privilege grant``). Grants are rows of the job store
(``privileges``): a party id, optionally a role (empty: the party in any role it initiates
in), a namespace and a table name, where ``*`` stands for every table of the namespace.
Nothing is granted by default. Every grant and revoke is written to the audit log.
The rows are read and written by ``store.privileges``
(:class:`flow.store.privileges.PrivilegeRepository`); this module validates and decides.
"""

from __future__ import annotations

from typing import Any, Iterable

from flow.core.errors import FedweaveError, InvalidIdentifier
from flow.core.ids import ROLES, is_valid, problem
from flow.governance.audit import AuditLog
from flow.store import Store

ANY_TABLE = "*"
_ROLES = ROLES
#: the longest namespace or table name a grant may name
_TABLE_MAX = 128


class PrivilegeError(FedweaveError):
    """A grant or revoke names a party or table that cannot be one."""

    exit_code = 2


class InvalidGrant(PrivilegeError, InvalidIdentifier):
    """The party, namespace or name of a grant is no identifier of its kind (flow.core.ids):
    one line naming the flag; a flow server answers 400."""

    def __init__(self, field: str, problem: str):
        InvalidIdentifier.__init__(self, field, problem)


def parse_party(text: str) -> tuple[str, str]:
    """``"host:10000"`` -> ("host", "10000"); ``"10000"`` -> ("", "10000") (any role)."""
    role, _, pid = str(text).strip().rpartition(":")
    if role and role not in _ROLES:
        raise InvalidGrant("--party", f"--party {text!r}: role {role!r} is not one of {', '.join(_ROLES)}")
    if not is_valid("party_id", pid):
        raise InvalidGrant("--party", f"--party {text!r}: party id must be 1-64 letters, digits, '_', '-' "
                                      "or '.' (not starting with '.')")
    return role, pid


def check_grant(party: str, namespace: str, name: str) -> tuple[str, str]:
    """(role, party id) of a grant's party once the party, namespace and name are each one
    of their kind; InvalidGrant naming the flag otherwise (before anything is read or written)."""
    role_pid = parse_party(party)
    _check_table(namespace, name)
    return role_pid


def _check_table(namespace: str, name: str) -> None:
    """Both must be table names (flow.core.ids) of at most 128 characters; ``name`` may be ``*``."""
    if namespace == ANY_TABLE:
        raise InvalidGrant("--namespace", "--namespace cannot be '*': grant namespaces one by one")
    for flag, kind, value in (("--namespace", "namespace", namespace), ("--name", "table_name", name)):
        if kind == "table_name" and value == ANY_TABLE:
            continue
        reason = problem(kind, value, flag)
        if reason is None and len(value) > _TABLE_MAX:
            reason = f"{flag}: {value[:40]!r}... is longer than {_TABLE_MAX} characters"
        if reason is not None:
            raise InvalidGrant(flag, reason)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    role, pid = row["role"], row["party_id"]
    return {"party": f"{role}:{pid}" if role else pid, "party_id": pid, "role": role or None,
            "namespace": row["namespace"], "name": row["name"], "granted": row["granted"]}


def grant(store: Store, party: str, namespace: str, name: str, *, audit: AuditLog | None = None,
          actor: str | None = None) -> dict[str, Any]:
    """Let ``party`` (``ROLE:ID`` or ``ID``) read NAMESPACE/NAME; granting twice is a no-op."""
    role, pid = parse_party(party)
    _check_table(namespace, name)
    row, created = store.privileges.grant(pid, role, namespace, name)
    out = {**_view(row), "created": created}
    if audit is not None and created:
        audit.append("privilege.grant", actor=actor, details={"party": out["party"], "namespace": namespace,
                                                              "name": name})
    return out


def revoke(store: Store, party: str, namespace: str, name: str, *, audit: AuditLog | None = None,
           actor: str | None = None) -> dict[str, Any]:
    """Take back exactly that grant; a grant that does not exist is an error naming the ones that do."""
    role, pid = parse_party(party)
    _check_table(namespace, name)
    if not store.privileges.revoke(pid, role, namespace, name):
        held = [f"{p['namespace']}/{p['name']}" + (f" as {p['role']}" if p["role"] else "")
                for p in list_privileges(store, party_id=pid)]
        raise PrivilegeError(f"party {party} holds no grant on {namespace}/{name}"
                             + (f"; it holds: {', '.join(held)}" if held else "; it holds none"))
    if audit is not None:
        audit.append("privilege.revoke", actor=actor, details={"party": party, "namespace": namespace, "name": name})
    return {"party": party, "namespace": namespace, "name": name, "revoked": True}


def list_privileges(store: Store, *, party_id: str | None = None, namespace: str | None = None,
                    name: str | None = None) -> list[dict[str, Any]]:
    """The grants matching every filter given, by party, namespace, name and role."""
    return [_view(r) for r in store.privileges.find(party_id=party_id, namespace=namespace, name=name)]


def _table(item: Any) -> tuple[str, str]:
    if isinstance(item, dict):
        return str(item["namespace"]), str(item["name"])
    namespace, name = item
    return str(namespace), str(name)


def check_job_access(store: Store, initiator_party_id: str, tables: Iterable[Any], *,
                     initiator_role: str | None = None, local_party_id: str | None = None) -> list[str]:
    """Why a job of ``initiator_party_id`` may not read ``tables`` (``(namespace, name)``
    pairs or ``{"namespace", "name"}`` dicts) of this party: one reason per table not
    granted; an empty list means the job may go ahead. A role-bound grant counts only when
    the initiator's role is given and is that role. Jobs this party initiates itself
    (``local_party_id``) need no grant."""
    pid = str(initiator_party_id)
    if local_party_id is not None and pid == str(local_party_id):
        return []
    grants = {(r["role"], r["namespace"], r["name"]) for r in store.privileges.find(party_id=pid)}
    roles = {""} | ({initiator_role} if initiator_role else set())
    reasons = []
    for namespace, name in dict.fromkeys(_table(t) for t in tables):
        if any((role, namespace, n) in grants for role in roles for n in (name, ANY_TABLE)):
            continue
        who = f"{initiator_role}:{pid}" if initiator_role else pid
        reasons.append(f"table {namespace}/{name} is not granted to party {who} "
                       f"(flow privilege grant --party {pid} --namespace {namespace} --name {name})")
    return reasons
