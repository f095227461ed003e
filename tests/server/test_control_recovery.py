# ruff: noqa: F811 - the fixture `plane` of tests/server/test_control.py is a parameter of each test
"""The control plane recovers from what used to wedge it for good: a message dropped (bad
signature), corrupt or lost never blocks the later ones, a restarted server resynchronises
by hello, a party that cannot verify the initiator says so and the job fails at once, and a
silent party fails the job after ``server.proposal_timeout``. Two servers on the in-memory
transport of tests/server/test_control.py (over RabbitMQ: tests/e2e/test_control_recovery.py)."""

from __future__ import annotations

import json

import pytest

from federation.auth import PartyKeys, RouteTable, key_fingerprint
from federation.envelope import Rejection
from flow.server import control, control_link
from tests.server.test_control import MemoryFederation, _exchange, _plan, plane  # noqa: F401 - the fixture

BAD_SIGNATURE = "bad signature: not signed by party 9999's key"


def _restart(old: control.ControlPlane, table: RouteTable | None = None) -> control.ControlPlane:
    """A new control plane of the same home and store (the server restarted)."""
    fed = MemoryFederation(old.fed.bus, old.party_id, table or old.fed.route_table)
    return control.ControlPlane(old.conf, old.store, federation=fed, audit=None, access_check=old.access_check)


def _drop(plane_fixture, src: str, dst: str) -> list[str]:
    """Remove every numbered message from ``src`` to ``dst`` waiting on the bus (lost on the broker)."""
    gone = [k for k in plane_fixture.bus.messages if k[:2] == (src, dst) and k[2] != control_link.HELLO]
    for key in gone:
        del plane_fixture.bus.messages[key]
    return [k[2] for k in gone]


def _rejected_at(host: control.ControlPlane, tag: str) -> None:
    """What the transport does with a message whose signature fails: drop it, call on_reject."""
    host.fed.bus.messages.pop(("9999", host.party_id, tag))
    host.fed.on_reject(Rejection(job_id=control.CONTROL_JOB, name=control.NAME, tag=tag, src="server:9999",
                                 reason=BAD_SIGNATURE, message_id="m", channel="q"))


def test_a_dropped_message_does_not_block_the_ones_after_it(plane, monkeypatch):
    monkeypatch.setattr(control_link, "GAP_GRACE_S", 0.0)
    guest, host = plane("9999"), plane("10000")
    first = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    guest.poll_once()
    assert _drop(plane, "9999", "10000") == ["0"]
    second = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(guest, host, rounds=4)
    assert sorted(plane.started) == [("10000", second), ("9999", second)]
    assert guest.store.job(first)["status"] == "waiting"  # until its proposal times out
    assert host.state["recv"]["9999"] >= 2 and not host.state["ahead"]["9999"]


def test_a_restarted_server_skips_what_never_came_by_the_peers_hello_without_waiting(plane):
    """B waits for message 5 from A, A has sent up to 9: B's hello makes A answer with its
    count, and B goes on at once (the gap grace is not waited for)."""
    guest, host = plane("9999"), plane("10000")
    _exchange(guest, host)
    for _ in range(5):  # messages that never reach the host
        guest.send("10000", {"type": "status", "job_id": "gone", "status": "running", "tasks": []})
        guest.poll_once()
        _drop(plane, "9999", "10000")
    assert guest.state["sent"]["10000"] == 5 and host.state["recv"].get("9999", 0) == 0
    host = _restart(host)
    host.poll_once()  # its hello asks the guest for its count
    guest.poll_once()
    host.poll_once()
    assert host.state["recv"]["9999"] == 5
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(guest, host)
    assert sorted(plane.started) == [("10000", job_id), ("9999", job_id)]


def test_a_copy_of_a_message_is_handled_once(plane):
    guest, host = plane("9999"), plane("10000")
    stops = []
    host.handlers["stop"] = lambda peer, msg: stops.append(msg["mid"])
    guest.send("10000", {"type": "stop", "job_id": "j1"})
    guest.poll_once()
    plane.bus.messages[("9999", "10000", "1")] = plane.bus.messages[("9999", "10000", "0")]  # resent
    _exchange(guest, host)
    assert len(stops) == 1 and host.state["recv"]["9999"] == 2


def test_an_older_status_report_arriving_late_is_dropped(plane, monkeypatch):
    monkeypatch.setattr(control_link, "GAP_GRACE_S", 0.0)
    guest, host = plane("9999"), plane("10000")
    seen = []
    guest.handlers["status"] = lambda peer, msg: seen.append(msg["status"])
    host.send("9999", {"type": "status", "job_id": "j1", "status": "running", "tasks": []})
    host.send("9999", {"type": "status", "job_id": "j1", "status": "success", "tasks": []})
    host.poll_once()
    late = plane.bus.messages.pop(("10000", "9999", "0"))
    guest.poll_once()  # takes 1, skips 0
    plane.bus.messages[("10000", "9999", "0")] = late
    guest._next_scan, guest.links._next_scan = 0.0, {}
    guest.poll_once()
    assert seen == ["success"]


