"""Storage engines, looked up by name (``storage_engine`` in the conf)."""

from flow.core.registry import Registry

from .api import StorageEngine, TableMeta

ENGINES: Registry = Registry(
    "storage",
    {
        "localfs": "backends.storage.localfs:LocalFSEngine",
        "hdfs": "backends.storage.hdfs:HdfsEngine",
        "hive": "backends.storage.hive:HiveEngine",
    },
    case_insensitive=True,
)


def create_engine(engine: str = "localfs", **options) -> StorageEngine:
    """Open a StorageEngine of the named engine; ``options`` are engine-specific."""
    return ENGINES.get(engine)(**options)


def engine_from_conf(conf, engine: str | None = None) -> StorageEngine:
    """This party's engine named ``engine`` (default: the conf's default storage engine)."""
    return ENGINES.get(engine or conf.default_engines.storage).from_conf(conf)


__all__ = ["ENGINES", "StorageEngine", "TableMeta", "create_engine", "engine_from_conf"]
