"""People and roles: who may use this party's flow server, and as what.

``flow user add NAME --role viewer|operator|admin`` makes a token, shows it once and keeps
only its SHA-256 (``store.users``); a token is ``fwu_<id>_<secret>``, 32 random bytes of
secret, and ``<id>`` is no secret: it finds the row whose hash is then compared in constant
time. The server's own token (:mod:`flow.server.auth`) stays the bootstrap: it acts as user
:data:`BOOTSTRAP`, an admin, so the first users can be added through the server too.

What each role may do is :data:`flow.ops.api.ROLES`; the flow server checks it on every
route (``flow/server/app.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from typing import Any

from flow.core.errors import FedweaveError, StoreError, ValidationError
from flow.core.settings import ServiceConf
from flow.governance.trail import record as audit_record
from flow.governance.trail import user_actor
from flow.ops.api import ROLE_ORDER
from flow.store import Store

#: the user a request with the server's own token acts as (no row: the name is reserved)
BOOTSTRAP = "admin"
#: how a user token starts; anything else is taken for the server's token
TOKEN_PREFIX = "fwu"  # noqa: S105 - the public marker of a user token, not a secret
#: a name: a letter, then letters, digits, ``_ . -`` (64 at most)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
#: a token's use is written down at most this often (a busy client costs no write per request)
TOUCH_EVERY = timedelta(seconds=60)

#: who the audit log names for user changes made in this context: a flow server sets the
#: user behind the request; elsewhere it is the person running the command
acting_user: ContextVar[str | None] = ContextVar("fedweave_acting_user", default=None)


def token_digest(token: str) -> str:
    """What the store keeps of a token: its SHA-256, hex (the token is 32 random bytes, so
    no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and its id (the id is no secret)."""
    token_id = secrets.token_hex(6)
    return f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}", token_id


def token_id_of(token: str) -> str | None:
    """The id part of a user token, or None when ``token`` is no user token."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def user_view(row: dict[str, Any]) -> dict[str, Any]:
    """What a person is shown of a user: never the token or its hash."""
    return {k: row.get(k) for k in ("name", "role", "created", "rotated", "last_used")}


def authenticate(store: Store, token: str) -> dict[str, Any] | None:
    """The user (:func:`user_view`) whose token ``token`` is, or None. Records the use."""
    token_id = token_id_of(token)
    row = store.users.by_token_id(token_id) if token_id else None
    if row is None or not hmac.compare_digest(row["token_hash"], token_digest(token)):
        return None
    now = datetime.now(timezone.utc)
    if store.users.touch(row["name"], now, now - TOUCH_EVERY):
        row["last_used"] = now
    return user_view(row)


def _actor() -> str:
    return acting_user.get() or user_actor()


def _check(name: str, role: str | None = None) -> None:
    problems = []
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"user name '{name}': a letter, then letters, digits, '_', '.' or '-' (64 at most)")
    elif name == BOOTSTRAP and role is not None:
        problems.append(f"user name '{BOOTSTRAP}' is the server token's; pick another name")
    if role is not None and role not in ROLE_ORDER:
        problems.append(f"role '{role}': one of {', '.join(ROLE_ORDER)}")
    if problems:
        raise ValidationError(problems)


class UserOps:
    """Mixed into an operations class that has ``conf`` (ServiceConf) and ``store`` (Store)."""

    conf: ServiceConf
    store: Store

    def user_add(self, name: str, role: str) -> dict[str, Any]:
        _check(name, role)
        token, token_id = new_token()
        row = self.store.users.add(name, role, token_id, token_digest(token))
        if row is None:
            raise FedweaveError(f"user '{name}' already exists; remove it first, or rotate its token")
        audit_record(self.conf, "user.add", actor=_actor(), name=name, role=role)
        return {**user_view(row), "token": token}

    def user_list(self) -> list[dict[str, Any]]:
        return [user_view(row) for row in self.store.users.all()]

    def user_remove(self, name: str) -> dict[str, Any]:
        _check(name)
        if not self.store.users.remove(name):
            raise StoreError(f"no user '{name}'")
        audit_record(self.conf, "user.remove", actor=_actor(), name=name)
        return {"name": name, "removed": True}

    def user_rotate(self, name: str) -> dict[str, Any]:
        _check(name)
        token, token_id = new_token()
        row = self.store.users.set_token(name, token_id, token_digest(token))
        if row is None:
            raise StoreError(f"no user '{name}'")
        audit_record(self.conf, "user.rotate", actor=_actor(), name=name)
        return {**user_view(row), "token": token}
