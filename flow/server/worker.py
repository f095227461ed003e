"""The background threads of a flow server (control plane, job detector, schedules):
one loop shape, kept here once."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("fedweave.server")


class Worker:
    """Runs :meth:`step` in a daemon thread from :meth:`start` to :meth:`stop`.

    ``step`` returns True when more work is waiting (the next pass starts at once), else
    the thread waits ``interval`` seconds. A pass that raises is logged and the next one
    comes after ``error_wait``: a server duty must outlive a broker or database that is
    briefly away."""

    name = "worker"
    join_timeout = 10.0

    def __init__(self, interval: float, error_wait: float | None = None):
        self.interval = interval
        self.error_wait = interval if error_wait is None else error_wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> bool:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception:  # noqa: BLE001 - see the class docstring
                log.exception("%s: a pass failed; next one in %gs", self.name, self.error_wait)
                self._stop.wait(self.error_wait)
                continue
            if not busy:
                self._stop.wait(self.interval)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)
