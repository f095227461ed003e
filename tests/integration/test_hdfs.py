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
from flow.errors import StorageError
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
    with pytest.raises(StorageError, match=f"hdfs path {folder}/.*permission denied.*Permission denied: user={engine.user}"):
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
    engine = create_engine("hdfs", url=[f"http://127.0.0.1:{free_port()}", url], base=f"/tmp/fedweave-it/{uuid.uuid4().hex}",
                           user=user)
    try:
        assert rows_of(engine.read(write(engine, session), session)) == ROWS
    finally:
        engine.client.delete(engine.base, recursive=True)


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
