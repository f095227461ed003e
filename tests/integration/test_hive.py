"""The hive engine against a real HiveServer2 (the Spark Thrift Server of tests/hive_server.py).

What the contract suite cannot say: binding an existing Hive table without copying it,
the errors for missing tables and columns, Hive-safe names, the LOAD DATA path, and a
1,000,000-row round trip (``slow``; run it with ``FEDWEAVE_SLOW=1 pytest -m slow
tests/integration/test_hive.py``).
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from backends.computing.api import partition_of
from backends.computing.local import LocalSession
from backends.storage import create_engine
from backends.storage.api import TableMeta
from backends.storage.hive import HiveEngine, hive_name
from flow.core.errors import StorageError
from tests.contract.backend_hive import hive_address, hive_engine

NS = "it"


@pytest.fixture(scope="module")
def session():
    with LocalSession(partitions=3, workers=2) as s:
        yield s


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with hive_engine(tmp_path_factory.mktemp("hive")) as e:
        yield e


@pytest.fixture(scope="module")
def source(engine):
    """A Hive table made by someone else: other database, other types, no fedweave meta."""
    db = f"src_{uuid.uuid4().hex[:10]}"
    engine._run(f"CREATE DATABASE {db}", "create")
    engine._run(f"CREATE TABLE {db}.customers (uid STRING, age INT, income DOUBLE, city STRING, "
                f"score DECIMAL(10,2), joined DATE, churn BOOLEAN) STORED AS PARQUET", "create")
    rows = ", ".join(f"('c{i}', {20 + i}, {i * 1.5}, 'city{i % 3}', {i}.25, "
                     f"DATE '2024-01-{i + 1:02d}', {str(i % 2 == 0).lower()})"
                     for i in range(12))
    engine._run(f"INSERT INTO {db}.customers VALUES {rows}", "insert")
    yield db
    engine._run(f"DROP DATABASE {db} CASCADE", "drop")


def rows_of(table) -> dict:
    pairs = []
    for i, part in enumerate(table.iter_partitions()):
        assert all(partition_of(k, table.partitions) == i for k, _ in part)
        pairs.extend(part)
    assert len(dict(pairs)) == len(pairs)
    return dict(pairs)


def hive_rows(engine, sql: str) -> list[tuple]:
    return engine._run(sql, "query")


# ---------------------------------------------------------------- bind


def test_bind_registers_a_hive_table_without_copying_it(engine, source, session):
    meta = engine.bind(NS, "customers", f"{source}.customers", id_column="uid", label_column="churn", partitions=3)
    assert meta.columns == ["age", "income", "city", "score", "joined", "churn"]
    assert meta.dtypes == ["int32", "double", "string", "double", "string", "bool"]
    assert meta.count == 12 and meta.partitions == 3 and len(meta.sha256) == 64
    assert (meta.address["database"], meta.address["table"]) == (source, "customers")
    assert engine.meta(NS, "customers") == meta and engine.exists(NS, "customers")
    got = rows_of(engine.read(meta, session))
    assert got["c3"] == (23, 4.5, "city0", 3.25, "2024-01-04", False)
    assert len(got) == 12
    # no copy: the fedweave name is a view, and rows added to the source show through it
    described = hive_rows(engine, f"DESCRIBE FORMATTED {engine.database}.{hive_name(NS, 'customers')}")
    assert dict((k.strip(), (v or "").strip()) for k, v, *_ in described if k)["Type"] == "VIEW"
    engine._run(f"CREATE TABLE {source}.live AS SELECT * FROM {source}.customers", "copy")
    live = engine.bind(NS, "live", f"{source}.live", id_column="uid", partitions=2)
    engine._run(f"INSERT INTO {source}.live VALUES ('late', 99, 0.5, 'x', 1.00, DATE '2024-02-01', true)", "insert")
    assert rows_of(engine.read(live, session))["late"][0] == 99


def test_bound_sha256_follows_the_source(engine, source):
    first = engine.bind(NS, "b1", f"{source}.customers", id_column="uid")
    again = engine.bind(NS, "b2", {"database": source, "table": "customers"}, id_column="uid")
    assert first.sha256 == again.sha256
    engine._run(f"CREATE TABLE {source}.fewer AS SELECT * FROM {source}.customers WHERE uid <> 'c1'", "copy")
    assert engine.bind(NS, "b3", f"{source}.fewer", id_column="uid").sha256 != first.sha256


def test_delete_of_a_bound_table_keeps_the_source(engine, source):
    engine.bind(NS, "gone", f"{source}.customers", id_column="uid")
    engine.delete(NS, "gone")
    assert not engine.exists(NS, "gone")
    assert hive_rows(engine, f"SELECT COUNT(*) FROM {source}.customers") == [(12,)]


def test_write_replaces_a_bound_table_and_bind_replaces_a_written_one(engine, source, session):
    engine.bind(NS, "swap", f"{source}.customers", id_column="uid")
    written = engine.write(session.parallelize([("k", (1.0,))], 2), TableMeta(namespace=NS, name="swap", columns=["v"]))
    assert rows_of(engine.read(written, session)) == {"k": (1.0,)}
    bound = engine.bind(NS, "swap", f"{source}.customers", id_column="uid")
    assert engine.meta(NS, "swap") == bound and rows_of(engine.read(bound, session))["c0"][0] == 20
    swap = hive_name(NS, "swap")
    assert [t for t in engine._tables(engine.database) if t.startswith(swap)] == [swap]


@pytest.mark.parametrize("address", ["nowhere_db.customers", "{db}.no_such_table"])
def test_bind_of_a_missing_table_names_it(engine, source, address):
    address = address.format(db=source)
    with pytest.raises(StorageError, match=address.replace(".", r"\.") + " does not exist"):
        engine.bind(NS, "missing", address, id_column="uid")
    assert not engine.exists(NS, "missing")


@pytest.mark.parametrize("kwargs, column", [({"id_column": "customer_id"}, "'customer_id'"),
                                            ({"id_column": "uid", "label_column": "label"}, "'label'")])
def test_bind_of_a_missing_column_names_it(engine, source, kwargs, column):
    with pytest.raises(StorageError, match=column):
        engine.bind(NS, "nocol", f"{source}.customers", **kwargs)
    assert not engine.exists(NS, "nocol")


def test_bind_refuses_ids_that_are_not_keys(engine, source):
    engine._run(f"CREATE TABLE {source}.dupes (k STRING, v DOUBLE) STORED AS PARQUET", "create")
    engine._run(f"INSERT INTO {source}.dupes VALUES ('a', 1.0), ('a', 2.0), (NULL, 3.0)", "insert")
    with pytest.raises(StorageError, match=r"'k' .* 1 NULL and 1 duplicate"):
        engine.bind(NS, "dupes", f"{source}.dupes", id_column="k")


def test_writing_an_unchanged_read_of_a_bound_table_binds_it_again(engine, source, session):
    """What a job does with a Reader's output: stored under a new name, never copied."""
    bound = engine.bind(NS, "kept", f"{source}.customers", id_column="uid", label_column="churn", partitions=3)
    read = engine.read(bound, session)
    out = engine.write(read, bound.model_copy(update={"namespace": "out", "name": "reader_0", "extra": {"k": 1}}))
    assert (out.address["database"], out.address["table"]) == (source, "customers")
    assert out.sha256 == bound.sha256 and out.count == 12 and out.extra == {"k": 1}
    view = hive_name("out", "reader_0")
    described = hive_rows(engine, f"DESCRIBE FORMATTED {engine.database}.{view}")
    assert dict((k.strip(), (v or "").strip()) for k, v, *_ in described if k)["Type"] == "VIEW"
    assert engine.meta("out", "reader_0") == out
    assert rows_of(engine.read(out, session)) == rows_of(read)
    # anything that changed the rows (or their columns) is written as a table of its own
    changed = engine.write(read.map_values(lambda row: row), bound.model_copy(update={"namespace": "out", "name": "m"}))
    assert changed.address["table"] == hive_name("out", "m") and changed.address["partition_column"]
    renamed = bound.model_copy(update={"namespace": "out", "name": "n", "label_column": None,
                                       "columns": [f"c{j}" for j in range(6)]})
    assert engine.write(read, renamed).address["table"] == hive_name("out", "n")
    assert rows_of(engine.read(engine.meta("out", "n"), session)) == rows_of(read)
    engine.delete("out", "reader_0")
    assert hive_rows(engine, f"SELECT COUNT(*) FROM {source}.customers") == [(12,)]


