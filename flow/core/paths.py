"""Paths built from identifiers that must stay under their root.

:func:`safe_join` is the one way an identifier (a job id, role, party id, component,
schedule or model name) becomes part of a path: each part must be one plain name, and
the result, symlinks followed, must lie under ``root``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from flow.core.errors import InvalidIdentifier

_SEPARATORS = ("/", "\\", "\x00")


def _part_problem(part: object) -> str | None:
    if not isinstance(part, str) or not part:
        return "is not a name"
    if part in (".", ".."):
        return "is not a name"
    if any(s in part for s in _SEPARATORS) or (os.altsep and os.altsep in part):
        return "holds a path separator"
    if os.path.isabs(part) or Path(part).drive:
        return "is an absolute path"
    return None


def safe_join(root: str | os.PathLike[str], *parts: str, fields: Sequence[str] | None = None) -> Path:
    """``root / part / ...`` after checking that every part is one plain name (not empty,
    ``.``, ``..``, absolute, nor holding ``/``, ``\\`` or NUL) and that the path, resolved
    with its symlinks, stays under ``root`` resolved. ``fields`` names the parts in the
    error (default ``path``). The path is returned as joined, not resolved."""
    names = list(fields) if fields is not None else []
    base = Path(root)
    path = base
    for i, part in enumerate(parts):
        field = names[i] if i < len(names) else "path"
        why = _part_problem(part)
        if why is not None:
            raise InvalidIdentifier(field, f"{field}: {part!r} {why}; it must be one name under {base}")
        path = path / part
    resolved_root = base.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        prefix, index = base, len(parts) - 1
        for i, part in enumerate(parts):  # the first part whose path leaves root (a symlink)
            prefix = prefix / part
            if not prefix.resolve().is_relative_to(resolved_root):
                index = i
                break
        field = names[index] if index < len(names) else "path"
        raise InvalidIdentifier(field, f"{field}: {parts[index]!r} leads outside {base} (a link)")
    return path


def is_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path``, symlinks followed, lies under ``root`` (resolved too)."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


#: longest file name a client may give (filesystems stop at 255 bytes)
MAX_FILE_NAME = 128


def client_file_name(filename: str, default: str, field: str = "filename") -> str:
    """The base name of a file name a client sent (an upload's, an archive's), usable as one
    file under a folder of ours: not hidden, no separators or NUL, at most MAX_FILE_NAME
    characters; else one line naming ``field``."""
    safe = Path(filename.replace("\\", "/")).name if "\x00" not in filename else ""
    if not filename or not safe:
        safe = default if not filename else ""
    if not safe or safe.startswith(".") or len(safe) > MAX_FILE_NAME:
        shown = filename if len(filename) <= 40 else filename[:40] + "..."
        raise InvalidIdentifier(field, f"{field}: {shown!r} is not a usable file name (a plain name, not "
                                       f"starting with '.', at most {MAX_FILE_NAME} characters)")
    return safe
