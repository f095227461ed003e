"""Cron-scheduled retraining end to end: a per-minute schedule added with `flow schedule add`
fires real jobs (on an injected clock, nothing waits for a minute to pass), the newest table
version is read, overlap skips while the run is going, and the successful run is deployed."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flow.core.settings import load_service_conf
from flow.ops.local import LocalOps
from flow.runtime import job as jobs
from flow.schedules.retrain import party_scheduler
from flow.store import FINAL_STATES, Store

from .conftest import EXAMPLES, load_example, with_lr_params, write_job

pytestmark = pytest.mark.e2e


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def wait(store: Store, job_id: str, timeout: float = 300) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        detail = jobs.job_detail(store, job_id)
        if detail["status"] in FINAL_STATES:
            return detail
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def test_per_minute_schedule_runs_real_jobs_on_the_newest_table(flow, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FLOW_HOME", str(flow.home))
    service = load_service_conf()
    store = Store(service.database_url)
    local = LocalOps(service, store)  # what `flow data upload` runs, without starting a process each
    data = EXAMPLES / "data"
    local.data_upload(data / "breast_hetero_host.csv", "experiment", "breast_hetero_host", partitions=2)
    for version in ("v1", "v2"):  # v2 is the newest
        local.data_upload(data / "breast_hetero_guest.csv", "experiment", f"guest_{version}", label_column="y",
                          partitions=2)
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, max_iter=2, encrypt_param={"key_length": 512, "allow_short_key": True})
    conf["component_parameters"]["role"]["guest"]["0"]["reader_0"]["table"]["name"] = "guest_{latest}"
    c, d = write_job(tmp_path, conf, dsl)

    bad = flow("schedule", "add", "--cron", "* * * *", "-c", c, "-d", d, "--name", "retrain")
    assert bad.code != 0 and "cron" in bad.out["retmsg"] and "expected 5" in bad.out["retmsg"]
    added = flow.ok("schedule", "add", "--cron", "* * * * *", "-c", c, "-d", d, "--name", "retrain",
                    "--promote-if", "auc>=current")
    assert added["overlap"] == "skip" and added["promote_if"] == "auc>=current"
    assert added["conf_path"] == str(flow.home / "schedules" / "retrain" / "conf.json")  # its own copy

    first_slot = datetime.fromisoformat(added["next_fire"])
    clock = Clock(first_slot + timedelta(seconds=5))
    sched = party_scheduler(service, store, clock=clock)
    (fired,) = sched.tick()
    assert fired.status == "submitted" and fired.fire_time == first_slot
    job_id = fired.job_id
    clock.now += timedelta(minutes=1)  # the next slot comes while the job still runs: skipped
    (skipped,) = sched.tick()
    assert skipped.status == "skipped" and job_id in skipped.reason

    detail = wait(store, job_id)
    assert detail["status"] == "success", detail
    reader_conf = store.job(job_id)["conf"]["component_parameters"]["role"]["guest"]["0"]["reader_0"]
    assert reader_conf["table"] == {"name": "guest_v2", "namespace": "experiment"}

    history = flow.ok("schedule", "history", "retrain")
    assert [(f["job_id"], f["status"]) for f in history] == [(job_id, "success"), (None, "skipped")]
    assert history[0]["promotion"].startswith("deployed (auc ")
    (listed,) = flow.ok("schedule", "list")
    auc = next(m["value"]["value"] for m in store.metrics(job_id, "guest", "9999", "evaluation_0")
               if m["name"] == "auc")
    assert listed["deployed_job"] == job_id and listed["deployed_metrics"]["auc"] == auc > 0.9

    audited = flow.ok("audit", "list", "--job", job_id, "--all")  # with the traffic entries
    (fire,) = [e for e in audited if e["kind"] == "schedule.fire"]
    assert fire["actor"] == "schedule:retrain" and fire["details"]["tables"] == {
        "component_parameters.role.guest.0.reader_0.table.name": "guest_v2"}
    reads = sorted((e["party"], e["details"]["name"]) for e in audited if e["kind"] == "data.read")
    assert reads == [("10000", "breast_hetero_host"), ("9999", "guest_v2")]
    # every object that crossed party lines: once when sent, once when received, same size and checksum
    def crossing(kind: str) -> list[tuple]:
        return sorted((e["details"]["name"], e["details"]["tag"], e["details"]["bytes"], e["details"]["sha256"])
                      for e in audited if e["kind"] == kind)
    sent = crossing("federation.sent")
    assert sent and sent == crossing("federation.received")
    assert {e["party"] for e in audited if e["kind"].startswith("federation.")} == {"9999", "10000"}

    sched.pause("retrain")
    clock.now += timedelta(minutes=5)
    assert sched.tick() == []
    sched.remove("retrain")
    assert sched.list() == []
    store.close()
