"""Bad input on the Spark, Hive and HDFS engines ends the task, and `flow job query` at the
initiator says which table, column, path or master was wrong.

Each case is one small job: a Reader on the guest only (the failure is the guest's own,
so no other party is needed), with the guest's engines set per job as a user would.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.conftest import service_unavailable

from .conftest import FlowCLI, write_job

pytestmark = pytest.mark.e2e

NS = "experiment"
DSL = {"components": {"reader_0": {"module": "Reader", "output": {"data": ["data"]}}}}


def home_with(tmp_path: Path, service: dict) -> FlowCLI:
    home = tmp_path / "home"
    home.mkdir()
    (home / "service_conf.yaml").write_text(yaml.safe_dump(service))
    return FlowCLI(home)


def failed_reader_job(flow: FlowCLI, tmp_path: Path, table: str, engines: dict) -> tuple[str, dict]:
    """Run a guest-only Reader job on ``table``; the initiator's `flow job query` of it,
    which must say failed, and the reader task's reason."""
    conf = {"dsl_version": 2, "initiator": {"role": "guest", "party_id": 9999}, "role": {"guest": [9999]},
            "job_parameters": {"common": {"computing_partitions": 2, "timeout": 180},
                               "role": {"guest": {"0": engines}}},
            "component_parameters": {"role": {"guest": {"0": {"reader_0": {
                "table": {"namespace": NS, "name": table}}}}}}}
    c, d = write_job(tmp_path, conf, DSL)
    job = flow("job", "submit", "-c", c, "-d", d, "--wait", timeout=300)
    assert job.code != 0 and job.data["status"] == "failed", job
    detail = flow.ok("job", "query", "-j", job.data["job_id"])
    assert detail["status"] == "failed"
    task = next(t for t in detail["tasks"] if t["component"] == "reader_0")
    assert task["status"] == "failed" and task["reason"] in detail["reason"], detail
    return detail["reason"], task


# ---------------------------------------------------------------- Hive


@pytest.fixture(scope="module")
def hive(tmp_path_factory) -> Iterator[tuple[FlowCLI, object, str]]:
    """A FLOW_HOME whose Hive is the test HiveServer2, that party's engine, and a database
    of its own data (dropped afterwards) where each test makes its source table."""
    from backends.storage.hive import HiveEngine
    from tests.contract.backend_hive import hive_address

    host, port = hive_address()
    token = uuid.uuid4().hex[:10]
    party = HiveEngine(host, port, database=f"fwe2e_{token}")
    flow = home_with(tmp_path_factory.mktemp("hive"), {"storage": {"hive": {
        "host": host, "port": port, "database": party.database}}})
    try:
        yield flow, party, f"bank_{token}"
    finally:
        for db in (f"bank_{token}", party.database):
            party._run(f"DROP DATABASE IF EXISTS `{db}` CASCADE", "drop")
        party.close()


def bound_source(hive, name: str, view: bool = False) -> str:
    """``bank.<name>`` (id, y, x0, x1: a table, or a view over one), bound as
    experiment/<name> (as `flow table bind` does; the command itself runs in
    test_mixed_engines and in the HDFS case below)."""
    _, party, bank = hive
    party._run(f"CREATE DATABASE IF NOT EXISTS {bank}", "create")
    table = f"{name}_rows" if view else name
    party._run(f"CREATE TABLE {bank}.{table} STORED AS PARQUET AS SELECT * FROM VALUES ('a', 1, 0.5D, 1.5D), "
               f"('b', 0, 2.5D, -1.0D) AS t(id, y, x0, x1)", "create")
    if view:
        party._run(f"CREATE VIEW {bank}.{name} AS SELECT * FROM {bank}.{table}", "create")
    bound = party.bind(NS, name, {"database": bank, "table": name}, label_column="y")
    assert bound.count == 2 and bound.address["table"] == name and bound.columns == ["y", "x0", "x1"]
    return f"{bank}.{name}"


