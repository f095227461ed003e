"""The standalone transport's wake-ups: a reader sleeps on a FIFO in each folder it waits
on and a writer wakes it after each message, so delivery does not wait for a poll; where
no FIFO can be made, polling alone still delivers everything."""

from __future__ import annotations

import os
import select
import stat
import threading
from pathlib import Path

import pytest

from federation.api import Party
from federation.standalone import StandaloneFederation
from flow.core.errors import FederationTimeout

IDS = ["9999", "10000"]
GUEST, HOST = Party("guest", "9999"), Party("host", "10000")


@pytest.fixture
def pair(tmp_path: Path):
    guest = StandaloneFederation("job_wake", GUEST, tmp_path, parties=IDS)
    host = StandaloneFederation("job_wake", HOST, tmp_path, parties=IDS)
    yield guest, host
    guest.close()
    host.close()
    guest.cleanup()


def test_a_message_wakes_its_reader_before_any_poll_would(pair, monkeypatch):
    guest, host = pair
    asleep, woken = threading.Event(), []
    real_select = select.select

    def watched_select(rlist, wlist, xlist, timeout):
        asleep.set()
        ready = real_select(rlist, wlist, xlist, timeout)
        woken.append(bool(ready[0]))
        return ready
    monkeypatch.setattr(select, "select", watched_select)
    host.poll_min = host.poll_max = 600.0  # its first sleep lasts the whole get: only a wake-up ends it early

    def send() -> None:
        asleep.wait(30)
        guest.remote([1, 2, 3], "w", "t", [HOST])
    sender = threading.Thread(target=send)
    sender.start()
    assert host.get("w", "t", [GUEST], timeout=30) == [[1, 2, 3]]
    sender.join()
    assert woken == [True], "the reader slept out its timeout instead of being woken by the message"
    fifo = host.root / f"{GUEST.role}-{GUEST.party_id}.{HOST.role}-{HOST.party_id}" / ".wake"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_without_fifos_polling_still_delivers(pair, monkeypatch):
    guest, host = pair

    def no_fifo(*_args, **_kwargs):
        raise OSError("FIFOs are not supported here")
    monkeypatch.setattr(os, "mkfifo", no_fifo)
    guest.remote({"a": 1}, "x", "t", [HOST])
    assert host.get("x", "t", [GUEST], timeout=30) == [{"a": 1}]
    assert host.poll_max == 0.005 and not host._wakes


def test_a_full_fifo_never_blocks_the_writer(pair):
    guest, host = pair
    channel = host.data_channel(GUEST, HOST)
    host._waiting([channel])
    fd = host._wakes[channel]
    with pytest.raises(BlockingIOError):  # fill the pipe as a reader that never drains would leave it
        while True:
            os.write(fd, b"\0" * 4096)
    guest.remote("still sent", "n", "t", [HOST])
    assert host.get("n", "t", [GUEST], timeout=30) == ["still sent"]


def test_a_reader_without_a_message_times_out_as_before(pair):
    _, host = pair
    with pytest.raises(FederationTimeout, match="waiting for 'none'"):
        host.get("none", "t", [GUEST], timeout=0.3)
