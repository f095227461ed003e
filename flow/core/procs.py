"""Processes: whether a process id is in use (the one test the runtime, the metrics folder
and the detached server each need), and a function run in a forked child (the job's
supervisor and its party runtimes)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Callable

import setproctitle


def pid_exists(pid: int) -> bool:
    """True while ``pid`` names a process (a zombie included), whoever owns it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ForkedChild:
    """``target()`` run in a forked child, with the part of Popen's interface the runtime
    uses (pid, poll, wait, terminate, kill, returncode): the child starts with everything its
    parent imported, where a fresh interpreter would pay ~1 s of imports again.

    The child's stdout and stderr append to ``log``, its stdin is /dev/null. Its exit code is
    what ``target`` returns, a ``SystemExit``'s code, or 1 with the traceback in ``log``;
    ``before_exit(code)`` runs last (the child leaves by ``os._exit``: no at-exit work runs).
    ``title`` replaces the command line ``ps`` and /proc show: a child forked from ``flow job
    submit`` would otherwise show that command, and the runtime tells a job's live processes
    from reused pids by the job id in their command line."""

    def __init__(self, target: Callable[[], int], log: Path, *, title: str, new_session: bool = False,
                 before_exit: Callable[[int], None] | None = None):
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()  # else the child's copy of what the parent buffered lands in ``log``
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            code = 1
            try:
                setproctitle.setproctitle(title)
                if new_session:
                    os.setsid()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)  # a fresh interpreter's
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                # the parent's sys.stdout may be anything (a capture, a live display): the log's
                sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
                sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
                bare_main()
                code = target()
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except BaseException:  # noqa: BLE001 - report anything, then leave without cleanup
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    if before_exit is not None:
                        before_exit(code)
                finally:
                    os._exit(code)
        os.close(fd)
        self.pid: int = pid
        self.returncode: int | None = None
        self.usage: resource.struct_rusage | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.returncode, self.usage = os.waitstatus_to_exitcode(status), usage
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return code

    def _signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


def bare_main() -> None:
    """Give this (forked) process an empty ``__main__``: a spawn pool's workers import the
    parent's main module, and a child forked from ``flow``'s console script would otherwise
    have each of them import the whole CLI first (~1 s)."""
    sys.modules["__main__"] = types.ModuleType("__main__")