def test_reading_a_bound_table_whose_source_changed_names_table_and_column(engine, source, session):
    engine._run(f"CREATE TABLE {source}.shrinking AS SELECT uid, age, city FROM {source}.customers", "copy")
    bound = engine.bind(NS, "shrinking", f"{source}.shrinking", id_column="uid")
    engine._run(f"DROP TABLE {source}.shrinking", "drop")
    engine._run(f"CREATE TABLE {source}.shrinking AS SELECT uid, age FROM {source}.customers", "copy")
    with pytest.raises(StorageError, match=rf"{NS}/shrinking: Hive table {source}\.shrinking has no column 'city'"):
        engine.read(bound, session)
    engine._run(f"DROP TABLE {source}.shrinking", "drop")
    with pytest.raises(StorageError, match=rf"bound to Hive table {source}\.shrinking, which does not exist"):
        engine.read(bound, session)


def test_bind_refuses_unreadable_types_and_bad_identifiers(engine, source):
    engine._run(f"CREATE TABLE {source}.nested (k STRING, tags ARRAY<STRING>) STORED AS PARQUET", "create")
    with pytest.raises(StorageError, match="'tags'.*array<string>"):
        engine.bind(NS, "nested", f"{source}.nested", id_column="k")
    with pytest.raises(StorageError, match="invalid Hive table"):
        engine.bind(NS, "evil", f"{source}.customers; DROP TABLE x", id_column="uid")


