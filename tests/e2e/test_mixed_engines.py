"""The guest on Spark + Hive, the host on local + localfs: the same model as all-local."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from .conftest import EXAMPLES, FlowCLI, load_example, with_lr_params, write_job

pytestmark = pytest.mark.e2e


def test_guest_on_spark_and_hive_matches_all_local(breast, tmp_path: Path):
    from tests.contract.backend_hive import hive_address

    host_addr, port = hive_address()
    database = f"fwe2e_{uuid.uuid4().hex[:10]}"
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, max_iter=5, encrypt_param={"key_length": 512})
    c, d = write_job(tmp_path, conf, dsl, tag="local")
    reference = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert reference["status"] == "success"

    home = tmp_path / "mixed_home"
    home.mkdir()
    (home / "service_conf.yaml").write_text(yaml.safe_dump({
        "storage": {"hive": {"host": host_addr, "port": port, "database": database}},
        "computing": {"engines": {"spark": {"master": "local[2]"}}},
    }))
    mixed = FlowCLI(home)
    up = mixed.ok("data", "upload", "-f", EXAMPLES / "data" / "breast_hetero_guest.csv", "--namespace", "experiment",
                  "--name", "breast_hetero_guest", "--label-column", "y", "--engine", "hive")
    assert up["engine"] == "hive" and up["count"] == 569
    mixed.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    info = mixed.ok("table", "info", "--namespace", "experiment", "--name", "breast_hetero_guest", "--engine", "hive")
    assert info["address"]["database"] == database
    conf["job_parameters"]["role"] = {"guest": {"0": {"computing_engine": "spark", "storage_engine": "hive"}}}
    c, d = write_job(tmp_path, conf, dsl, tag="mixed")
    job = mixed.ok("job", "submit", "-c", c, "-d", d, "--wait", timeout=900)
    assert job["status"] == "success", job["reason"]
    try:
        for role, pid in (("guest", "9999"), ("host", "10000")):
            got = mixed.ok("tracking", "output-model", "-j", job["job_id"], "-r", role, "-p", pid,
                           "-cpn", "hetero_lr_0")["model"]
            ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", role, "-p", pid,
                            "-cpn", "hetero_lr_0")["model"]
            np.testing.assert_allclose(got["weights"], ref["weights"], atol=1e-6)
    finally:
        from backends.storage.hive import HiveEngine

        engine = HiveEngine(host_addr, port, database=database)
        engine._run(f"DROP DATABASE IF EXISTS `{database}` CASCADE", "drop the test database")
        engine.close()
