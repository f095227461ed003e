"""FATE's own intersect suite (../shared/fate-examples/dsl/intersect), run unchanged with
``flow job submit --wait``: DH intersection and exact cardinality (one and two hosts),
checked against the central intersection of the uploaded tables' ids."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.fate_examples import fate_examples


@pytest.fixture(scope="module")
def fate() -> Path:
    return fate_examples()


def _suite(fate: Path) -> dict:
    return json.loads((fate / "dsl" / "intersect" / "intersect_testsuite.json").read_text())


def _ids(fate: Path, table: str) -> set[str]:
    for entry in _suite(fate)["data"]:
        if entry["table_name"] == table:
            with open(fate / entry["file"].removeprefix("examples/"), newline="") as f:
                return {row[0] for row in list(csv.reader(f))[1:]}
    raise AssertionError(table)


@pytest.fixture
def uploaded(flow, fate: Path, tmp_path: Path):
    done = set()  # host_0 and host_1 upload the same table: one home holds every party's tables
    for entry in _suite(fate)["data"]:
        if entry["table_name"] in done:
            continue
        conf = {k: v for k, v in entry.items() if k != "role"}
        conf["file"] = str(fate / entry["file"].removeprefix("examples/"))
        path = tmp_path / f"upload_{entry['table_name']}.json"
        path.write_text(json.dumps(conf))
        flow.ok("data", "upload", "-c", path)
        done.add(entry["table_name"])
    return flow


def _submit(flow, fate: Path, task: str) -> str:
    spec = _suite(fate)["tasks"][task]
    folder = fate / "dsl" / "intersect"
    job = flow.ok("job", "submit", "-c", folder / spec["conf"], "-d", folder / spec["dsl"], "--wait")
    assert job["status"] == "success", job
    return job["job_id"]


def _task(job_id: str, role: str, pid: str) -> list[str]:
    return ["-j", job_id, "-r", role, "-p", pid, "-cpn", "intersect_0"]


def test_dh_intersect_outputs_the_central_intersection(uploaded, fate: Path):
    flow = uploaded
    expected = _ids(fate, "breast_hetero_guest") & _ids(fate, "breast_hetero_host")
    job_id = _submit(flow, fate, "dh_intersect")
    for role, pid in (("guest", "9999"), ("host", "10000")):
        (table,) = flow.ok("component", "output-data-table", *_task(job_id, role, pid))
        assert table["count"] == len(expected)
        metrics = flow.ok("tracking", "metrics", *_task(job_id, role, pid))["intersection"]
        assert metrics["intersect_count"] == len(expected)


def test_dh_exact_cardinality_with_two_hosts_reveals_only_counts(uploaded, fate: Path):
    flow = uploaded
    n = len(_ids(fate, "breast_hetero_guest") & _ids(fate, "breast_hetero_host"))
    job_id = _submit(flow, fate, "dh_intersect_multi_exact_cardinality")
    metrics = flow.ok("tracking", "metrics", *_task(job_id, "guest", "9999"))["intersection"]
    assert metrics["cardinality_9999"] == metrics["cardinality_10000"] == n
    # sync_cardinality is false in FATE's conf: the hosts learn nothing, and no data is output
    host = flow("tracking", "metrics", *_task(job_id, "host", "10000"))
    assert "intersection" not in (host.data or {})


def test_ecdh_cardinality_and_preprocess_confs_run(uploaded, fate: Path):
    flow = uploaded
    n = len(_ids(fate, "breast_hetero_guest") & _ids(fate, "breast_hetero_host"))
    job_id = _submit(flow, fate, "intersect_ecdh_exact_cardinality")
    assert flow.ok("tracking", "metrics", *_task(job_id, "guest", "9999"))["intersection"]["intersect_count"] == n
    job_id = _submit(flow, fate, "ecdh_intersect_w_preprocess")  # sm3 ids, Bloom-filter preprocess accepted
    (table,) = flow.ok("component", "output-data-table", *_task(job_id, "host", "10000"))
    assert table["count"] == n
