"""flow.core.procs.ForkedChild: the job's supervisor (forked from `flow job submit`) and its
party runtimes run as forked children; what each leaves behind decides how a job's failure
is reported, so the exit code, the log and the last word are checked here."""

from __future__ import annotations

import multiprocessing.spawn
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flow.core.procs import ForkedChild, pid_exists
from flow.runtime import job as jobs


def _finish(log: Path):
    """``before_exit`` that records the code it was given next to ``log``."""
    return lambda code: log.with_suffix(".code").write_text(str(code))


@pytest.mark.parametrize(("body", "code", "logged"), [
    ("return 0", 0, ""),
    ("return 7", 7, ""),
    ("raise SystemExit(3)", 3, ""),
    ("raise SystemExit('cannot start here')", 1, "cannot start here"),
    ("raise ValueError('bad plan')", 1, "ValueError: bad plan"),
])
def test_the_exit_code_and_log_say_how_the_target_ended(tmp_path: Path, body: str, code: int, logged: str):
    log = tmp_path / "child.log"
    scope: dict = {}
    exec(f"def target():\n    print('started', flush=True)\n    {body}\n", scope)  # noqa: S102 - the cases above
    child = ForkedChild(scope["target"], log, title="t", before_exit=_finish(log))
    assert child.wait(60) == code and child.returncode == code
    text = log.read_text()
    assert text.startswith("started\n") and logged in text, text
    assert log.with_suffix(".code").read_text() == str(code)  # the last word saw the same code
    assert child.usage is not None and child.usage.ru_maxrss > 0


def test_what_the_parent_buffered_is_not_written_again_by_the_child(tmp_path: Path):
    """`flow job submit` may have output of its own buffered when it forks the supervisor."""
    log = tmp_path / "child.log"
    script = ("import sys; from flow.core.procs import ForkedChild\n"
              "print('the parent line', end='')\n"
              "sys.exit(ForkedChild(lambda: print('the child line') or 0, sys.argv[1], title='t').wait(60))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the parent line"
    assert log.read_text() == "the child line\n"


def test_a_new_session_and_a_bare_main_for_the_childs_spawn_pools(tmp_path: Path):
    """A spawn pool's workers import the parent's ``__main__``; the child's is empty, so a
    supervisor forked from `flow`'s script never makes each worker import the CLI."""
    seen = tmp_path / "seen"

    def target() -> int:
        data = multiprocessing.spawn.get_preparation_data("worker")
        seen.write_text(f"{os.getsid(0) == os.getpid()} {'init_main_from_path' in data} "
                        f"{'init_main_from_name' in data} {sys.modules['__main__'].__dict__.get('__file__')}")
        return 0

    parents = sys.modules["__main__"]
    assert ForkedChild(target, tmp_path / "child.log", title="t", new_session=True).wait(60) == 0
    assert seen.read_text() == "True False False None"
    assert sys.modules["__main__"] is parents  # emptied in the child only, never in the parent


def test_wait_times_out_and_terminate_ends_the_child(tmp_path: Path):
    child = ForkedChild(lambda: time.sleep(60) or 0, tmp_path / "child.log", title="flow: supervisor of job j-1")
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.2)
    assert child.poll() is None and pid_exists(child.pid)
    # its title, not this process's command line: how the runtime knows a job's live processes
    assert Path(f"/proc/{child.pid}/cmdline").read_bytes().startswith(b"flow: supervisor of job j-1")
    jobs._started.pop(child.pid, None)
    assert jobs.process_alive(child.pid, "j-1") and not jobs.process_alive(child.pid, "j-2")
    child.terminate()
    assert child.wait(30) == -15  # as Popen says it: killed by SIGTERM
    child.kill()  # a no-op once it has ended
