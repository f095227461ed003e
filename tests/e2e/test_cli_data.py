"""`flow data` / `flow table` / `flow job logs` as a user runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .conftest import EXAMPLES, load_example, write_job


def test_fate_upload_conf_info_and_download_round_trip(flow, tmp_path: Path):
    conf = tmp_path / "upload_conf.json"
    conf.write_text(json.dumps({"file": str(EXAMPLES / "data" / "breast_hetero_host.csv"), "head": 1,
                                "partition": 3, "namespace": "experiment", "table_name": "host_t"}))
    up = flow.ok("data", "upload", "-c", conf)
    assert up["count"] == 569 and up["partitions"] == 3
    info = flow.ok("table", "info", "--namespace", "experiment", "--name", "host_t")
    assert info["engine"] == "localfs" and info["count"] == 569 and len(info["sha256"]) == 64
    assert info["columns"] == [f"x{i}" for i in range(20)]
    out = tmp_path / "back.csv"
    assert flow.ok("data", "download", "--namespace", "experiment", "--name", "host_t", "-o", out)["count"] == 569
    with (EXAMPLES / "data" / "breast_hetero_host.csv").open() as fh:
        original = {r["id"]: r for r in csv.DictReader(fh)}
    with out.open() as fh:
        back = {r["id"]: r for r in csv.DictReader(fh)}
    assert back.keys() == original.keys()
    some = next(iter(original))
    assert all(abs(float(back[some][c]) - float(original[some][c])) < 1e-12 for c in original[some] if c != "id")


def test_upload_errors_are_one_clear_line(flow, tmp_path: Path):
    res = flow("data", "upload", "-f", tmp_path / "nope.csv", "--namespace", "n", "--name", "t")
    assert res.code != 0 and "nope.csv" in res.err
    bad = tmp_path / "bad.csv"
    bad.write_text("key,x\n1,2\n")
    res = flow("data", "upload", "-f", bad, "--namespace", "n", "--name", "t")
    assert res.code != 0 and "id" in res.out["retmsg"]
    res = flow("table", "info", "--namespace", "n", "--name", "t")
    assert res.code != 0 and "table n/t does not exist" in res.out["retmsg"]


def test_logs_are_prefixed_and_filterable(breast, tmp_path: Path):
    conf, dsl = load_example("hetero_lr")
    conf["component_parameters"]["common"]["hetero_lr_0"].update(
        max_iter=2, encrypt_param={"key_length": 512, "allow_short_key": True})
    c, d = write_job(tmp_path, conf, dsl)
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    res = breast("job", "logs", "-j", job["job_id"], "-r", "host", "-cpn", "intersection_0")
    lines = res.out.get("raw", "").splitlines() if "raw" in res.out else []
    assert res.code == 0 and lines, res
    assert all(line.startswith("[host 10000 intersection_0]") for line in lines)
    assert any("ids shared" in line for line in lines)
    listed = breast.ok("job", "list")
    assert listed[0]["job_id"] == job["job_id"] and listed[0]["status"] == "success"
