"""The storage contract: round trips, meta, atomic replacement, names, CSV import.

Runs once per entry of conftest.STORAGE, reading into a local computing session. The
last section covers what only localfs has (its file layout).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from backends.computing.api import Table, partition_of
from backends.computing.local import LocalSession, LocalTable
from backends.storage import create_engine
from backends.storage.api import TableMeta
from backends.storage.csv_import import import_csv
from backends.storage.localfs import LocalFSEngine
from flow.core.errors import StorageError

NS = "contract"
COLUMNS = ["x", "n", "s", "maybe", "flag"]
ROWS = {
    f"id{i}": (i / 3, i * 1000, f"s{i}", None if i % 7 == 0 else i * 0.5, i % 2 == 0)
    for i in range(50)
}


def meta(name: str = "t", columns=COLUMNS, **kw) -> TableMeta:
    return TableMeta(namespace=NS, name=name, columns=list(columns), **kw)


def rows_of(table: Table) -> dict:
    pairs = [kv for part in table.iter_partitions() for kv in part]
    for i, part in enumerate(table.iter_partitions()):
        assert all(partition_of(k, table.partitions) == i for k, _ in part)
    assert len(dict(pairs)) == len(pairs) == table.count()
    return dict(pairs)


def store(storage, storage_session, rows=ROWS, name="t", partitions=3, **kw) -> TableMeta:
    return storage.engine.write(storage_session.parallelize(rows.items(), partitions), meta(name, **kw))


def temp_entries(storage) -> list[str]:
    finished = {m.name for m in storage.engine.list(NS)}
    return [e for e in storage.raw_entries(NS) if e not in finished]


class ExplodingTable(LocalTable):
    """Gives its first partition, then fails: a writer dying midway."""

    def iter_partitions(self):
        parts = super().iter_partitions()
        yield next(parts)
        raise RuntimeError("disk on fire")


# ---------------------------------------------------------------- round trip and meta


def test_round_trip_preserves_rows_and_types(storage, storage_session):
    stored = store(storage, storage_session)
    got = rows_of(storage.engine.read(stored, storage_session))
    assert got == ROWS
    for key, (x, n, s, maybe, flag) in got.items():
        assert type(key) is str and type(x) is float and type(n) is int and type(s) is str
        assert maybe is None or type(maybe) is float
        assert type(flag) is bool


def test_meta_describes_the_table(storage, storage_session):
    stored = store(storage, storage_session, label_column="flag", extra={"kind": "instances"})
    assert stored.engine == storage.engine.engine
    assert (stored.namespace, stored.name, stored.id_column) == (NS, "t", "id")
    assert stored.count == len(ROWS) and stored.partitions == 3
    assert stored.columns == COLUMNS and stored.label_column == "flag"
    assert stored.dtypes == ["double", "int64", "string", "double", "bool"]
    assert len(stored.sha256) == 64 and int(stored.sha256, 16) >= 0
    assert stored.address and stored.extra == {"kind": "instances"}
    assert stored.feature_columns == ["x", "n", "s", "maybe"]
    assert storage.engine.meta(NS, "t") == stored


def test_read_keeps_the_stored_partitioning(storage, storage_session):
    stored = store(storage, storage_session, partitions=5)
    with LocalSession(partitions=2, workers=1) as other:
        table = storage.engine.read(stored, other)
        assert table.partitions == 5
        assert rows_of(table) == ROWS
        assert rows_of(table.join(other.parallelize(ROWS.items(), 2), lambda a, b: a == b)) == {
            k: True for k in ROWS
        }


def test_sha256_follows_the_data(storage, storage_session):
    first = store(storage, storage_session, name="a")
    same = store(storage, storage_session, name="b")
    changed = dict(ROWS, id3=(0.0, 0, "changed", None, True))
    other = store(storage, storage_session, changed, name="c")
    assert first.sha256 == same.sha256
    assert other.sha256 != first.sha256


def test_int_keys_come_back_as_strings_in_the_same_partitions(storage, storage_session):
    rows = {i: (float(i),) for i in range(30)}
    stored = storage.engine.write(storage_session.parallelize(rows.items(), 4), meta(columns=["v"]))
    table = storage.engine.read(stored, storage_session)
    assert rows_of(table) == {str(k): v for k, v in rows.items()}


def test_empty_table_round_trip(storage, storage_session):
    stored = store(storage, storage_session, {})
    assert stored.count == 0 and stored.partitions == 3
    assert rows_of(storage.engine.read(stored, storage_session)) == {}


def test_table_without_value_columns(storage, storage_session):
    rows = {f"k{i}": () for i in range(10)}
    stored = store(storage, storage_session, rows, columns=[])
    assert stored.columns == [] and stored.count == 10
    assert rows_of(storage.engine.read(stored, storage_session)) == rows


def test_types_unify_across_partitions(storage, storage_session):
    rows = {f"k{i}": (i if i % 2 else i + 0.5, None) for i in range(40)}
    stored = store(storage, storage_session, rows, columns=["num", "nothing"])
    assert stored.dtypes == ["double", "null"]
    got = rows_of(storage.engine.read(stored, storage_session))
    assert got == {k: (float(v[0]), None) for k, v in rows.items()}
    assert all(type(v[0]) is float for v in got.values())


def test_explicit_dtypes_are_applied(storage, storage_session):
    rows = {f"k{i}": (i, str(i)) for i in range(12)}
    stored = store(storage, storage_session, rows, columns=["a", "b"], dtypes=["double", "string"])
    assert stored.dtypes == ["double", "string"]
    got = rows_of(storage.engine.read(stored, storage_session))
    assert got == {k: (float(a), b) for k, (a, b) in rows.items()}
    assert all(type(a) is float for a, _ in got.values())


def test_round_trip_of_100k_rows(storage, storage_session):
    rows = {f"u{i}": (i * 0.25, i, f"n{i % 97}") for i in range(100_000)}
    stored = store(storage, storage_session, rows, columns=["a", "b", "c"], partitions=4)
    assert stored.count == 100_000 and stored.partitions == 4
    assert rows_of(storage.engine.read(stored, storage_session)) == rows


# ---------------------------------------------------------------- replacing


def test_write_replaces_an_earlier_table(storage, storage_session):
    store(storage, storage_session)
    newer = {f"new{i}": (float(i), i, "n", None, False) for i in range(5)}
    stored = store(storage, storage_session, newer, partitions=2)
    assert stored.count == 5 and storage.engine.meta(NS, "t").count == 5
    assert rows_of(storage.engine.read(stored, storage_session)) == newer
    assert temp_entries(storage) == []


def test_failed_write_leaves_the_earlier_table_intact(storage, storage_session):
    before = store(storage, storage_session)
    newer = storage_session.parallelize({f"new{i}": (0.0, i, "n", None, True) for i in range(30)}.items(), 3)
    exploding = ExplodingTable(storage_session, list(newer.iter_partitions()))
    with pytest.raises(StorageError, match="disk on fire"):
        storage.engine.write(exploding, meta())
    assert storage.engine.meta(NS, "t") == before
    assert rows_of(storage.engine.read(before, storage_session)) == ROWS
    assert temp_entries(storage) == []


def test_bad_row_midway_leaves_the_earlier_table_intact(storage, storage_session):
    before = store(storage, storage_session)
    rows = {f"k{i}": (0.0, i, "s", None, True) for i in range(30)}
    last_part = storage_session.parallelize(rows.items(), 3).iter_partitions()
    victim = [part for part in last_part][-1][0][0]
    rows[victim] = (1.0, 2)  # two values for five columns, in the last partition
    with pytest.raises(StorageError, match=victim):
        store(storage, storage_session, rows)
    assert storage.engine.meta(NS, "t") == before
    assert temp_entries(storage) == []


def test_failed_first_write_leaves_nothing(storage, storage_session):
    with pytest.raises(StorageError):
        store(storage, storage_session, {"a": (1.0, 1, "s", None, "not-a-bool?")}, dtypes=["double"] * 5)
    assert not storage.engine.exists(NS, "t")
    assert temp_entries(storage) == []


# ---------------------------------------------------------------- refusals


def test_missing_table(storage, storage_session):
    assert not storage.engine.exists(NS, "ghost")
    with pytest.raises(StorageError, match=f"{NS}/ghost"):
        storage.engine.meta(NS, "ghost")
    with pytest.raises(StorageError, match=f"{NS}/ghost"):
        storage.engine.read(meta("ghost"), storage_session)


@pytest.mark.parametrize(
    "problem, kwargs",
    [
        ("id column", {"columns": ["id", "x"]}),
        ("label", {"columns": ["x"], "label_column": "y"}),
        ("duplicate", {"columns": ["x", "x"]}),
        ("dtypes", {"columns": ["x"], "dtypes": ["double", "double"]}),
        ("dtype", {"columns": ["x"], "dtypes": ["no-such-type"]}),
    ],
)
def test_inconsistent_meta_is_refused(storage, storage_session, problem, kwargs):
    table = storage_session.parallelize([("a", (1.0,) * len(kwargs["columns"]))], 1)
    with pytest.raises(StorageError, match=problem):
        storage.engine.write(table, meta(**kwargs))
    assert not storage.engine.exists(NS, "t")


def test_unstorable_value_names_its_column(storage, storage_session):
    with pytest.raises(StorageError, match="'blob'"):
        store(storage, storage_session, {"a": (1.0, object())}, columns=["x", "blob"])


def test_mixed_types_are_refused(storage, storage_session):
    rows = {f"k{i}": ("text" if i == 5 else float(i),) for i in range(20)}
    with pytest.raises(StorageError, match="'v'"):
        store(storage, storage_session, rows, columns=["v"], partitions=1)
    with pytest.raises(StorageError, match="'v'"):
        store(storage, storage_session, rows, columns=["v"], partitions=4)


BAD_NAMES = ["", "..", "../up", "a/b", "a\\b", ".hidden", "x..y", "sp ace", "/abs", "a" * 201]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_are_refused(storage, storage_session, bad):
    table = storage_session.parallelize([("a", (1.0,))], 1)
    engine = storage.engine
    for ns, name in [(bad, "t"), (NS, bad)]:
        with pytest.raises(StorageError, match="invalid table"):
            engine.write(table, TableMeta(namespace=ns, name=name, columns=["x"]))
        for call in (engine.meta, engine.exists, engine.delete):
            with pytest.raises(StorageError, match="invalid table"):
                call(ns, name)
        with pytest.raises(StorageError, match="invalid table"):
            engine.read(TableMeta(namespace=ns, name=name), storage_session)
    with pytest.raises(StorageError, match="invalid table"):
        engine.list(bad)


def test_list_and_delete(storage, storage_session):
    engine = storage.engine
    assert engine.list() == [] and engine.list(NS) == []
    store(storage, storage_session, name="a")
    store(storage, storage_session, name="b")
    engine.write(storage_session.parallelize([("k", (1.0,))], 1), TableMeta(namespace="other", name="c", columns=["x"]))
    assert [(m.namespace, m.name) for m in engine.list()] == [(NS, "a"), (NS, "b"), ("other", "c")]
    assert [m.name for m in engine.list(NS)] == ["a", "b"]
    assert engine.list("nobody") == []
    engine.delete(NS, "a")
    assert not engine.exists(NS, "a") and engine.exists(NS, "b")
    assert [m.name for m in engine.list(NS)] == ["b"]
    engine.delete(NS, "a")  # absent: no error
    engine.delete("nobody", "x")
    with pytest.raises(StorageError):
        engine.meta(NS, "a")
    assert temp_entries(storage) == []


# ---------------------------------------------------------------- CSV import


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_import(storage, storage_session, tmp_path):
    src = write_csv(
        tmp_path / "d.csv",
        "id,y,x0,x1,city,day\n007,1,0.5,3,Paris,2020-01-01\n8,0,,4,,2020-01-02\n9,1,1.5,5,Oslo,2020-01-03\n",
    )
    stored = import_csv(src, storage.engine, storage_session, NS, "csv", label_column="y", partitions=2)
    assert stored.count == 3 and stored.partitions == 2 and stored.label_column == "y"
    assert stored.columns == ["y", "x0", "x1", "city", "day"]
    assert stored.dtypes == ["int64", "double", "int64", "string", "string"]
    assert storage.engine.meta(NS, "csv") == stored
    assert rows_of(storage.engine.read(stored, storage_session)) == {
        "007": (1, 0.5, 3, "Paris", "2020-01-01"),
        "8": (0, None, 4, None, "2020-01-02"),
        "9": (1, 1.5, 5, "Oslo", "2020-01-03"),
    }


def test_csv_import_columns_as_float(storage, storage_session, tmp_path):
    src = write_csv(tmp_path / "d.csv", "uid,a,b,label\nu1,1,2,1\nu2,3,,0\n")
    stored = import_csv(src, storage.engine, storage_session, NS, "f", id_column="uid", label_column="label",
                        columns_as_float=True)
    assert stored.id_column == "uid" and stored.dtypes == ["double", "double", "int64"]
    got = rows_of(storage.engine.read(stored, storage_session))
    assert got == {"u1": (1.0, 2.0, 1), "u2": (3.0, None, 0)}
    assert all(type(v[0]) is float for v in got.values())


@pytest.mark.parametrize(
    "late_value, dtype, expected",
    [("2.5", "double", 2.5), ("n/a-ish", "string", "n/a-ish"), ("", "int64", None)],
)
def test_csv_types_hold_for_the_whole_file(storage, storage_session, tmp_path, late_value, dtype, expected):
    lines = ["id,v,w"] + [f"r{i},{i},{i % 3}" for i in range(300)] + [f"last,{late_value},1"]
    src = write_csv(tmp_path / "d.csv", "\n".join(lines) + "\n")
    stored = import_csv(src, storage.engine, storage_session, NS, "w", block_size=256)
    assert stored.dtypes == [dtype, "int64"] and stored.count == 301
    got = rows_of(storage.engine.read(stored, storage_session))
    assert got["last"] == (expected, 1)
    assert got["r7"][0] == (7 if dtype == "int64" else (7.0 if dtype == "double" else "7"))


def test_csv_late_column_values_after_empty_start(storage, storage_session, tmp_path):
    lines = ["id,v"] + [f"r{i}," for i in range(300)] + ["last,4"]
    src = write_csv(tmp_path / "d.csv", "\n".join(lines) + "\n")
    stored = import_csv(src, storage.engine, storage_session, NS, "late", block_size=256)
    assert stored.dtypes == ["int64"]
    assert rows_of(storage.engine.read(stored, storage_session))["last"] == (4,)


CSV_ERRORS = {
    "missing file": (None, {}, "does not exist"),
    "empty file": ("", {}, "is empty"),
    "header only": ("id,a\n", {}, "no data rows"),
    "no id column": ("key,a,b\nk1,1,2\n", {}, r"no id column 'id'; the columns are \['key', 'a', 'b'\]"),
    "duplicate id": ("id,a\nx,1\ny,2\nx,3\n", {}, "duplicate id 'x'"),
    "empty id": ("id,a\nx,1\n,2\n", {}, "empty id"),
    "no label column": ("id,a\nx,1\n", {"label_column": "y"}, "no label column 'y'"),
    "duplicate header": ("id,a,a\nx,1,2\n", {}, "duplicate column"),
    "not numeric": ("id,a\nx,1\ny,text\n", {"columns_as_float": True}, "'a'"),
}


@pytest.mark.parametrize("case", sorted(CSV_ERRORS))
def test_csv_import_errors(storage, storage_session, tmp_path, case):
    text, kwargs, message = CSV_ERRORS[case]
    path = tmp_path / "in.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(StorageError, match=message):
        import_csv(path, storage.engine, storage_session, NS, "bad", **kwargs)
    assert not storage.engine.exists(NS, "bad")


def test_csv_import_refuses_bad_table_name(storage, storage_session, tmp_path):
    src = write_csv(tmp_path / "d.csv", "id,a\nx,1\n")
    with pytest.raises(StorageError, match="invalid table"):
        import_csv(src, storage.engine, storage_session, NS, "../escape")


# ---------------------------------------------------------------- localfs only


def test_localfs_layout(tmp_path, storage_session):
    engine = LocalFSEngine(tmp_path)
    t = storage_session.parallelize(ROWS.items(), 3)
    stored = engine.write(t, meta())
    folder = tmp_path / NS / "t"
    assert stored.address == {"path": str(folder)}
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted([f"part-0000{i}.parquet" for i in range(3)] + ["meta.json"])
    digest = hashlib.sha256()
    for i in range(3):
        digest.update((folder / f"part-0000{i}.parquet").read_bytes())
    assert stored.sha256 == digest.hexdigest()
    assert TableMeta.model_validate_json((folder / "meta.json").read_text()) == stored


def test_localfs_missing_table_names_the_path(tmp_path):
    with pytest.raises(StorageError, match=str(tmp_path / NS / "ghost")):
        LocalFSEngine(tmp_path).meta(NS, "ghost")


def test_localfs_detects_a_changed_data_file(tmp_path, storage_session):
    engine = LocalFSEngine(tmp_path)
    stored = engine.write(storage_session.parallelize(ROWS.items(), 2), meta())
    other = engine.write(storage_session.parallelize({"z": (0.0, 0, "z", None, True)}.items(), 2), meta("u"))
    shutil.copy(tmp_path / NS / "u" / "part-00001.parquet", tmp_path / NS / "t" / "part-00001.parquet")
    assert other.sha256 != stored.sha256
    with pytest.raises(StorageError, match="sha256"):
        engine.read(stored, storage_session)


def test_localfs_restores_a_table_left_aside_by_a_dead_writer(tmp_path, storage_session):
    engine = LocalFSEngine(tmp_path)
    stored = engine.write(storage_session.parallelize(ROWS.items(), 2), meta())
    (tmp_path / NS / "t").rename(tmp_path / NS / ".t.old-deadbeef")
    assert engine.exists(NS, "t")
    assert rows_of(engine.read(stored, storage_session)) == ROWS


def test_registry_builds_localfs(tmp_path):
    engine = create_engine("localfs", root=tmp_path / "r")
    assert isinstance(engine, LocalFSEngine) and engine.root == (tmp_path / "r").resolve()
