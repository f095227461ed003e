"""Tables as Parquet files on the local disk: ``<root>/<namespace>/<name>/``.

The file-tree engine (:mod:`backends.storage.filetree`: one ``part-NNNNN.parquet`` per
partition plus ``meta.json``, written into a temp folder and renamed into place) over
the local filesystem, whose renames in a namespace folder are serialised between
processes by a lock on that folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.storage.filetree import FileTreeStorage
from backends.storage.fs import LocalFileSystem
from flow.core.errors import StorageError


class LocalFSEngine(FileTreeStorage):
    """Parquet tables under ``root``."""

    engine = "localfs"

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the localfs root {self.root}: {exc}") from exc
        self.fs, self.top = LocalFileSystem(), str(self.root)

    @classmethod
    def from_conf(cls, conf: Any) -> "LocalFSEngine":
        """``storage.localfs.root`` if set, else ``<home>/data``."""
        section = conf.storage.get("localfs") or {}
        return cls(section.get("root") or conf.home_path / "data")

    def __repr__(self) -> str:
        return f"LocalFSEngine({str(self.root)!r})"

    def _address(self, target: str) -> dict[str, Any]:
        return {"path": target}
