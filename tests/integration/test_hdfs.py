"""The hdfs engine over WebHDFS: permissions, missing paths, layout, recovery, and the
protocol double itself.

Runs against the WebHDFS double of tests/webhdfs_double.py, or a real cluster when
``FEDWEAVE_TEST_HDFS_URL`` is set (the tests marked ``double_only`` then skip: they look
inside the double).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid

import pytest
import requests

from backends.computing.api import partition_of
from backends.computing.local import LocalSession
from backends.storage import create_engine
from backends.storage.api import TableMeta
from backends.storage.hdfs import HdfsEngine
from backends.storage.localfs import LocalFSEngine
from flow.core.errors import StorageError
from tests.contract.backend_hdfs import REAL_URL_ENV, hdfs_service
from tests.hive_server import free_port

NS = "it"
ROWS = {f"id{i}": (i * 0.5, i, f"s{i}") for i in range(40)}
COLUMNS = ["x", "n", "s"]
double_only = pytest.mark.skipif(bool(os.environ.get(REAL_URL_ENV)), reason="looks inside the WebHDFS double")


@pytest.fixture(scope="module")
def session():
    with LocalSession(partitions=3, workers=2) as s:
        yield s


@pytest.fixture
def service():
    with hdfs_service() as (url, user):
        yield url, user


@pytest.fixture
def engine(service):
    url, user = service
    e = HdfsEngine(url, base=f"/tmp/fedweave-it/{uuid.uuid4().hex}", user=user)
    yield e
    e.client.set_permission(e.base, "755")
    for space in e._list(e.base):
        e.client.set_permission(posixpath.join(e.base, space), "755")
    e.client.delete(e.base, recursive=True)


def write(engine, session, name="t", rows=ROWS, partitions=3, namespace=NS) -> TableMeta:
    meta = TableMeta(namespace=namespace, name=name, columns=COLUMNS)
    return engine.write(session.parallelize(rows.items(), partitions), meta)


def rows_of(table) -> dict:
    pairs = []
    for i, part in enumerate(table.iter_partitions()):
        assert all(partition_of(k, table.partitions) == i for k, _ in part)
        pairs.extend(part)
    return dict(pairs)


def temp_free(engine) -> bool:
    return engine._list(posixpath.join(engine.base, NS)) == ["t"]


def skip_if_superuser(engine, folder: str) -> None:
    """A real cluster's superuser passes every permission check: nothing to test then."""
    probe = posixpath.join(folder, "probe")
    try:
        engine.client.makedirs(probe)
    except Exception:
        return
    engine.client.delete(probe)
    pytest.skip(f"user {engine.user} is an HDFS superuser: permissions are not checked")


# ---------------------------------------------------------------- permissions and missing paths


def test_write_without_permission_names_the_path(engine, session):
    folder = posixpath.join(engine.base, "locked")
    engine.client.makedirs(folder)
    engine.client.set_permission(folder, "555")
    skip_if_superuser(engine, folder)
    with pytest.raises(StorageError,
                       match=f"hdfs path {folder}/.*permission denied.*Permission denied: user={engine.user}"):
        write(engine, session, namespace="locked")
    assert engine.list("locked") == []


def test_read_without_permission_names_the_path(engine, session):
    write(engine, session)
    table = engine.path(NS, "t")
    engine.client.set_permission(table, "000")
    try:
        skip_if_superuser(engine, table)
        with pytest.raises(StorageError, match=f"{table}.*permission denied"):
            engine.meta(NS, "t")
    finally:
        engine.client.set_permission(table, "755")


def test_recursive_delete_needs_write_below(engine, session):
    write(engine, session)
    table = engine.path(NS, "t")
    engine.client.set_permission(table, "555")
    try:
        skip_if_superuser(engine, table)
        with pytest.raises(StorageError, match=f"{table}.*permission denied"):
            engine.delete(NS, "t")
        assert engine.exists(NS, "t") and temp_free(engine)
    finally:
        engine.client.set_permission(table, "755")


def test_missing_table_names_its_path(engine, session):
    with pytest.raises(StorageError, match=f"{NS}/ghost does not exist .*{engine.path(NS, 'ghost')}/meta.json"):
        engine.meta(NS, "ghost")