# ---------------------------------------------------------------- names, config, paths


def test_hive_names_are_safe_distinct_identifiers():
    names = [hive_name("ns", n) for n in ["My-Table.v2", "my-table.v2", "my_table_v2", "my__table", "a" * 200]]
    assert len(set(names)) == len(names)
    assert all(n.islower() or n.replace("_", "").isdigit() for n in names)
    assert all(len(n) <= 100 and n.replace("_", "a").isalnum() for n in names)
    with pytest.raises(StorageError, match="invalid table"):
        hive_name("ns", "x;drop")


def test_odd_names_and_columns_round_trip(engine, session):
    columns = ["Value", "value", "two words", "fw_part"]
    rows = {f"k{i}": (float(i), i, f"t'{i}\\", i % 2 == 0) for i in range(20)}
    meta = TableMeta(namespace="Odd-Space", name="My.Table-1", id_column="Key Col", columns=columns)
    stored = engine.write(session.parallelize(rows.items(), 2), meta)
    assert stored.address["columns"] == ["c0", "c1", "c2", "c3"]
    assert rows_of(engine.read(stored, session)) == rows
    assert [m.name for m in engine.list("Odd-Space")] == ["My.Table-1"]


def test_meta_is_kept_in_hive_for_a_new_engine(engine, session):
    stored = engine.write(session.parallelize([("a", (1,))], 1), TableMeta(namespace=NS, name="kept", columns=["n"]))
    host, port = hive_address()
    other = create_engine("hive", host=host, port=port, database=engine.database)
    try:
        assert other.meta(NS, "kept") == stored
        assert rows_of(other.read(stored, session)) == {"a": (1,)}
    finally:
        other.close()


def test_load_data_path_round_trip(tmp_path, session):
    rows = {f"r{i}": (i if i % 3 else None, float(i) if i < 20 else i + 0.5, f"s{i}") for i in range(40)}
    with hive_engine(tmp_path, staging_dir=tmp_path / "staging") as loader:
        stored = loader.write(session.parallelize(rows.items(), 4),
                              TableMeta(namespace=NS, name="l", columns=["a", "b", "c"]))
        assert stored.dtypes == ["int64", "double", "string"]
        assert rows_of(loader.read(stored, session)) == rows
        assert list((tmp_path / "staging").iterdir()) == []  # local files removed


@pytest.mark.parametrize("dialect", ["spark", "hive"])
def test_many_batches_go_through_the_staging_table(tmp_path, session, dialect):
    rows = {f"r{i}": (i, None, f"it's \\ {i}\n") for i in range(25)}
    with hive_engine(tmp_path, batch_rows=7, dialect=dialect) as small:
        stored = small.write(session.parallelize(rows.items(), 3),
                             TableMeta(namespace=NS, name="s", columns=["a", "b", "c"]))
        assert stored.dtypes == ["int64", "null", "string"] and rows_of(small.read(stored, session)) == rows
        assert small._tables(small.database) == [hive_name(NS, "s")]


def test_unreachable_server_and_bad_database_are_storage_errors():
    with pytest.raises(StorageError, match="invalid Hive database"):
        HiveEngine("127.0.0.1", 1, database="no-dashes")
    from tests.hive_server import free_port

    port = free_port()
    with pytest.raises(StorageError, match=f"127.0.0.1:{port}"):
        HiveEngine("127.0.0.1", port)


# ---------------------------------------------------------------- a million rows


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("FEDWEAVE_SLOW"),
                    reason="set FEDWEAVE_SLOW=1 to run the 1,000,000-row round trip")
@pytest.mark.parametrize("path", ["load", "insert"])
def test_million_row_round_trip(tmp_path, path):
    n = 1_000_000
    options = {"staging_dir": tmp_path / "staging"} if path == "load" else {}
    with hive_engine(tmp_path, **options) as big, LocalSession(partitions=4, workers=2) as s:
        table = s.parallelize(((f"u{i}", (i * 0.25, i, f"n{i % 97}")) for i in range(n)), 4)
        start = time.perf_counter()
        stored = big.write(table, TableMeta(namespace=NS, name="million", columns=["a", "b", "c"]))
        wrote = time.perf_counter() - start
        back = big.read(stored, s)
        count = sum(len(part) for part in back.iter_partitions())
        read = time.perf_counter() - start - wrote
        print(f"\nhive {path} path, {n:,} rows: write {wrote:.1f} s ({n / wrote:,.0f} rows/s), "
              f"read {read:.1f} s ({n / read:,.0f} rows/s)")
        assert stored.count == count == n
        assert back.filter(lambda k, v: k == "u123456").collect().__next__()[1] == (123456 * 0.25, 123456, "n72")
