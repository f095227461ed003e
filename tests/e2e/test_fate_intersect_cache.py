"""FATE's intersect cache tasks (rsa_cache_intersect, dh_cache_intersect, ecdh_cache_intersect),
checked on the jobs of the session's intersect suite run (``suite_run``): intersect_0 makes
each party's cache, intersect_1 intersects against it, and its output is the central
intersection of the uploaded tables' ids. The cache (key material) stays in each party's
own folder, readable by its owner only."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.e2e.test_fate_intersect import ids, task
from tests.fate_examples import GUEST

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name, synced", [("rsa_cache_intersect", False), ("dh_cache_intersect", True),
                                          ("ecdh_cache_intersect", False)])
def test_cache_tasks_output_the_central_intersection(suite_run, name: str, synced: bool):
    run = suite_run("intersect")
    flow = run.flow
    guest_ids, host_ids = ids("breast_hetero_guest"), ids("breast_hetero_host")
    expected = guest_ids & host_ids
    job_id = run.job(name)
    (table,) = flow.ok("component", "output-data-table", *task(job_id, *GUEST, "intersect_1"))
    assert table["count"] == len(expected)
    metrics = flow.ok("tracking", "metrics", *task(job_id, *GUEST, "intersect_1"))["intersection"]
    assert metrics["intersect_count"] == len(expected)
    (table,) = flow.ok("component", "output-data-table", *task(job_id, "host", "10000", "intersect_1"))
    assert table["count"] == (len(expected) if synced else len(host_ids))  # FATE's sync_intersect_ids
    # intersect_0 made caches, not an intersection; each party's is its own, readable by it alone
    caches = sorted((flow.home / "caches" / job_id).rglob("*.json"))
    assert [c.relative_to(flow.home / "caches" / job_id).as_posix() for c in caches] == [
        "guest/9999/intersect_0.json", "host/10000/intersect_0.json"]
    guest_cache, host_cache = (json.loads(c.read_text()) for c in caches)
    assert all(stat.S_IMODE(os.stat(c).st_mode) == 0o600 for c in caches)
    host_secrets = [host_cache["body"][k] for k in ("secret", "p", "q") if k in host_cache["body"]]
    assert host_secrets and not any(s in json.dumps(guest_cache) for s in host_secrets)
