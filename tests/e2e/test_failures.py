"""A party dies mid-training, a job is stopped, a job times out, a table is missing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from flow.runtime import job as jobs
from flow.store import Store

from .conftest import load_example, with_lr_params, write_job

pytestmark = pytest.mark.e2e


def _store(flow) -> Store:
    return Store.for_home(flow.home)


def _wait_task(flow, job_id: str, component: str, role: str, min_progress: int = 0, timeout: float = 300):
    store, end = _store(flow), time.monotonic() + timeout
    while time.monotonic() < end:
        for t in store.tasks(job_id, role):
            if t["component"] == component and t["status"] == "running" and t["progress"] >= min_progress:
                return t
        assert store.job(job_id)["status"] not in ("failed", "success"), store.job(job_id)
        time.sleep(0.1)
    raise AssertionError(f"{component} on {role} never ran")


def _long_job(flow, tmp_path: Path, **params) -> str:
    conf, dsl = load_example("hetero_lr")
    params = {"encrypt_param": {"key_length": 512, "allow_short_key": True}, "max_iter": 8, "early_stop": "abs",
              "tol": 0.0, **params}
    conf = with_lr_params(conf, **params)
    c, d = write_job(tmp_path, conf, dsl)
    return flow.ok("job", "submit", "-c", c, "-d", d)["job_id"]


def test_host_killed_mid_training_then_rerun(breast, tmp_path: Path):
    job_id = _long_job(breast, tmp_path)
    _wait_task(breast, job_id, "hetero_lr_0", "host", min_progress=20)
    host = next(r for r in _store(breast).party_runs(job_id) if r["role"] == "host")
    os.kill(host["pid"], signal.SIGKILL)

    detail = breast.wait(job_id)
    assert detail["status"] == "failed"
    assert "host:10000" in detail["reason"] and "SIGKILL" in detail["reason"], detail["reason"]
    by_task = {(t["component"], t["role"]): t for t in detail["tasks"]}
    assert by_task[("hetero_lr_0", "host")]["status"] == "failed"
    assert by_task[("hetero_lr_0", "guest")]["status"] == "failed"
    assert "host:10000" in by_task[("hetero_lr_0", "guest")]["reason"]
    assert by_task[("intersection_0", "guest")]["status"] == "success"

    rerun = breast.ok("job", "rerun", "-j", job_id, "--wait")
    assert rerun["rerun_from"] == "hetero_lr_0"
    assert rerun["status"] == "success", rerun["reason"]
    tasks = {(t["component"], t["role"]): t for t in rerun["tasks"]}
    for upstream in ("reader_0", "data_transform_0", "intersection_0", "feature_scale_0"):
        for role in ("guest", "host"):
            assert tasks[(upstream, role)]["attempt"] == 0, f"{upstream} on {role} ran again"
            assert tasks[(upstream, role)]["started"] == by_task[(upstream, role)]["started"]
    assert tasks[("hetero_lr_0", "host")]["attempt"] == 1
    assert tasks[("evaluation_0", "guest")]["status"] == "success"


def test_stop_cancels_every_party(breast, tmp_path: Path):
    job_id = _long_job(breast, tmp_path, max_iter=50)
    _wait_task(breast, job_id, "hetero_lr_0", "guest")
    breast.ok("job", "stop", "-j", job_id)
    detail = breast.wait(job_id, timeout=60)
    assert detail["status"] == "canceled"
    for run in _store(breast).party_runs(job_id):
        if run["pid"]:
            with pytest.raises(ProcessLookupError):
                os.kill(run["pid"], 0)
    assert any(t["status"] == "canceled" for t in detail["tasks"])


def test_job_timeout(breast, tmp_path: Path):
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, encrypt_param={"key_length": 512, "allow_short_key": True}, max_iter=500,
                          early_stop="abs", tol=0.0)
    conf["job_parameters"]["common"]["timeout"] = 8
    c, d = write_job(tmp_path, conf, dsl)
    job_id = breast.ok("job", "submit", "-c", c, "-d", d)["job_id"]
    detail = breast.wait(job_id, timeout=120)
    assert detail["status"] == "timeout"
    assert "timeout of 8s" in detail["reason"]


def test_missing_table_fails_with_its_name(flow, tmp_path: Path):
    conf, dsl = load_example("hetero_lr")
    c, d = write_job(tmp_path, conf, dsl)
    res = flow("job", "submit", "-c", c, "-d", d, "--wait")
    assert res.code == 2  # refused before anything is created (this party's tables are checked)
    assert "breast_hetero_guest" in res.err and "breast_hetero_host" in res.err
    assert not (flow.home / "jobs").exists() or not any((flow.home / "jobs").iterdir())


def test_a_stop_right_after_submit_cancels_the_job(breast, tmp_path: Path):
    """The supervisor may not handle SIGTERM yet (it is still importing): the job still ends
    canceled, not failed, and no party is left running."""
    job_id = _long_job(breast, tmp_path, max_iter=50)
    jobs.stop_job(_store(breast), job_id)  # in this process: well inside the supervisor's first second
    detail = breast.wait(job_id, timeout=60)
    assert detail["status"] == "canceled", detail["reason"]
    assert detail["reason"] == "stopped by user"
    time.sleep(2)  # a supervisor that got past its start must not have brought the job back
    assert breast.ok("job", "query", "-j", job_id)["status"] == "canceled"
    for run in _store(breast).party_runs(job_id):
        if run["pid"]:
            with pytest.raises(ProcessLookupError):
                os.kill(run["pid"], 0)
