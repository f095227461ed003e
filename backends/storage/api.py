"""The storage family: named tables ``(namespace, name)`` bound to an engine address.

A stored table is rows: a key (the id column) and a tuple of values aligned with
``TableMeta.columns``. Engines stream partition by partition; none holds a whole
table in one Python object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from backends.computing.api import Session, Table


class TableMeta(BaseModel):
    """What is known of a stored table without reading it."""

    namespace: str
    name: str
    engine: str = "localfs"
    #: engine-specific location, e.g. {"path": "..."} or {"host":..,"database":..,"table":..}
    address: dict[str, Any] = Field(default_factory=dict)
    id_column: str = "id"
    #: the non-id columns, in the order of each row's value tuple
    columns: list[str] = Field(default_factory=list)
    #: arrow type names per column (same order as columns), e.g. "double", "string"
    dtypes: list[str] = Field(default_factory=list)
    label_column: str | None = None
    count: int = 0
    partitions: int = 1
    sha256: str = ""
    created: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    #: free-form extras a writer wants kept (e.g. {"kind": "instances", "type": "train"})
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.columns if c != self.label_column]


class StorageEngine(ABC):
    """Reads and writes a party's own tables on one engine."""

    #: registry name, e.g. "localfs"
    engine: str = ""

    @classmethod
    def from_conf(cls, conf: Any) -> "StorageEngine":
        """This party's engine from its service conf (``flow.core.settings.ServiceConf``): by
        default the keyword arguments in ``storage.<engine>``."""
        return cls(**dict(conf.storage.get(cls.engine) or {}))

    @abstractmethod
    def write(self, table: Table, meta: TableMeta) -> TableMeta:
        """Store ``table`` (values are row tuples aligned with ``meta.columns``) under
        ``meta.namespace/meta.name``, replacing any earlier table of that name only once
        the new one is complete. Returns the meta as stored (count, sha256, address)."""

    @abstractmethod
    def read(self, meta: TableMeta, session: Session) -> Table:
        """The stored rows as a Table in ``session``."""

    @abstractmethod
    def meta(self, namespace: str, name: str) -> TableMeta:
        """Meta of a stored table; StorageError naming it if it does not exist."""

    @abstractmethod
    def exists(self, namespace: str, name: str) -> bool:
        """Whether the table exists."""

    @abstractmethod
    def delete(self, namespace: str, name: str) -> None:
        """Remove a table; no error if it is absent."""

    @abstractmethod
    def list(self, namespace: str | None = None) -> list[TableMeta]:
        """Known tables, optionally of one namespace."""

    def bind(self, namespace: str, name: str, address: dict[str, Any], **schema: Any) -> TableMeta:
        """Register data that already lives in this engine (a Hive table, an HDFS path) as
        table ``namespace/name`` without copying it. ``schema`` may name ``id_column`` and
        ``label_column``. Engines that hold only their own files cannot."""
        from flow.core.errors import StorageError

        raise StorageError(f"the {self.engine} engine cannot bind existing data; upload it instead")
