"""`flow server start --detach` / `flow server stop`: a server that outlives the command
that started it, its pid and log files, a second start refused while it runs, and a start
that cannot listen reported with the server's own reason."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path

import pytest

from .conftest import FlowCLI

pytestmark = pytest.mark.e2e


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a loopback URL of the test
        return json.loads(resp.read())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())  # an unreaped zombie has ended


def test_detach_stop_and_refusals(flow: FlowCLI):
    started = flow.ok("server", "start", "--detach", "--port", "0")
    pid, home = started["pid"], flow.home
    try:
        assert started["detached"] and _alive(pid)
        assert (home / "server.pid").read_text().strip() == str(pid)
        assert Path(started["log_file"]) == home / "logs" / "flow_server.log"
        assert "listening on " + started["url"] in Path(started["log_file"]).read_text()
        assert _get(started["url"] + "/healthz")["pid"] == pid  # the command ended; the server serves

        again = flow("server", "start", "--detach", "--port", "0")
        assert again.code != 0 and f"pid {pid}" in again.out["retmsg"] and "already serves" in again.out["retmsg"]
        foreground = flow("server", "start", "--port", "0")
        assert foreground.code != 0 and "already serves" in foreground.out["retmsg"]

        stopped = flow.ok("server", "stop")
        assert stopped == {"pid": pid, "home": str(home), "stopped": True, "killed": False}
        assert not _alive(pid)
        assert not (home / "server.pid").exists() and not (home / "server.json").exists()
    finally:
        if _alive(pid):
            os.kill(pid, 9)
    nothing = flow("server", "stop")
    assert nothing.code != 0 and nothing.out["retmsg"] == f"no flow server runs for home {home}"


def test_a_detached_start_that_cannot_listen_says_why(flow: FlowCLI):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = flow("server", "start", "--detach", "--port", str(port))
    assert res.code != 0
    assert res.out["retmsg"].startswith("the flow server did not start (exit 2): flow server cannot listen on "
                                        f"127.0.0.1:{port}")
    assert not (flow.home / "server.pid").exists()
