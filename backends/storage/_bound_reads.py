"""Which Tables an engine read from bound data, so that writing one back does not copy it.

A job keeps every component's output in the party's storage, the Reader's included: for
a table bound to data the party already keeps (a Hive table, files on HDFS) that would
copy the data, which binding exists to avoid. An engine remembers each Table it made by
reading a bound table; Tables are immutable (every operation makes a new one), so
writing that very object means writing the same rows, and the engine binds the same
source under the new name instead.
"""

from __future__ import annotations

import weakref
from datetime import datetime, timezone

from backends.computing.api import Table
from backends.storage.api import TableMeta


class BoundReads:
    """Tables read from bound tables -> their meta, held weakly (a Table's life is its job's)."""

    def __init__(self) -> None:
        self._reads: weakref.WeakKeyDictionary[Table, TableMeta] = weakref.WeakKeyDictionary()

    def remember(self, table: Table, meta: TableMeta) -> Table:
        self._reads[table] = meta
        return table

    def source(self, table: Table, meta: TableMeta) -> TableMeta | None:
        """The bound table ``table`` was read from, if ``meta`` keeps its rows' shape."""
        try:
            source = self._reads.get(table)
        except TypeError:  # an unhashable Table: never one of ours
            return None
        if source is None or meta.id_column != source.id_column or list(meta.columns) != source.columns \
                or (meta.dtypes and list(meta.dtypes) != source.dtypes):
            return None
        return source

    def rebound(self, table: Table, meta: TableMeta) -> TableMeta | None:
        """``meta`` as a second binding of the source ``table`` was read from, or None when
        ``table`` is not an unchanged read of a bound table (the rows must be written)."""
        source = self.source(table, meta)
        if source is None:
            return None
        return source.model_copy(update={
            "namespace": meta.namespace, "name": meta.name, "label_column": meta.label_column,
            "extra": dict(meta.extra), "created": datetime.now(timezone.utc)})

    def __reduce__(self):  # an engine sent elsewhere starts with none
        return BoundReads, ()