def test_hive_table_gone_since_bind_fails_the_task_naming_it(hive, tmp_path: Path):
    source = bound_source(hive, "gone")
    hive[1]._run(f"DROP TABLE {source}", "drop")
    reason, _ = failed_reader_job(hive[0], tmp_path, "gone", {"storage_engine": "hive"})
    assert f"table {NS}/gone is bound to Hive table {source}, which does not exist" in reason


def test_hive_column_missing_fails_the_task_naming_it(hive, tmp_path: Path):
    source = bound_source(hive, "narrowed", view=True)
    hive[1]._run(f"CREATE OR REPLACE VIEW {source} AS SELECT id, y, x0 FROM {source}_rows", "narrow")  # x1 dropped
    reason, _ = failed_reader_job(hive[0], tmp_path, "narrowed", {"storage_engine": "hive"})
    assert f"table {NS}/narrowed: Hive table {source} has no column 'x1'" in reason


# ---------------------------------------------------------------- HDFS


def test_hdfs_path_without_permission_fails_the_task_naming_it(tmp_path: Path):
    """The bound file belongs to the service's user; the party reads as an ordinary user of its
    own (never HDFS's superuser, which permission checks do not apply to, whatever user the
    cluster under test gives), so taking the file's permissions away must fail the read."""
    from backends.storage.hdfs import HdfsEngine
    from tests.contract.backend_hdfs import hdfs_service

    token = uuid.uuid4().hex
    source = f"/tmp/fedweave-bank/{token}/guest.csv"
    reader = f"fedweave-reader-{token[:8]}"  # a made-up user: no superuser, in no group
    with hdfs_service() as (url, user):
        assert reader != user
        owner = HdfsEngine(url, base=f"/tmp/fedweave-e2e/{token}", user=user)
        owner.client.write(source, data=b"id,y,x0\na,1,0.5\nb,0,2.5\n")
        owner.client.set_permission(owner.base, "777")  # the party's tables (meta.json) go there
        party = HdfsEngine(url, base=owner.base, user=reader)
        flow = home_with(tmp_path, {"storage": {"hdfs": {"url": url, "user": reader, "base": owner.base}}})
        try:
            bound = flow.ok("table", "bind", "--namespace", NS, "--name", "guest", "--engine", "hdfs",
                            "--address", json.dumps({"path": source}), "--label-column", "y")
            info = flow.ok("table", "info", "--namespace", NS, "--name", "guest", "--engine", "hdfs")
            assert info == bound and info["address"]["path"] == source and info["count"] == 2
            owner.client.set_permission(source, "000")
            reason, _ = failed_reader_job(flow, tmp_path, "guest", {"storage_engine": "hdfs"})
        finally:
            owner.client.set_permission(source, "644")
            owner.client.delete(source.rsplit("/", 1)[0], recursive=True)
            for name in party.client.list(owner.base):  # the party's own folders: only it may empty them
                party.client.delete(f"{owner.base}/{name}", recursive=True)
            owner.client.delete(owner.base, recursive=True)
    assert f"hdfs path {source}" in reason and "permission denied" in reason, reason
    assert f"user={reader}" in reason, reason  # denied to the party's user, as configured


# ---------------------------------------------------------------- Spark


def test_unreachable_spark_master_fails_the_task_naming_it(tmp_path: Path):
    from tests.contract.backend_spark import available
    from tests.hive_server import free_port

    if not available():
        service_unavailable("Spark (pyspark and a Java runtime)")
    master = f"spark://127.0.0.1:{free_port()}"  # nobody listens there
    flow = home_with(tmp_path, {"computing": {"engines": {"spark": {"startup_timeout": 60}}}})
    data = tmp_path / "guest.csv"
    data.write_text("id,y,x0\na,1,0.5\nb,0,2.5\n")
    flow.upload(data, "guest", label="y")
    reason, _ = failed_reader_job(flow, tmp_path, "guest", {"computing_engine": "spark",
                                                            "spark_run": {"master": master}})
    assert f"Spark master {master} is unreachable" in reason, reason
