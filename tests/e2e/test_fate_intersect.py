"""FATE's own intersect suite (../shared/fate-examples/dsl/intersect), checked on the jobs of
the session's run of it (``suite_run``): DH intersection and exact cardinality (one and two
hosts), checked against the central intersection of the uploaded tables' ids."""

from __future__ import annotations

import pytest

from tests.fate_examples import GUEST, SuiteRun, table

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(suite_run) -> SuiteRun:
    return suite_run("intersect")


def ids(name: str) -> set[str]:
    return set(table(name)[1])


def task(job_id: str, role: str, pid: str, cpn: str = "intersect_0") -> list[str]:
    return ["-j", job_id, "-r", role, "-p", pid, "-cpn", cpn]


def test_dh_intersect_outputs_the_central_intersection(run: SuiteRun):
    expected = ids("breast_hetero_guest") & ids("breast_hetero_host")
    job_id = run.job("dh_intersect")
    for role, pid in (GUEST, ("host", "10000")):
        (out,) = run.flow.ok("component", "output-data-table", *task(job_id, role, pid))
        assert out["count"] == len(expected)
        metrics = run.flow.ok("tracking", "metrics", *task(job_id, role, pid))["intersection"]
        assert metrics["intersect_count"] == len(expected)


def test_dh_exact_cardinality_with_two_hosts_reveals_only_counts(run: SuiteRun):
    n = len(ids("breast_hetero_guest") & ids("breast_hetero_host"))
    job_id = run.job("dh_intersect_multi_exact_cardinality")
    metrics = run.flow.ok("tracking", "metrics", *task(job_id, *GUEST))["intersection"]
    assert metrics["cardinality_9999"] == metrics["cardinality_10000"] == n
    # sync_cardinality is false in FATE's conf: the hosts learn nothing, and no data is output
    host = run.flow("tracking", "metrics", *task(job_id, "host", "10000"))
    assert "intersection" not in (host.data or {})


def test_ecdh_cardinality_and_preprocess_confs_run(run: SuiteRun):
    n = len(ids("breast_hetero_guest") & ids("breast_hetero_host"))
    job_id = run.job("intersect_ecdh_exact_cardinality")
    assert run.flow.ok("tracking", "metrics", *task(job_id, *GUEST))["intersection"]["intersect_count"] == n
    job_id = run.job("ecdh_intersect_w_preprocess")  # sm3 ids, Bloom-filter preprocess accepted
    (out,) = run.flow.ok("component", "output-data-table", *task(job_id, "host", "10000"))
    assert out["count"] == n
