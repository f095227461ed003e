"""The server's background loop: a failing pass does not end it; busy passes do not wait."""

from __future__ import annotations

import threading

from flow.server.worker import Worker


class Counting(Worker):
    name = "counting"

    def __init__(self, fail_first: int, busy_until: int):
        super().__init__(interval=60.0, error_wait=0.01)  # an idle wait would outlast the test
        self.fail_first, self.busy_until, self.passes = fail_first, busy_until, 0
        self.reached = threading.Event()

    def step(self) -> bool:
        self.passes += 1
        if self.passes <= self.fail_first:
            raise RuntimeError("database away")
        if self.passes >= self.busy_until:
            self.reached.set()
            return False
        return True


def test_failed_passes_are_retried_and_busy_passes_follow_at_once(caplog):
    w = Counting(fail_first=3, busy_until=10)
    w.start()
    try:
        assert w.reached.wait(5), f"only {w.passes} passes"
        assert w.alive
    finally:
        w.stop()
    assert not w.alive and w.passes == 10  # then it waited its interval, until stopped
    assert sum("a pass failed" in r.message for r in caplog.records) == 3
