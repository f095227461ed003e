"""A job's processes import only the installed project, and a supervisor that dies before it
starts the job fails the job with its exit code and last line, in standalone mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import EXAMPLES, load_example, write_job

pytestmark = pytest.mark.e2e

FLOW = Path(sys.executable).with_name("flow")  # the console script a user runs
SHADOWS = ("components", "flow", "backends", "federation")


def _small_job(tmp_path: Path) -> tuple[Path, Path]:
    """hetero_lr's reader, data transform and intersection between the guest and the host."""
    conf, dsl = load_example("hetero_lr")
    keep = ("reader_0", "data_transform_0", "intersection_0")
    dsl["components"] = {k: v for k, v in dsl["components"].items() if k in keep}
    conf["role"].pop("arbiter")
    params = conf["component_parameters"]
    params["common"] = {k: v for k, v in params["common"].items() if k in keep}
    for by_index in params["role"].values():
        for cpns in by_index.values():
            for k in [k for k in cpns if k not in keep]:
                del cpns[k]
    return write_job(tmp_path, conf, dsl)


def _flow(home: Path, cwd: Path, *args, env: dict | None = None) -> dict:
    proc = subprocess.run([str(FLOW), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, FLOW_HOME=str(home), **(env or {})))
    assert proc.returncode == 0, f"flow {' '.join(map(str, args))}: {proc.stderr}\n{proc.stdout}"
    return json.loads(proc.stdout)["data"]


def _wait(home: Path, cwd: Path, job_id: str, timeout: float) -> dict:
    end = time.monotonic() + timeout
    while True:
        detail = _flow(home, cwd, "job", "query", "-j", job_id)
        if detail["status"] in ("success", "failed", "canceled", "timeout") or time.monotonic() > end:
            return detail
        time.sleep(0.3)


def test_folders_named_like_the_project_in_the_working_directory_are_not_imported(tmp_path: Path):
    """`flow job submit` from a directory holding components/, flow/, backends/, federation/
    whose import would exit 3: the job's processes never import them."""
    cwd, home = tmp_path / "work", tmp_path / "home"
    for name in SHADOWS:
        (cwd / name).mkdir(parents=True)
        (cwd / name / "__init__.py").write_text("raise SystemExit(3)\n")
    c, d = _small_job(tmp_path)
    _flow(home, cwd, "data", "upload", "-f", EXAMPLES / "data" / "breast_hetero_guest.csv",
          "--namespace", "experiment", "--name", "breast_hetero_guest", "--label-column", "y")
    _flow(home, cwd, "data", "upload", "-f", EXAMPLES / "data" / "breast_hetero_host.csv",
          "--namespace", "experiment", "--name", "breast_hetero_host")
    job_id = _flow(home, cwd, "job", "submit", "-c", c, "-d", d)["job_id"]
    detail = _wait(home, cwd, job_id, timeout=240)
    assert detail["status"] == "success", detail["reason"]


def _broken_project(tmp_path: Path) -> Path:
    """A PYTHONPATH entry whose `flow` package says why it cannot start and exits 3."""
    broken = tmp_path / "broken"
    (broken / "flow").mkdir(parents=True)
    (broken / "flow" / "__init__.py").write_text(
        "import sys\nprint('broken flow: cannot start here', file=sys.stderr)\nraise SystemExit(3)\n")
    return broken


def test_a_supervisor_that_dies_before_it_starts_the_job_fails_it(tmp_path: Path, monkeypatch):
    """The supervisor exits 3 before its first report (here its interpreter finds another
    `flow` first): `flow job query`, in this process or another, fails the job at once with
    the exit code and the supervisor's last line."""
    from flow.core.settings import ServiceConf
    from flow.runtime import job as jobs
    from flow.store import Store

    home = tmp_path / "home"
    monkeypatch.setenv("FLOW_HOME", str(home))
    conf, store = ServiceConf(home=str(home)), Store.for_home(home)
    c, d = _small_job(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(_broken_project(tmp_path)))  # the supervisor's, not this process's
    job_id = jobs.submit_job(conf, store, c, d)["job_id"]
    monkeypatch.delenv("PYTHONPATH")
    pid = store.job(job_id)["supervisor_pid"]

    # another process (the submitter has gone): what the launcher left in the job's folder
    detail = _wait(home, tmp_path, job_id, timeout=30)
    assert detail["status"] == "failed", detail
    assert detail["reason"] == (f"job supervisor (pid {pid}) ended before it started the job (exit code 3): "
                                "broken flow: cannot start here"), detail["reason"]
    assert {t["status"] for t in detail["tasks"]} == {"failed"}
    store.close()


def test_the_submitting_process_tells_how_its_supervisor_ended(tmp_path: Path, monkeypatch):
    """In the process that started it (`--wait`, a flow server), the supervisor's exit status
    is known even when its launcher could not write it (killed)."""
    import signal

    from flow.core.settings import ServiceConf
    from flow.runtime import job as jobs
    from flow.store import Store

    home = tmp_path / "home"
    monkeypatch.setenv("FLOW_HOME", str(home))
    conf, store = ServiceConf(home=str(home)), Store.for_home(home)
    c, d = _small_job(tmp_path)
    job_id = jobs.submit_job(conf, store, c, d)["job_id"]
    pid = store.job(job_id)["supervisor_pid"]
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while (detail := jobs.job_detail(store, job_id))["status"] not in ("failed", "success"):
        assert time.monotonic() < end, detail
        time.sleep(0.1)
    assert detail["status"] == "failed"
    assert detail["reason"].startswith(f"job supervisor (pid {pid}) ") and "(killed by SIGKILL)" in detail["reason"]
    store.close()
