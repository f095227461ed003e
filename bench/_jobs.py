"""What the job benchmarks share: the real `flow` CLI in a subprocess, one job submitted
and waited for, and a task's time from the job detail."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def flow(home: Path, *args: Any, raw: bool = False) -> Any:
    """Run `flow ARGS` against ``home``; its data (or raw stdout); exit on an error."""
    env = dict(os.environ, FLOW_HOME=str(home))
    proc = subprocess.run([sys.executable, "-m", "flow.cli.main", *map(str, args)], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    if raw:
        return proc.stdout
    out = json.loads(proc.stdout)
    if out["retcode"] != 0:
        sys.exit(f"flow {' '.join(map(str, args))}: {out['retmsg']}\n{proc.stderr[-2000:]}")
    return out["data"]


def submit(home: Path, conf: dict, dsl: dict) -> tuple[dict, float]:
    """Submit with --wait; (job detail, wall seconds); exit unless it succeeded."""
    cpath, dpath = home / "bench_conf.json", home / "bench_dsl.json"
    cpath.write_text(json.dumps(conf))
    dpath.write_text(json.dumps(dsl))
    t0 = time.perf_counter()
    job = flow(home, "job", "submit", "-c", cpath, "-d", dpath, "--wait")
    wall = time.perf_counter() - t0
    if job["status"] != "success":
        sys.exit(f"job {job['job_id']} {job['status']}: {job['reason']}")
    return job, wall


def task_time(job: dict, component: str, role: str) -> tuple[datetime, float]:
    """(start, seconds) of one party's task of the job."""
    task = next(t for t in job["tasks"] if t["component"] == component and t["role"] == role)
    started = datetime.fromisoformat(task["started"])
    return started, (datetime.fromisoformat(task["ended"]) - started).total_seconds()


def guest_auc(home: Path, job: dict, evaluation: str = "evaluation_0") -> float | None:
    return flow(home, "tracking", "metrics", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                "-cpn", evaluation).get("evaluation", {}).get("auc")


def log_stamps(home: Path, job: dict, role: str, party: str, component: str, message: str) -> list[datetime]:
    """Times of one party's task log lines whose text matches the regex ``message``."""
    line = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*" + message)
    logs = flow(home, "job", "logs", "-j", job["job_id"], "-r", role, "-p", party, "-cpn", component, raw=True)
    return [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in map(line.search, logs.splitlines()) if m]


def training_seconds(home: Path, job: dict, component: str) -> float | None:
    """Seconds per iteration of a vertical linear model's training, from the guest's log."""
    logs = flow(home, "job", "logs", "-j", job["job_id"], "-r", "guest", "-p", "9999", "-cpn", component, raw=True)
    found = re.search(r"training: (\d+) iterations in ([0-9.]+) s", logs)
    return float(found.group(2)) / max(1, int(found.group(1))) if found else None


def upload_breast_hetero(home: Path) -> None:
    """The shipped breast_hetero guest (labelled) and host tables, as the hetero examples name them."""
    data = ROOT / "examples" / "data"
    flow(home, "data", "upload", "-f", data / "breast_hetero_guest.csv", "--namespace", "experiment",
         "--name", "breast_hetero_guest", "--label-column", "y")
    flow(home, "data", "upload", "-f", data / "breast_hetero_host.csv", "--namespace", "experiment",
         "--name", "breast_hetero_host")


def party_peaks(home: Path, job: dict) -> dict[str, str]:
    """Each party's peak RSS as its job supervisor logged it when the party's runtime ended."""
    from flow.core.ids import check_id  # the ground floor only: bench/federation.py shadows the package here

    log = home / "jobs" / check_id("job_id", job["job_id"], "job_id") / "supervisor.log"
    found = re.findall(r"^(\w+:\S+): exit .*?peak RSS (\d+ MiB)", log.read_text(), re.M) if log.is_file() else []
    return dict(found)
