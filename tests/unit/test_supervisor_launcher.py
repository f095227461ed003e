"""The supervisor's launcher (flow/runtime/job.py): what it leaves behind, and what the
parties' spawned pool workers must not pay for.

A stand-in ``flow.runtime.supervisor`` (its own package on PYTHONPATH) starts a spawn pool,
as a party's local computing session does, and records which modules a worker holds: with
the supervisor run as ``__main__`` every worker re-imported it (the whole project, about a
CPU-second each), which the launcher must not cause.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flow.runtime.job import _LAUNCHER

STAND_IN = '''
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from probe import worker_view


def main(argv):
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        seen = pool.submit(worker_view).result(timeout=120)
    with open(argv[0] + ".seen", "w") as fh:
        fh.write(" ".join(seen))
    return 3


if __name__ == "__main__":  # as the module ran when launched with ``-m``
    import sys
    sys.exit(main(sys.argv[1:]))
'''


#: what a worker reports: the project's modules it holds, and the module it ran as its main, if any
PROBE = '''
import sys


def worker_view():
    main_spec = getattr(sys.modules.get("__mp_main__"), "__spec__", None)
    return sorted(m for m in sys.modules if m.split(".")[0] == "flow") + ([main_spec.name] if main_spec else [])
'''


def _launch(tmp_path: Path, job: str) -> subprocess.CompletedProcess:
    pkg = tmp_path / "stand_in" / "flow" / "runtime"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "supervisor.py").write_text(STAND_IN)
    (tmp_path / "stand_in" / "probe.py").write_text(PROBE)
    env = {"PYTHONPATH": str(tmp_path / "stand_in"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-P", "-c", _LAUNCHER, str(tmp_path / job), str(tmp_path / "exit")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)


def test_pool_workers_do_not_import_the_supervisor(tmp_path: Path):
    proc = _launch(tmp_path, "job1")
    assert proc.returncode == 3, proc.stderr
    assert (tmp_path / "job1.seen").read_text().split() == []


def test_the_exit_file_holds_pid_and_the_supervisors_code(tmp_path: Path):
    proc = _launch(tmp_path, "job2")
    pid, code = (tmp_path / "exit").read_text().split()
    assert code == "3" and int(pid) > 1 and proc.returncode == 3


def test_pause_wakes_when_a_supervisor_started_here_ends(monkeypatch):
    """``flow job submit --wait`` sleeps through jobs.pause: a supervisor this process started
    wakes it as it exits, instead of at its next poll; any other job's pause sleeps in full."""
    import time

    from flow.runtime import job as jobs

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    monkeypatch.setitem(jobs._started, proc.pid, proc)
    monkeypatch.setitem(jobs._pids, "job-here", proc.pid)
    start = time.monotonic()
    jobs.pause("job-here", 60)
    assert proc.poll() == 0  # it returned because the supervisor ended...
    assert time.monotonic() - start < 30  # ...not because the 60 s ran out
    start = time.monotonic()
    jobs.pause("job-elsewhere", 0.2)  # not ours: a plain sleep
    assert time.monotonic() - start >= 0.2
