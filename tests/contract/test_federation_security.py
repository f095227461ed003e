"""Messages that must never reach a component, on every transport (the ``transport``
fixture of tests/contract/conftest.py): signed by a key the route table does not list,
a payload that does not match its checksum, addressed to another job or receiver,
altered after signing, or no frame at all. Each
is dropped, recorded (``on_reject``, ``rejections``, a warning naming the job) and
removed from the broker for good, while the genuine message on the same channel is
delivered as sent. Standalone-only cases (partial files, paths) are in
tests/unit/test_standalone_security.py."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any, Callable

import pytest

from federation._mq import MessageFederation
from federation.api import Party
from federation.auth import PartyKeys
from federation.envelope import PartyRef, open_frame, seal
from flow.core.errors import FederationTimeout

GUEST, HOST, HOST2 = Party("guest", "9999"), Party("host", "10000"), Party("host", "10001")
NAME, TAG = "w", "iter.1"


def reseal(data: bytes, keys: PartyKeys, payload: bytes | None = None, fix_sha: bool = True, **changes: Any) -> bytes:
    """A frame with header fields changed and signed by ``keys``."""
    frame = open_frame(data)
    body = bytes(frame.payload) if payload is None else payload
    if fix_sha:
        changes["sha256"] = hashlib.sha256(body).hexdigest()
    return seal(frame.header.model_copy(update=changes), body, keys)


def decoy(sender: MessageFederation, obj: Any = "decoy") -> bytes:
    """A genuine single-message frame of ``obj`` for NAME/TAG to HOST, to tamper with."""
    ((_, _, data),) = sender.frames(obj, NAME, TAG, HOST)
    return data


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


#: case -> (forge(genuine frame, the sender's real keys) -> bytes, the reason recorded)
CASES: dict[str, tuple[Callable[[bytes, PartyKeys], bytes], str]] = {
    "key not in route table": (lambda d, k: reseal(d, PartyKeys.generate("9999")), "bad signature"),
    "unknown party": (
        lambda d, k: reseal(d, PartyKeys.generate("6666"), src=PartyRef(role="guest", party_id="6666")),
        "unknown party 6666",
    ),
    "checksum mismatch": (lambda d, k: _flip_last_byte(d), "checksum"),
    "checksum of other bytes, signed": (lambda d, k: reseal(d, k, payload=b"other bytes", fix_sha=False), "checksum"),
    "another job": (lambda d, k: reseal(d, k, job_id="job_other"), "for job job_other"),
    "another receiver": (lambda d, k: reseal(d, k, dst=PartyRef(role="host", party_id="10001")), "for host:10001"),
    "header changed after signing": (lambda d, k: d.replace(f'"{TAG}"'.encode(), b'"iter.2"'), "bad signature"),
    "not a frame": (lambda d, k: b"\x80\x04garbage", "not a fedweave message frame"),
    "bad header": (lambda d, k: d.replace(b'"n":1', b'"n":0'), "invalid message header"),
}


def _wait_for(fed: MessageFederation, seen: list, count: int, within: float = 30.0) -> None:
    """Let ``fed`` read its channel from GUEST until ``count`` messages were dropped (bounded)."""
    deadline = time.monotonic() + within
    while len(seen) < count and time.monotonic() < deadline:
        with pytest.raises(FederationTimeout):
            fed.get("nothing", "0", [GUEST], timeout=0.05)


@pytest.mark.parametrize("case", list(CASES))
def test_forged_message_is_dropped_recorded_and_never_delivered(transport, case, caplog):
    job_id = f"job_{uuid.uuid4().hex[:10]}"
    seen: list = []
    guest = transport.endpoint(job_id, GUEST, default_timeout=30)
    host = transport.endpoint(job_id, HOST, default_timeout=30, on_reject=seen.append)
    forge, reason = CASES[case]
    channel = guest.data_channel(GUEST, HOST)
    with caplog.at_level(logging.WARNING, logger="federation._mq"):
        guest._publish(channel, f"forged-{uuid.uuid4().hex[:8]}", forge(decoy(guest, {"forged": True}), guest.keys))
        guest._flush()
        guest.remote({"genuine": True}, NAME, TAG, [HOST])
        assert host.get(NAME, TAG, [GUEST], timeout=30) == [{"genuine": True}]
        _wait_for(host, seen, 1)
    assert len(seen) == 1 and reason in seen[0].reason, seen
    assert list(host.rejections) == seen
    assert any("dropped message" in r.getMessage() and job_id in r.getMessage() for r in caplog.records)
    # removed for good: a new endpoint of the receiver (a restart) is handed nothing again
    host.close()
    again: list = []
    fresh = transport.endpoint(job_id, HOST, default_timeout=30, on_reject=again.append)
    with pytest.raises(FederationTimeout):
        fresh.get(NAME, TAG, [GUEST], timeout=1.0)
    assert not again and not fresh.rejections


def test_message_on_another_senders_channel_is_dropped(transport):
    """Genuinely signed by host:10001, but put on the channel guest:9999 sends on."""
    job_id = f"job_{uuid.uuid4().hex[:10]}"
    seen: list = []
    guest = transport.endpoint(job_id, GUEST, default_timeout=30)
    host2 = transport.endpoint(job_id, HOST2, default_timeout=30)
    host = transport.endpoint(job_id, HOST, default_timeout=30, on_reject=seen.append)
    guest._publish(guest.data_channel(GUEST, HOST), "misrouted", decoy(host2))
    guest._flush()
    _wait_for(host, seen, 1)
    assert len(seen) == 1 and "on the channel of guest:9999" in seen[0].reason


def test_forged_abort_does_not_fail_the_receiver(transport):
    """An abort signed by a key not in the route table never ends the receiver's wait."""
    job_id = f"job_{uuid.uuid4().hex[:10]}"
    seen: list = []
    guest = transport.endpoint(job_id, GUEST, default_timeout=30)
    host = transport.endpoint(job_id, HOST, default_timeout=30, on_reject=seen.append)
    guest.keys = PartyKeys.generate("9999")  # the same sender, now signing with a stranger's key
    guest.abort("stop everything", [HOST])
    _wait_for(host, seen, 1)  # an accepted abort would end these waits with PeerFailed
    assert len(seen) == 1 and "bad signature" in seen[0].reason
