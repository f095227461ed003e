"""FATE's upload conf (``flow data upload -c``, a testsuite's ``data`` entries) read into the
arguments of :meth:`flow.ops.api.Ops.data_upload`, as FATE reads it: the first column is the
id whatever its name, ``"head": 0`` means no header row, ``"drop": 1`` replaces the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from flow.core.errors import ConfigError

_FALSE = (None, False, 0, "0", "false", "False")


def read_upload_conf(path: Path) -> dict[str, Any]:
    """The upload conf in file ``path``; problems name the file."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:  # a binary file: not JSON
        raise ConfigError(f"{path}: cannot read upload conf: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an upload conf is a JSON object")
    return upload_args(raw, str(path), base=path.parent)


def upload_args(raw: Mapping[str, Any], where: str, base: Path | None = None) -> dict[str, Any]:
    """``data_upload`` keyword arguments (file, namespace, name, partitions, id_column,
    label_column, drop, head) from one FATE upload conf; ``where`` names it in messages and a
    relative ``file`` that does not exist from here is taken from ``base``."""
    missing = [k for k in ("file", "namespace", "table_name") if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    file = Path(raw["file"])
    if not file.is_absolute() and not file.exists() and base is not None:
        file = base / file
    for key in ("extend_sid", "auto_increasing_sid"):
        if raw.get(key) not in _FALSE:
            raise ConfigError(f"{where}: {key}: not supported: generated ids ({key}); give the file an id "
                              "as its first column")
    delimiter = raw.get("id_delimiter") or ","
    if delimiter != ",":
        raise ConfigError(f"{where}: id_delimiter: not supported: {delimiter!r} (only ',')")
    head = str(raw.get("head", 1)) not in ("0", "False", "false")
    return {"file": file, "namespace": raw["namespace"], "name": raw["table_name"],
            "partitions": raw.get("partition"),
            "id_column": raw.get("id_column") or (first_column(where, file) if head else None),
            "label_column": raw.get("label_column") or raw.get("label_name"),
            "drop": bool(raw.get("drop")) or None,  # FATE: "drop": 1 replaces an existing table
            "head": None if head else False}  # FATE: "head": 0, no header row: stored as id -> rest of line


def first_column(where: str, file: Path) -> str:
    """FATE takes a file's first column as the id, whatever its name (``id``, ``idx``, ``sid``)."""
    try:
        with file.open(encoding="utf-8") as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: file: cannot read {file}: {exc}") from None
    first = header.split(",")[0].strip()
    if not first:
        raise ConfigError(f"{where}: file: {file} has no header row")
    return first
