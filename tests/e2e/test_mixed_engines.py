"""The guest on Spark + Hive, the host on local + localfs: the same model as all-local.

The guest's data is a Hive table the party already has (made here over HiveServer2, not
by fedweave), registered with `flow table bind`: the job's Reader reads it in place and
the job keeps the Reader's output as a view over it, never as a copy.
"""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from .conftest import BREAST, EXAMPLES, FlowCLI, load_example, upload_here, with_lr_params, write_job

pytestmark = pytest.mark.e2e


def make_hive_table(engine, table: str, path: Path) -> None:
    """The CSV as a Hive table of the party's own (id STRING, y INT, features DOUBLE)."""
    with path.open() as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    columns = ", ".join(["`id` STRING", "`y` INT", *(f"`{c}` DOUBLE" for c in header[2:])])
    engine._run(f"CREATE TABLE {table} ({columns}) STORED AS PARQUET", "create the source table")
    values = ", ".join(f"('{r[0]}', {int(r[1])}, {', '.join(r[2:])})" for r in body)
    engine._run(f"INSERT INTO {table} VALUES {values}", "fill the source table")


def hive_type(engine, table: str) -> str:
    described = engine._run(f"DESCRIBE FORMATTED {table}", "describe")
    return dict((k.strip(), (v or "").strip()) for k, v, *_ in described if k)["Type"]


def test_guest_on_spark_and_a_bound_hive_table_matches_all_local(breast, tmp_path: Path):
    from backends.storage.hive import HiveEngine, hive_name
    from tests.contract.backend_hive import hive_address

    host_addr, port = hive_address()
    token = uuid.uuid4().hex[:10]
    database, bank = f"fwe2e_{token}", f"bank_{token}"
    conf, dsl = load_example("hetero_lr")
    # two iterations: an engine that reads or trains differently already gives other weights
    conf = with_lr_params(conf, max_iter=2, encrypt_param={"key_length": 512, "allow_short_key": True})
    c, d = write_job(tmp_path, conf, dsl, tag="local")
    local_job = breast.ok("job", "submit", "-c", c, "-d", d)["job_id"]  # runs while the Hive table is made

    home = tmp_path / "mixed_home"
    home.mkdir()
    (home / "service_conf.yaml").write_text(yaml.safe_dump({
        "storage": {"hive": {"host": host_addr, "port": port, "database": database}},
        "computing": {"engines": {"spark": {"master": "local[2]"}}},
    }))
    mixed = FlowCLI(home)
    admin = HiveEngine(host_addr, port, database=bank)
    try:
        make_hive_table(admin, f"{bank}.breast_guest", EXAMPLES / "data" / "breast_hetero_guest.csv")
        bound = mixed.ok("table", "bind", "--namespace", "experiment", "--name", "breast_hetero_guest",
                         "--engine", "hive", "--address", json.dumps({"database": bank, "table": "breast_guest"}),
                         "--label-column", "y")
        assert bound["engine"] == "hive" and bound["count"] == 569
        assert bound["columns"] == ["y"] + [f"x{i}" for i in range(10)]
        info = mixed.ok("table", "info", "--namespace", "experiment", "--name", "breast_hetero_guest",
                        "--engine", "hive")
        assert info == bound and (info["address"]["database"], info["address"]["table"]) == (bank, "breast_guest")
        assert hive_type(admin, f"{database}.{hive_name('experiment', 'breast_hetero_guest')}") == "VIEW"
        upload_here(home, BREAST[1:])
        conf["job_parameters"]["role"] = {"guest": {"0": {"computing_engine": "spark", "storage_engine": "hive"}}}
        c, d = write_job(tmp_path, conf, dsl, tag="mixed")
        job = mixed.ok("job", "submit", "-c", c, "-d", d, "--wait", timeout=900)
        assert job["status"] == "success", job["reason"]
        reference = breast.wait(local_job)
        assert reference["status"] == "success", reference["reason"]
        for role, pid in (("guest", "9999"), ("host", "10000")):
            got = mixed.ok("tracking", "output-model", "-j", job["job_id"], "-r", role, "-p", pid,
                           "-cpn", "hetero_lr_0")["model"]
            ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", role, "-p", pid,
                            "-cpn", "hetero_lr_0")["model"]
            np.testing.assert_allclose(got["weights"], ref["weights"], atol=1e-6)
        # the Reader's output, kept by the job, is the same source table under a view: no copy
        out_ns = f"output_{job['job_id']}"
        kept = mixed.ok("table", "info", "--namespace", out_ns, "--name", "reader_0.guest.9999.0", "--engine", "hive")
        assert (kept["address"]["database"], kept["address"]["table"]) == (bank, "breast_guest")
        assert kept["sha256"] == bound["sha256"] and kept["count"] == 569
        assert hive_type(admin, f"{database}.{hive_name(out_ns, 'reader_0.guest.9999.0')}") == "VIEW"
        assert admin._run(f"SELECT COUNT(*) FROM {bank}.breast_guest", "count") == [(569,)]
        # the guest's predictions live in Hive; tracking reads them from there, same as all-local
        mine = mixed.ok("tracking", "output-data", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                        "-cpn", "hetero_lr_0", "-o", tmp_path / "mixed_out")[0]
        theirs = breast.ok("tracking", "output-data", "-j", reference["job_id"], "-r", "guest", "-p", "9999",
                           "-cpn", "hetero_lr_0", "-o", tmp_path / "local_out")[0]
        assert mine["count"] == theirs["count"] == 569 and mine["header"] == theirs["header"]
        scores = [{r[0]: float(r[-1]) for r in csv.reader(open(o["file"])) if r[0] != "id"} for o in (mine, theirs)]
        assert scores[0].keys() == scores[1].keys()
        np.testing.assert_allclose([scores[0][k] for k in scores[1]], list(scores[1].values()), atol=1e-6)
    finally:
        for db in (database, bank):
            admin._run(f"DROP DATABASE IF EXISTS `{db}` CASCADE", "drop the test database")
        admin.close()
