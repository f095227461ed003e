"""Who a request to a party's flow server comes from.

The party's own token: ``server.token`` in service_conf, else the file
``<home>/<server.token_file>`` (created with a random token, mode 0600, on first start,
so a fresh party never serves without one). ``flow init`` on the same machine reads it.
It is the bootstrap admin: a request with it acts as user ``admin``. Everyone else has a
token of their own (``flow user add``, :mod:`flow.ops.users`), with a role.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flow.core.errors import ConfigError
from flow.core.settings import ServiceConf
from flow.ops.users import BOOTSTRAP, authenticate
from flow.store import Store


def token_path(conf: ServiceConf) -> Path:
    path = Path(conf.server.token_file).expanduser()
    return path if path.is_absolute() else conf.home_path / path


def read_token(conf: ServiceConf) -> str | None:
    """The configured token, or None when neither the conf nor the token file has one."""
    if conf.server.token:
        return conf.server.token
    path = token_path(conf)
    if not path.is_file():
        return None
    token = path.read_text().strip()
    if not token:
        raise ConfigError(f"{path}: the server token file is empty")
    return token


def ensure_token(conf: ServiceConf) -> str:
    """The server's token, creating the token file with a random one when there is none."""
    token = read_token(conf)
    if token:
        return token
    path = token_path(conf)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return read_token(conf) or ""
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    return read_token(conf) or ""


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison, so the answer time says nothing about the token."""
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())


def identify(server_token: str, store: Store, given: str | None) -> dict[str, Any] | None:
    """The user a bearer token belongs to (``name``, ``role``...), or None: the server's own
    token is the bootstrap admin :data:`flow.ops.users.BOOTSTRAP`, any other is looked up
    among the users (its hash, compared in constant time)."""
    if not given:
        return None
    if token_matches(server_token, given):
        return {"name": BOOTSTRAP, "role": "admin", "bootstrap": True}
    return authenticate(store, given)