def test_a_party_that_cannot_verify_the_initiator_says_so_and_the_job_fails_at_once(plane):
    guest, host = plane("9999"), plane("10000")
    right = host.fed.route_table
    wrong = right.with_party("9999", PartyKeys.generate("9999").public_key_b64)
    host.fed.route_table = wrong
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    guest.poll_once()
    _rejected_at(host, "0")
    host.poll_once()  # answers: cannot verify messages from 9999 with the key it holds
    guest.poll_once()
    job = guest.store.job(job_id)
    mine, held = key_fingerprint(right.public_key("9999")), key_fingerprint(wrong.public_key("9999"))
    assert job["status"] == "failed", job
    assert f"party 10000 cannot verify messages from party 9999 with the key it holds for 9999 (fingerprint " \
           f"{held}; party 9999's key is {mine})" in job["reason"]
    assert {t["status"] for t in guest.store.tasks(job_id)} == {"failed"}
    assert host.store.jobs() == [] and plane.started == []

    host = _restart(host, right)  # the key fixed, the server restarted; no state file touched
    again = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(guest, host, rounds=4)
    assert sorted(plane.started) == [("10000", again), ("9999", again)]


def test_a_hello_naming_another_key_fails_the_proposals_waiting_on_that_party(plane):
    guest = plane("9999")
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    guest.poll_once()
    plane.bus.messages[("10000", "9999", control_link.HELLO)] = {
        "type": "hello", "reply": False, "party": "10000", "fingerprint": "f", "holds": "0123456789abcdef",
        "epoch": "e", "next": 0, "seen": {}}
    guest.poll_once()
    job = guest.store.job(job_id)
    assert job["status"] == "failed" and "fingerprint 0123456789abcdef" in job["reason"]


def test_a_notice_about_a_message_this_party_did_not_sign_fails_nothing(plane, caplog):
    """An impostor's message dropped at the host: the host holds the initiator's right key,
    so the initiator's own proposals are fine."""
    guest, host = plane("9999"), plane("10000")
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    host.fed.on_reject(Rejection(job_id=control.CONTROL_JOB, name=control.NAME, tag="999999",
                                 src="server:9999", reason=BAD_SIGNATURE, message_id="m", channel="q"))
    _exchange(host, guest)
    assert "claiming to come from this party" in caplog.text
    _exchange(guest, host)
    assert sorted(plane.started) == [("10000", job_id), ("9999", job_id)]


def test_a_silent_party_fails_the_proposal_after_the_timeout_naming_it(plane):
    guest = plane("9999")
    guest.conf.server.proposal_timeout = 0.05
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    guest.poll_once()
    import time

    time.sleep(0.1)
    guest._next_scan = 0.0
    guest.poll_once()
    job = guest.store.job(job_id)
    assert job["status"] == "failed"
    assert job["reason"].startswith("party 10000 did not answer the proposal in 0.05s (transport not checked; "
                                    "no hello from party 10000's server"), job["reason"]
    peers = json.loads((guest.home / "jobs" / job_id / "peers.json").read_text())
    assert peers == {"10000": "silent"}


def test_an_answer_after_the_timeout_stops_the_party(plane):
    guest, host = plane("9999"), plane("10000")
    guest.conf.server.proposal_timeout = 0.01
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    guest.poll_once()
    import time

    time.sleep(0.05)
    guest._next_scan = 0.0
    guest.poll_once()
    assert guest.store.job(job_id)["status"] == "failed"
    _exchange(host, guest, rounds=3)
    job = host.store.job(job_id)
    assert job["status"] == "canceled" and "did not answer" in job["reason"] and plane.started == []


def test_an_initiator_restarted_before_its_proposal_went_out_proposes_again(plane):
    guest, host = plane("9999"), plane("10000")
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]  # still in the outbox only
    guest = _restart(guest)
    _exchange(guest, host)
    assert sorted(plane.started) == [("10000", job_id), ("9999", job_id)]


def test_a_peer_whose_state_was_reset_is_followed(plane, monkeypatch):
    guest, host = plane("9999"), plane("10000")
    for _ in range(3):
        guest.send("10000", {"type": "status", "job_id": "x", "status": "running", "tasks": []})
    _exchange(guest, host)
    assert host.state["recv"]["9999"] == 3
    guest.state_path.unlink()  # the guest's control state is lost: it numbers from 0 again
    guest = _restart(guest)
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(guest, host, rounds=4)
    assert sorted(plane.started) == [("10000", job_id), ("9999", job_id)]


@pytest.mark.parametrize("tags,text", [([1, 2, 3, 7], "1-3, 7"), ([5], "5"), ([1, 3, 4], "1, 3-4")])
def test_ranges(tags, text):
    assert control_link._ranges(tags) == text