def test_missing_part_file_is_named(engine, session):
    stored = write(engine, session)
    engine.client.delete(posixpath.join(engine.path(NS, "t"), "part-00001.parquet"))
    with pytest.raises(StorageError, match="lacks part-00001.parquet"):
        engine.read(stored, session)


def test_changed_data_file_fails_the_checksum(engine, session):
    stored = write(engine, session, partitions=2)
    write(engine, session, "u", {"z": (0.0, 0, "z")}, partitions=2)
    with engine.client.read(posixpath.join(engine.path(NS, "u"), "part-00001.parquet")) as reader:
        other = reader.read()
    engine.client.write(posixpath.join(engine.path(NS, "t"), "part-00001.parquet"), data=other, overwrite=True)
    with pytest.raises(StorageError, match="sha256"):
        rows_of(engine.read(stored, session))


def test_unreachable_name_node_and_bad_config(service):
    with pytest.raises(StorageError, match="unreachable"):
        HdfsEngine(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(StorageError, match="http"):
        HdfsEngine("namenode:9870")
    with pytest.raises(StorageError, match="absolute"):
        HdfsEngine(service[0], base="relative/path")


def test_second_name_node_takes_over(service, session):
    url, user = service
    engine = create_engine("hdfs", url=[f"http://127.0.0.1:{free_port()}", url],
                           base=f"/tmp/fedweave-it/{uuid.uuid4().hex}", user=user)
    try:
        assert rows_of(engine.read(write(engine, session), session)) == ROWS
    finally:
        engine.client.delete(engine.base, recursive=True)


# ---------------------------------------------------------------- bind: files already on HDFS


SOURCE = {f"c{i}": (20 + i, i * 1.5, f"city{i % 3}", i % 2 == 0) for i in range(30)}


@pytest.fixture
def source(engine):
    """Data someone else keeps on HDFS, outside the engine's base: one Parquet file (ids
    are ints there) and a folder of two CSV files with a _SUCCESS marker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = f"/tmp/fedweave-src/{uuid.uuid4().hex}"
    keys = sorted(SOURCE, key=lambda k: int(k[1:]))
    cols = list(zip(*(SOURCE[k] for k in keys)))
    arrow = pa.table({"age": cols[0], "uid": [int(k[1:]) for k in keys], "income": cols[1], "city": cols[2],
                      "churn": cols[3]})
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    engine.client.write(f"{folder}/customers.parquet", data=sink.getvalue().to_pybytes())
    for part, chunk in (("part-0.csv", keys[:12]), ("part-1.csv", keys[12:])):
        lines = ["uid,age,income,city,churn"] + [f"{k},{SOURCE[k][0]},{SOURCE[k][1]},{SOURCE[k][2]},"
                                                  f"{str(SOURCE[k][3]).lower()}" for k in chunk]
        engine.client.write(f"{folder}/csv/{part}", data="\n".join(lines).encode())
    engine.client.write(f"{folder}/csv/_SUCCESS", data=b"")
    yield folder
    engine.client.delete(folder, recursive=True)


def test_bind_parquet_file_and_csv_folder_without_copying(engine, session, source):
    as_parquet = {f"{int(k[1:])}": v for k, v in SOURCE.items()}  # int ids in the file are read as text
    meta = engine.bind(NS, "p", f"{source}/customers.parquet", id_column="uid", label_column="churn", partitions=3)
    assert (meta.columns, meta.dtypes) == (["age", "income", "city", "churn"], ["int64", "double", "string", "bool"])
    assert meta.count == 30 and meta.partitions == 3 and meta.address["files"] == [f"{source}/customers.parquet"]
    assert engine.meta(NS, "p") == meta and [m.name for m in engine.list(NS)] == ["p"]
    assert rows_of(engine.read(meta, session)) == as_parquet
    assert engine.client.list(engine.path(NS, "p")) == ["meta.json"]  # no copy: the folder holds the meta only
    csv = engine.bind(NS, "c", {"path": f"{source}/csv", "format": "csv"}, id_column="uid")
    assert csv.address["files"] == [f"{source}/csv/part-0.csv", f"{source}/csv/part-1.csv"]
    assert rows_of(engine.read(csv, session)) == SOURCE
    engine.delete(NS, "c")
    assert not engine.exists(NS, "c") and sorted(engine.client.list(f"{source}/csv")) == ["_SUCCESS", "part-0.csv",
                                                                                          "part-1.csv"]


def test_writing_an_unchanged_read_of_a_bound_path_binds_it_again(engine, session, source):
    meta = engine.bind(NS, "b", f"{source}/csv", id_column="uid", label_column="churn")
    read = engine.read(meta, session)
    out = engine.write(read, meta.model_copy(update={"namespace": "out", "name": "reader_0"}))
    assert out.address == meta.address and out.sha256 == meta.sha256
    assert engine.client.list(engine.path("out", "reader_0")) == ["meta.json"]
    assert rows_of(engine.read(out, session)) == SOURCE
    changed = engine.write(read.map_values(lambda row: row), meta.model_copy(update={"namespace": "out", "name": "m"}))
    assert changed.address == {"url": engine.url, "path": engine.path("out", "m")}


@pytest.mark.parametrize("address, kwargs, message", [
    ("{src}/nothing.parquet", {}, "hdfs path {src}/nothing.parquet does not exist"),
    ("{src}/csv", {"id_column": "customer"}, "{src}/csv/part-0.csv has no id column 'customer'"),
    ("{src}/csv", {"label_column": "y"}, "has no label column 'y'"),
    ("{src}/csv/_SUCCESS", {}, "neither .parquet nor .csv"),
    ("relative/path", {}, "absolute"),
])
def test_bind_refuses_missing_paths_and_columns_by_name(engine, source, address, kwargs, message):
    with pytest.raises(StorageError, match=message.format(src=source)):
        engine.bind(NS, "x", address.format(src=source), **{"id_column": "uid", **kwargs})
    assert not engine.exists(NS, "x")


def test_bind_refuses_repeated_ids_mixed_formats_and_paths_inside_base(engine, source):
    engine.client.write(f"{source}/dupes.csv", data=b"uid,v\na,1\na,2\n")
    with pytest.raises(StorageError, match=r"'uid' .* 0 NULL and 1 repeated"):
        engine.bind(NS, "d", f"{source}/dupes.csv", id_column="uid")
    with pytest.raises(StorageError, match=f"hdfs path {source} mixes csv and parquet files"):
        engine.bind(NS, "d", source, id_column="uid")
    with pytest.raises(StorageError, match="inside"):
        engine.bind(NS, "d", engine.base + "/elsewhere.csv", id_column="uid")


def test_bound_data_changed_or_locked_after_bind_is_named(engine, session, source):
    meta = engine.bind(NS, "b", f"{source}/csv", id_column="uid")
    engine.client.write(f"{source}/csv/part-1.csv", data=b"uid,age,income,city,churn\nz,1,1.0,x,true\n",
                        overwrite=True)
    with pytest.raises(StorageError, match=f"hdfs path {source}/csv changed since it was bound"):
        rows_of(engine.read(meta, session))
    engine.client.set_permission(f"{source}/csv", "000")
    try:
        skip_if_superuser(engine, f"{source}/csv")
        with pytest.raises(StorageError, match=f"hdfs path {source}/csv/part-0.csv .*permission denied"):
            engine.read(meta, session)
    finally:
        engine.client.set_permission(f"{source}/csv", "755")


# ---------------------------------------------------------------- layout and recovery


def test_layout_is_localfs_layout(engine, session, tmp_path):
    stored = write(engine, session)
    folder = engine.path(NS, "t")
    assert stored.address == {"url": engine.url, "path": folder}
    assert sorted(engine.client.list(folder)) == ["meta.json"] + [f"part-0000{i}.parquet" for i in range(3)]
    digest = hashlib.sha256()
    local = tmp_path / NS / "t"
    local.mkdir(parents=True)
    for name in sorted(engine.client.list(folder)):
        with engine.client.read(posixpath.join(folder, name)) as reader:
            data = reader.read()
        (local / name).write_bytes(data)
        if name.startswith("part-"):
            digest.update(data)
    assert digest.hexdigest() == stored.sha256
    copied = LocalFSEngine(tmp_path).meta(NS, "t")  # copied file by file, localfs reads it
    assert rows_of(LocalFSEngine(tmp_path).read(copied, session)) == ROWS


def test_table_left_aside_by_a_dead_writer_is_restored(engine, session):
    stored = write(engine, session)
    folder = engine.path(NS, "t")
    engine.client.rename(folder, posixpath.join(posixpath.dirname(folder), ".t.old-deadbeef"))
    assert engine.exists(NS, "t")
    assert rows_of(engine.read(stored, session)) == ROWS


@double_only
def test_data_moves_one_partition_per_request():
    from tests.webhdfs_double import WebHdfsDouble

    with WebHdfsDouble() as double, LocalSession(partitions=4, workers=1) as s:
        engine = HdfsEngine(double.url, base="/data", user="alice")
        stored = write(engine, s, partitions=4)
        double.requests.clear()
        assert rows_of(engine.read(stored, s)) == ROWS
        opens = [r for r in double.requests if r[2] == "OPEN"]
        assert opens.count(("namenode", "GET", "OPEN")) == opens.count(("datanode", "GET", "OPEN")) == 5  # 4 + meta


# ---------------------------------------------------------------- the double speaks WebHDFS


@double_only
def test_double_follows_the_webhdfs_protocol():
    from tests.webhdfs_double import WebHdfsDouble

    with WebHdfsDouble() as double:
        api = f"{double.url}/webhdfs/v1"
        first = requests.put(f"{api}/d/f.txt?op=CREATE&user.name=bob", allow_redirects=False)
        assert first.status_code == 307 and first.headers["Location"].startswith(double.datanode_url)
        assert requests.put(first.headers["Location"], data=b"hello world").status_code == 201
        appended = requests.post(f"{api}/d/f.txt?op=APPEND&user.name=bob", allow_redirects=False)
        assert requests.post(appended.headers["Location"], data=b"!").status_code == 200
        assert requests.get(f"{api}/d/f.txt?op=OPEN&offset=6&length=5&user.name=bob").content == b"world"
        status = requests.get(f"{api}/d/f.txt?op=GETFILESTATUS").json()["FileStatus"]
        assert (status["type"], status["length"], status["owner"], status["permission"]) == ("FILE", 12, "bob", "644")
        listing = requests.get(f"{api}/d?op=LISTSTATUS").json()["FileStatuses"]["FileStatus"]
        assert [s["pathSuffix"] for s in listing] == ["f.txt"]
        missing = requests.get(f"{api}/nope?op=GETFILESTATUS")
        assert missing.status_code == 404 and missing.json()["RemoteException"]["exception"] == "FileNotFoundException"
        not_empty = requests.delete(f"{api}/d?op=DELETE&recursive=false&user.name=bob")
        assert not_empty.status_code == 403
        assert not_empty.json()["RemoteException"]["exception"] == "PathIsNotEmptyDirectoryException"
        assert requests.put(f"{api}/d?op=SETPERMISSION&permission=555&user.name=bob").status_code == 200
        denied = requests.put(f"{api}/d/g?op=MKDIRS&user.name=bob")
        assert denied.status_code == 403 and denied.json()["RemoteException"]["javaClassName"] == (
            "org.apache.hadoop.security.AccessControlException")
        assert 'inode="/d":bob:supergroup:dr-xr-xr-x' in denied.json()["RemoteException"]["message"]
        assert requests.put(f"{api}/d/g?op=MKDIRS&user.name=hdfs").json() == {"boolean": True}  # superuser
        assert requests.put(f"{api}/d?op=RENAME&destination=/e&user.name=hdfs").json() == {"boolean": True}
        assert requests.put(f"{api}/nope?op=RENAME&destination=/x&user.name=hdfs").json() == {"boolean": False}
        assert requests.delete(f"{api}/e?op=DELETE&recursive=true&user.name=hdfs").json() == {"boolean": True}
        assert requests.get(f"{api}/e?op=GETFILESTATUS").status_code == 404
