"""Storage engines, looked up by name (``storage_engine`` in the conf)."""

from flow.registry import Registry

from .api import StorageEngine, TableMeta

ENGINES: Registry = Registry(
    "storage", {"localfs": "backends.storage.localfs:LocalFSEngine"}, case_insensitive=True
)


def create_engine(engine: str = "localfs", **options) -> StorageEngine:
    """Open a StorageEngine of the named engine; ``options`` are engine-specific."""
    return ENGINES.get(engine)(**options)


__all__ = ["ENGINES", "StorageEngine", "TableMeta", "create_engine"]
