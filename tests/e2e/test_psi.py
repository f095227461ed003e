"""Intersection end to end: exact sizes and exactly the shared ids, on every side."""

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
HOSTS = (10000, 10001)


def psi_conf(guest_table: str, *host_tables: str, method: str = "ecdh", **method_params) -> dict:
    """One guest and one host per table; ``method_params`` go to ``intersection_0``."""
    return {
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": list(HOSTS[:len(host_tables)])},
        "job_parameters": {"common": {"computing_partitions": 4, "timeout": 600}},
        "component_parameters": {
            "common": {"intersection_0": {"intersect_method": method, **method_params}},
            "role": {
                "guest": {"0": {"reader_0": {"table": {"namespace": "psi", "name": guest_table}},
                                "data_transform_0": {"with_label": True, "label_name": "y"}}},
                "host": {str(i): {"reader_0": {"table": {"namespace": "psi", "name": t}}}
                         for i, t in enumerate(host_tables)},
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


def distinct_ids(seed: int, count: int) -> list[str]:
    return [f"u{n:07d}" for n in random.Random(seed).sample(range(10_000_000), count)]


def run_psi(flow, tmp_path: Path, tables: dict[str, list[str]], conf: dict) -> dict:
    """Upload ``tables`` (the first is the guest's, with labels) and run ``conf`` to success."""
    for i, (name, ids) in enumerate(tables.items()):
        write_ids(tmp_path / f"{name}.csv", ids, label=i == 0)
        flow.upload(tmp_path / f"{name}.csv", name, label="y" if i == 0 else None, namespace="psi")
    c, d = write_job(tmp_path, conf, DSL)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job["reason"]
    return job


def assert_outputs(flow, tmp_path: Path, job: dict, parties: list[tuple[str, int]], expected: set[str]) -> None:
    for role, pid in parties:
        metrics = flow.ok("tracking", "metrics", "-j", job["job_id"], "-r", role, "-p", pid,
                          "-cpn", "intersection_0")["intersection"]
        assert metrics["intersect_count"] == len(expected)
        out = flow.ok("tracking", "output-data", "-j", job["job_id"], "-r", role, "-p", pid,
                      "-cpn", "intersection_0", "-o", tmp_path / f"{role}{pid}")[0]
        assert out["count"] == len(expected)
        assert read_ids(out["file"]) == expected


def ten_thousand_each() -> tuple[list[str], list[str], list[str], list[str]]:
    """10,000 guest ids and 10,000 host ids, 6,000 of them shared, in shuffled orders; and a
    second host's 8,000 ids: the 6,000, 1,000 more of the guest's and 1,000 of its own."""
    rng = random.Random(11)
    universe = distinct_ids(11, 15_000)
    shared, only_g, only_h = universe[:6000], universe[6000:10000], universe[10000:14000]
    guest_ids, host_ids = shared + only_g, shared + only_h
    second_host = shared + only_g[:1000] + universe[14000:]
    for ids in (guest_ids, host_ids, second_host):
        rng.shuffle(ids)
    return shared, guest_ids, host_ids, second_host


def test_psi_10000_by_10000_with_6000_shared(flow, tmp_path: Path):
    shared, guest_ids, host_ids, _ = ten_thousand_each()
    job = run_psi(flow, tmp_path, {"g10k": guest_ids, "h10k": host_ids}, psi_conf("g10k", "h10k"))
    assert_outputs(flow, tmp_path, job, [("guest", 9999), ("host", 10000)], set(shared))


def test_rsa_psi_10000_by_10000_with_6000_shared_and_a_second_host(flow, tmp_path: Path):
    """The RSA blind-signature method (1024-bit keys, one per host) finds exactly the same set.
    The second host shares 7,000 ids with the guest; the result is what all three hold, and
    every party outputs it. (Every method runs with two hosts in tests/unit/test_intersection.py,
    ECDH with two hosts also in tests/e2e/test_hetero_lr_multi_host.py.)"""
    shared, guest_ids, host_ids, second_host = ten_thousand_each()
    assert len(set(guest_ids) & set(second_host)) == 7000
    conf = psi_conf("g10k", "h10k", "h8k", method="rsa",
                    rsa_params={"key_length": 1024, "hash_method": "sha256", "final_hash_method": "sha256",
                                "salt": "fedweave"})
    job = run_psi(flow, tmp_path, {"g10k": guest_ids, "h10k": host_ids, "h8k": second_host}, conf)
    assert_outputs(flow, tmp_path, job, [("guest", 9999), ("host", 10000), ("host", 10001)], set(shared))


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


def test_ot_psi_10000_by_10000_with_6000_shared_and_a_second_host(flow, tmp_path: Path):
    """fedweave's OT-based method (intersect_method kkrt) through the real CLI: the same set as
    a plain set intersection, on every party, with two hosts (one OPRF per host)."""
    shared, guest_ids, host_ids, second_host = ten_thousand_each()
    assert set(shared) == set(guest_ids) & set(host_ids) & set(second_host)
    job = run_psi(flow, tmp_path, {"g10k": guest_ids, "h10k": host_ids, "h8k": second_host},
                  psi_conf("g10k", "h10k", "h8k", method="kkrt"))
    assert_outputs(flow, tmp_path, job, [("guest", 9999), ("host", 10000), ("host", 10001)], set(shared))
