"""The audit trail as a user reads it: uploads, downloads, grants with `flow privilege`,
`flow audit list` filters, and `flow audit verify` catching an edited or a removed line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flow.core.settings import load_service_conf
from flow.ops.local import LocalOps
from flow.store import Store

from .conftest import EXAMPLES

pytestmark = pytest.mark.e2e


def test_audit_trail_lists_and_verifies_and_catches_tampering(flow, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FLOW_HOME", str(flow.home))
    service = load_service_conf()
    store = Store(service.database_url)
    local = LocalOps(service, store)  # what `flow data upload/download` run
    local.data_upload(EXAMPLES / "data" / "breast_hetero_host.csv", "experiment", "host", partitions=2)
    granted = flow.ok("privilege", "grant", "--party", "guest:9999", "--namespace", "experiment", "--name", "host")
    assert granted["created"] and granted["party"] == "guest:9999"
    flow.ok("privilege", "grant", "--party", "8888", "--namespace", "experiment", "--name", "*")
    flow.ok("privilege", "revoke", "--party", "8888", "--namespace", "experiment", "--name", "*")
    assert [(p["party"], p["name"]) for p in flow.ok("privilege", "list")] == [("guest:9999", "host")]
    bad = flow("privilege", "revoke", "--party", "judge:1", "--namespace", "experiment", "--name", "host")
    assert bad.code == 2 and "role 'judge'" in bad.out["retmsg"]
    local.data_download("experiment", "host", tmp_path / "host.csv")

    entries = flow.ok("audit", "list")
    assert [e["kind"] for e in entries] == ["data.upload", "privilege.grant", "privilege.grant", "privilege.revoke",
                                            "data.download"]
    assert entries[0]["details"]["count"] == 569 and len(entries[0]["details"]["sha256"]) == 64
    assert all(e["actor"].startswith("user:") for e in entries)
    since = flow.ok("audit", "list", "--since", entries[3]["time"], "--kind", "privilege")
    assert [e["seq"] for e in since] == [4]

    ok = flow("audit", "verify")
    assert ok.code == 0 and ok.data == [{"party": "local", "file": str(flow.home / "audit" / "local.log"),
                                         "ok": True, "entries": 5, "first_bad_seq": None, "reason": ""}]

    log = flow.home / "audit" / "local.log"
    original = log.read_text().splitlines(keepends=True)
    edited = json.loads(original[1])
    edited["details"]["party"] = "guest:6666"  # someone widens a grant after the fact
    log.write_text("".join([original[0], json.dumps(edited) + "\n", *original[2:]]))
    res = flow("audit", "verify")
    assert res.code == 1 and res.data[0]["first_bad_seq"] == 2 and "edited" in res.data[0]["reason"]
    assert "broken at seq 2" in res.err

    log.write_text("".join(original[:2] + original[3:]))  # an entry quietly removed
    res = flow("audit", "verify")
    assert res.code == 1 and res.data[0]["first_bad_seq"] == 3 and "removed" in res.data[0]["reason"]
    store.close()
