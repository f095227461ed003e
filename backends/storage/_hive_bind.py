"""Binding existing Hive tables: what is checked at bind time, and again at each read.

A bound table is data the party already keeps in Hive: fedweave never copies it, so it
can change or vanish after the bind. The bind checks the table, its id and label columns
and their types once; each read checks again that the table and the bound columns are
still there, so a job fails with the table or column named, not with a SQL error.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from backends.storage._hive_sql import hive_name, ident, read_type
from backends.storage.api import TableMeta
from flow.core.errors import StorageError

if TYPE_CHECKING:
    from backends.storage.hive import HiveEngine


def source_of(address: str | dict) -> tuple[str, str]:
    """(database, table) from "database.table" or {"database": .., "table": ..}."""
    if isinstance(address, str):
        database, _, table = address.partition(".")
    else:
        database, table = address.get("database", ""), address.get("table", "")
    return ident("database", database), ident("table", table)


def table_exists(engine: "HiveEngine", database: str, table: str) -> bool:
    databases = {d.lower() for (d, *_) in engine._run("SHOW DATABASES", "list databases")}
    return database.lower() in databases and table.lower() in engine._tables(database, table.lower())


def bound_meta(engine: "HiveEngine", namespace: str, name: str, database: str, source: str, id_column: str,
               label_column: str | None, partitions: int | None) -> TableMeta:
    """The meta of ``database.source`` bound as ``namespace/name``: its other columns are
    the table's columns; StorageError naming the table or column when either is missing."""
    label, full = f"{namespace}/{name}", f"{database}.{source}"
    if not table_exists(engine, database, source):
        raise StorageError(f"cannot bind {label}: Hive table {full} does not exist")
    schema = engine._describe(database, source)
    names = [c for c, _ in schema]
    if id_column.lower() not in [n.lower() for n in names]:
        raise StorageError(f"cannot bind {label}: Hive table {full} has no id column '{id_column}'; "
                           f"its columns are {names}")
    id_hive = names[[n.lower() for n in names].index(id_column.lower())]
    columns = [(c, t) for c, t in schema if c != id_hive]
    if label_column is not None and label_column not in [c for c, _ in columns]:
        raise StorageError(f"cannot bind {label}: Hive table {full} has no label column '{label_column}'")
    dtypes = []
    for column, declared in columns:
        ident("column", column)
        dtype = read_type(declared)
        if dtype is None:
            raise StorageError(f"cannot bind {label}: column '{column}' of {full} has type {declared}, "
                               f"which the hive engine cannot read")
        dtypes.append(dtype)
    stats = ", ".join(["COUNT(*)", f"COUNT(`{id_hive}`)", f"COUNT(DISTINCT `{id_hive}`)",
                       f"SUM(CAST(hash({', '.join(f'`{c}`' for c in names)}) AS DECIMAL(38,0)))"])
    total, with_id, distinct, fingerprint = engine._run(f"SELECT {stats} FROM `{database}`.`{source}`",  # noqa: S608 - identifiers checked by ident()
                                                        f"count {full}")[0]
    if with_id != total or distinct != total:
        raise StorageError(f"cannot bind {label}: id column '{id_hive}' of {full} has "
                           f"{total - with_id} NULL and {with_id - distinct} duplicate values")
    return TableMeta(
        namespace=namespace, name=name, engine=engine.engine, id_column=id_hive,
        columns=[c for c, _ in columns], dtypes=dtypes, label_column=label_column, count=total,
        partitions=partitions or engine.bind_partitions,
        sha256=hashlib.sha256(f"{full}|{schema}|{total}|{fingerprint}".encode()).hexdigest(),
        address={"host": engine.host, "port": engine.port, "database": database, "table": source, "id": id_hive,
                 "columns": [c for c, _ in columns], "partition_column": None,
                 "view": f"{engine.database}.{hive_name(namespace, name)}"},
    )


def check_source(engine: "HiveEngine", stored: TableMeta) -> None:
    """Before a bound table is read: its Hive table and every bound column still exist."""
    address, label = stored.address, f"{stored.namespace}/{stored.name}"
    database, table = address["database"], address["table"]
    full = f"{database}.{table}"
    try:  # one round trip when all is well; the listing only to say why it failed
        present = {c.lower() for c, _ in engine._describe(database, table)}
    except StorageError:
        if not table_exists(engine, database, table):
            raise StorageError(f"table {label} is bound to Hive table {full}, which does not exist") from None
        raise
    missing = [c for c in [address["id"], *address["columns"]] if c.lower() not in present]
    if missing:
        raise StorageError(f"table {label}: Hive table {full} has no column {', '.join(repr(c) for c in missing)} "
                           f"(bound with columns {[address['id'], *address['columns']]})")
