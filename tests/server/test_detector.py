"""The job detector ends jobs whose processes are gone or whose timeout passed, and never
overwrites an outcome a supervisor recorded."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flow.core.settings import ServiceConf
from flow.server.detector import TIMEOUT_GRACE_S, JobDetector, process_alive
from flow.store import Store

PARTIES = [("guest", "9999"), ("host", "10000")]
COMPONENTS = {p: [("reader_0", "Reader"), ("hetero_lr_0", "HeteroLR")] for p in PARTIES}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.for_home(tmp_path)
    yield s
    s.close()


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []

    def spawn(job_id: str) -> subprocess.Popen:
        """A process of ``job_id``: the job id is on its command line, as a runtime's is."""
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", job_id])
        started.append(p)
        return p

    yield spawn
    for p in started:
        p.kill()
        p.wait()


def _dead(spawn, job_id: str) -> int:
    p = spawn(job_id)
    p.kill()
    p.wait()
    return p.pid


def _job(store: Store, job_id: str, timeout: float = 600, **fields) -> None:
    store.create_job(job_id, conf={"job_parameters": {"common": {"timeout": timeout}}}, dsl={},
                     initiator=("guest", "9999"), parties=PARTIES, components=COMPONENTS)
    store.update_job(job_id, status="running", **fields)
    for role, pid in PARTIES:
        store.update_task(job_id, "reader_0", role, pid, status="success")
        store.update_task(job_id, "hetero_lr_0", role, pid, status="running")


def _detector(store: Store) -> JobDetector:
    return JobDetector(ServiceConf(), store, interval=1)


def test_a_job_whose_supervisor_is_gone_is_failed_with_its_tasks(store, procs):
    pid = _dead(procs, "j1")
    _job(store, "j1", supervisor_pid=pid)
    assert _detector(store).sweep() == ["j1"]
    job = store.job("j1")
    assert job["status"] == "failed" and f"supervisor (pid {pid}) is gone" in job["reason"]
    tasks = store.tasks("j1")
    assert {t["component"]: t["status"] for t in tasks} == {"reader_0": "success", "hetero_lr_0": "failed"}
    assert all("job detector" in t["reason"] for t in tasks if t["component"] == "hetero_lr_0")
    assert _detector(store).sweep() == []  # ended once


def test_a_live_supervisor_is_left_alone_but_a_reused_pid_is_not_it(store, procs):
    _job(store, "j2", supervisor_pid=procs("j2").pid)
    _job(store, "j3", supervisor_pid=procs("another_job").pid)  # the pid now belongs to someone else
    assert _detector(store).sweep() == ["j3"]
    assert store.job("j2")["status"] == "running"
    assert not process_alive(procs("another_job").pid, "j3")


def test_a_job_past_its_timeout_is_ended_and_its_processes_killed(store, procs):
    sup = procs("j4")
    _job(store, "j4", timeout=60, supervisor_pid=sup.pid)
    detector = _detector(store)
    started = store.job("j4")["started"]
    assert detector.sweep(now=started + timedelta(seconds=60 + TIMEOUT_GRACE_S - 1)) == []
    assert detector.sweep(now=started + timedelta(seconds=60 + TIMEOUT_GRACE_S + 1)) == ["j4"]
    job = store.job("j4")
    assert job["status"] == "timeout" and "timeout of 60s" in job["reason"]
    assert sup.wait(timeout=10) != 0  # killed
    assert all(t["status"] in ("success", "timeout") for t in store.tasks("j4"))


def test_a_rerun_is_timed_from_its_own_start(store, procs):
    from sqlalchemy import update

    from flow.store.models import Job

    _job(store, "j5", timeout=60, supervisor_pid=procs("j5").pid)
    now = datetime.now(timezone.utc)
    with store.session() as s:  # first run two hours ago; the rerun (attempt 1) starts now
        s.execute(update(Job).where(Job.job_id == "j5").values(started=now - timedelta(hours=2), attempt=1))
    for role, pid in PARTIES:
        store.update_task("j5", "hetero_lr_0", role, pid, status="running", attempt=1)
    detector = _detector(store)
    assert detector.sweep(now=now + timedelta(seconds=5)) == []
    assert detector.sweep(now=now + timedelta(seconds=60 + TIMEOUT_GRACE_S + 5)) == ["j5"]


def test_parties_started_one_by_one_fail_the_job_when_all_are_gone(store, procs):
    _job(store, "j6")
    guest = procs("j6")
    host_pid = _dead(procs, "j6")
    store.update_party_run("j6", "guest", "9999", status="running", pid=guest.pid)
    store.update_party_run("j6", "host", "10000", status="running", pid=host_pid)
    detector = _detector(store)
    assert detector.sweep() == []  # the guest still runs: only the host's share is failed
    runs = {r["role"]: r for r in store.party_runs("j6")}
    assert runs["host"]["status"] == "failed" and f"pid {host_pid}" in runs["host"]["reason"]
    assert runs["guest"]["status"] == "running" and store.job("j6")["status"] == "running"
    guest.kill()
    guest.wait()
    assert detector.sweep() == ["j6"]
    assert store.job("j6")["status"] == "failed"
    assert {t["status"] for t in store.tasks("j6")} == {"success", "failed"}


def test_an_outcome_recorded_meanwhile_is_never_overwritten(store, procs):
    pid = _dead(procs, "j7")
    _job(store, "j7", supervisor_pid=pid)
    detector = _detector(store)
    job = store.job("j7")
    verdict = detector.verdict(job, datetime.now(timezone.utc))
    assert verdict is not None and verdict[0] == "failed"
    store.update_job("j7", status="success")  # the supervisor finished between verdict and end
    assert detector.end(job, *verdict) is False
    assert store.job("j7")["status"] == "success"


def test_a_job_that_never_started_is_failed_after_the_start_grace(store):
    store.create_job("j8", conf={}, dsl={}, initiator=("guest", "9999"), parties=PARTIES, components=COMPONENTS)
    created = store.job("j8")["created"]
    detector = _detector(store)
    assert detector.sweep(now=created + timedelta(seconds=10)) == []
    assert detector.sweep(now=created + timedelta(seconds=600)) == ["j8"]
    assert "never started" in store.job("j8")["reason"]


def test_a_sweep_reaps_the_supervisors_this_server_started_once_they_end(store, monkeypatch):
    """A supervisor that recorded its job's end leaves the sweep nothing to judge; the server,
    its parent, must still collect its exit status or it stays a zombie until the next submit."""
    from flow.runtime import job as jobs

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    monkeypatch.setitem(jobs._started, child.pid, child)
    deadline = datetime.now(timezone.utc) + timedelta(seconds=30)
    while Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":  # ended, not reaped
        assert datetime.now(timezone.utc) < deadline, "the child never ended"
    _detector(store).sweep()
    assert not Path(f"/proc/{child.pid}").exists() and child.returncode == 0  # reaped, its status kept
