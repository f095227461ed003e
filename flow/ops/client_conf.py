"""The CLI's pointer to a flow server (``<home>/cli.yaml``, written by ``flow init``).

Kept apart from :mod:`flow.ops.remote` so that reading it, which every command does to
choose between standalone and client mode, needs neither httpx nor the HTTP client.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from flow.core.errors import ConfigError

#: the CLI's config under the home: {ip, port, token}; absent = standalone
CLIENT_FILE = "cli.yaml"


def client_file(home: Path) -> Path:
    return home / CLIENT_FILE


def load_client_conf(home: Path) -> dict[str, Any] | None:
    """The server this home's CLI talks to, or None (standalone)."""
    path = client_file(home)
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    missing = [k for k in ("ip", "port", "token") if not raw.get(k)]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)} (run flow init --ip --port --token again)")
    return raw


def save_client_conf(home: Path, ip: str, port: int, token: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = client_file(home)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the API token
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump({"ip": ip, "port": int(port), "token": token}, fh)
    return path
