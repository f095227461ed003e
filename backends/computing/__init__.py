"""Computing backends, looked up by name (``computing_engine`` in the conf)."""

from flow.core.registry import Registry

from .api import Session, Table, partition_of

ENGINES: Registry = Registry(
    "computing",
    {"local": "backends.computing.local:LocalSession", "standalone": "backends.computing.local:LocalSession",
     "spark": "backends.computing.spark:SparkComputing"},
    case_insensitive=True,
)


def create_session(engine: str = "local", **options) -> Session:
    """Start a Session of the named engine; ``options`` are engine-specific."""
    return ENGINES.get(engine)(**options)


__all__ = ["ENGINES", "Session", "Table", "create_session", "partition_of"]
