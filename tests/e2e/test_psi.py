"""Intersection end to end: exact sizes and exactly the shared ids, on both sides."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from .conftest import write_job

pytestmark = pytest.mark.e2e

DSL = {"components": {
    "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
    "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                         "output": {"data": ["data"]}},
    "intersection_0": {"module": "Intersection", "input": {"data": {"data": ["data_transform_0.data"]}},
                       "output": {"data": ["data"]}},
}}


def psi_conf(guest_table: str, host_table: str) -> dict:
    return {
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "job_parameters": {"common": {"computing_partitions": 4, "timeout": 600}},
        "component_parameters": {"common": {"intersection_0": {"intersect_method": "ecdh"}}, "role": {
            "guest": {"0": {"reader_0": {"table": {"namespace": "psi", "name": guest_table}},
                            "data_transform_0": {"with_label": True, "label_name": "y"}}},
            "host": {"0": {"reader_0": {"table": {"namespace": "psi", "name": host_table}}}},
        }},
    }


def write_ids(path: Path, ids: list[str], label: bool) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "y", "x0"] if label else ["id", "x0"])
        for i, k in enumerate(ids):
            out.writerow([k, i % 2, i * 0.5] if label else [k, i * 0.25])


def read_ids(path: str) -> set[str]:
    with open(path) as fh:
        return {row["id"] for row in csv.DictReader(fh)}


def test_psi_10000_by_10000_with_6000_shared(flow, tmp_path: Path):
    rng = random.Random(11)
    universe = [f"u{n:07d}" for n in rng.sample(range(10_000_000), 14_000)]
    shared, only_g, only_h = universe[:6000], universe[6000:10000], universe[10000:14000]
    guest_ids, host_ids = shared + only_g, shared + only_h
    rng.shuffle(guest_ids)
    rng.shuffle(host_ids)
    write_ids(tmp_path / "g.csv", guest_ids, label=True)
    write_ids(tmp_path / "h.csv", host_ids, label=False)
    flow.upload(tmp_path / "g.csv", "g10k", label="y", namespace="psi")
    flow.upload(tmp_path / "h.csv", "h10k", namespace="psi")
    c, d = write_job(tmp_path, psi_conf("g10k", "h10k"), DSL)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job["reason"]
    for role, pid in (("guest", "9999"), ("host", "10000")):
        metrics = flow.ok("tracking", "metrics", "-j", job["job_id"], "-r", role, "-p", pid,
                          "-cpn", "intersection_0")["intersection"]
        assert metrics["intersect_count"] == 6000
        out = flow.ok("tracking", "output-data", "-j", job["job_id"], "-r", role, "-p", pid,
                      "-cpn", "intersection_0", "-o", tmp_path / role)[0]
        assert out["count"] == 6000
        assert read_ids(out["file"]) == set(shared)


def test_psi_with_no_shared_ids(flow, tmp_path: Path):
    write_ids(tmp_path / "g.csv", [f"g{i}" for i in range(50)], label=True)
    write_ids(tmp_path / "h.csv", [f"h{i}" for i in range(40)], label=False)
    flow.upload(tmp_path / "g.csv", "g0", label="y", namespace="psi")
    flow.upload(tmp_path / "h.csv", "h0", namespace="psi")
    c, d = write_job(tmp_path, psi_conf("g0", "h0"), DSL)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    metrics = flow.ok("tracking", "metrics", "-j", job["job_id"], "-r", "host", "-p", "10000",
                      "-cpn", "intersection_0")["intersection"]
    assert metrics["intersect_count"] == 0
