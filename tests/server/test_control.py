"""The control plane's rules, with two servers on an in-memory transport (the broker's
signing and delivery are tested in tests/e2e/test_server_cluster.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federation.auth import PartyKeys, RouteTable
from flow.errors import FederationTimeout
from flow.server import control
from flow.settings import ServiceConf
from flow.store import Store

ROOT = Path(__file__).resolve().parents[2]


class Bus:
    """Messages by (src, dst, tag), JSON round-tripped as the codec would."""

    def __init__(self):
        self.messages: dict[tuple[str, str, str], object] = {}


class MemoryFederation:
    def __init__(self, bus: Bus, me: str, table: RouteTable):
        self.bus, self.me, self.route_table = bus, me, table

    def remote(self, obj, name, tag, parties):
        for p in parties:
            self.bus.messages[(self.me, p.party_id, tag)] = json.loads(json.dumps(obj))

    def get(self, name, tag, parties, timeout=None):
        key = (parties[0].party_id, self.me, tag)
        if key not in self.bus.messages:
            raise FederationTimeout(f"no {tag}")
        return [self.bus.messages.pop(key)]

    def close(self):
        pass


@pytest.fixture
def plane(tmp_path: Path, monkeypatch):
    """make(party_id, refusals) -> ControlPlane on a shared bus; supervisors are not started."""
    bus = Bus()
    table = RouteTable.from_dict({"parties": {p: {"public_key": PartyKeys.generate(p).public_key_b64}
                                              for p in ("9999", "10000", "10001")}})
    monkeypatch.delenv("FLOW_HOME", raising=False)  # each server's home is its conf's
    started: list[tuple[str, str]] = []
    monkeypatch.setattr(control.jobs, "_start_supervisor", lambda conf, job_id: started.append(
        (conf.server.party_id, job_id)) or 4242)
    planes = []

    def make(pid: str, refusals: list[str] | None = None) -> control.ControlPlane:
        home = tmp_path / pid
        conf = ServiceConf(mode="cluster", home=str(home), server={"party_id": pid})
        home.mkdir()
        store = Store.for_home(home)
        seen = []

        def check(store, initiator, tables, **kw):
            seen.append((initiator, tables, kw))
            return list(refusals or [])

        p = control.ControlPlane(conf, store, federation=MemoryFederation(bus, pid, table), audit=None,
                                 access_check=check)
        p.checks = seen
        planes.append(p)
        return p

    make.started = started
    make.bus = bus
    yield make
    for p in planes:
        p.store.close()


def _plan(**changes):
    from flow.dsl.loader import plan_from_dicts

    conf = json.loads((ROOT / "examples/hetero_lr/conf.json").read_text())
    dsl = json.loads((ROOT / "examples/hetero_lr/dsl.json").read_text())
    conf.update(changes)
    return plan_from_dicts(conf, dsl)


def _exchange(*planes, rounds: int = 3) -> None:
    for _ in range(rounds):
        for p in planes:
            p._next_scan = 0.0  # scan the store on every poll here
            p.poll_once()


def test_an_accepted_proposal_starts_both_parties_with_their_own_share(plane):
    guest, host = plane("9999"), plane("10000")
    info = guest.submit(_plan(), "conf.json", "dsl.json")
    job_id = info["job_id"]
    assert info["proposed_to"] == ["10000"] and plane.started == []  # nothing runs before the answer
    host.poll_once()
    guest.poll_once()
    host.poll_once()
    assert host.store.job(job_id)["status"] == "waiting" and plane.started == []  # accepted, not started
    _exchange(guest, host)
    assert sorted(plane.started) == [("10000", job_id), ("9999", job_id)]
    assert {(t["role"], t["party_id"]) for t in host.store.tasks(job_id)} == {("host", "10000"), ("arbiter", "10000")}
    assert {(t["role"], t["party_id"]) for t in guest.store.tasks(job_id)} == {("guest", "9999")}
    initiator, tables, kw = host.checks[0]
    assert initiator == "9999" and tables == [{"namespace": "experiment", "name": "breast_hetero_host"}]
    assert kw["initiator_role"] == "guest" and kw["local_party_id"] == "10000"
    # the host reports its tasks; the initiator shows them
    assert {r["party_id"] for r in control.remote_reports(guest.home, job_id)} == {"10000"}


def test_a_refused_proposal_fails_the_job_at_the_initiator_with_the_reason(plane):
    guest, host = plane("9999"), plane("10000", refusals=["experiment/breast_hetero_host is not granted to 9999"])
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(host, guest)
    job = guest.store.job(job_id)
    assert job["status"] == "failed"
    assert job["reason"] == "rejected by party 10000: experiment/breast_hetero_host is not granted to 9999"
    assert plane.started == [] and host.store.jobs() == []


def test_a_party_proposing_a_job_it_does_not_initiate_is_refused(plane):
    guest, host = plane("9999"), plane("10000")
    plan = _plan(initiator={"role": "host", "party_id": 10000})
    guest.send("10000", {"type": "propose", "job_id": "j_forged", "conf": plan.raw_conf, "dsl": plan.raw_dsl})
    guest.poll_once()
    host.poll_once()
    answer = plane.bus.messages[("10000", "9999", "0")]
    assert answer["type"] == "reject" and "whose initiator is 10000" in answer["reason"]
    assert host.store.jobs() == []


def test_a_message_naming_a_path_as_job_id_is_ignored(plane, tmp_path):
    guest, host = plane("9999"), plane("10000")
    guest.send("10000", {"type": "status", "job_id": "../../escape", "status": "failed", "tasks": []})
    _exchange(guest, host)
    assert not (tmp_path / "escape").exists() and host.state["recv"]["9999"] == 1


def test_a_failed_report_ends_the_initiators_job_with_that_partys_reason(plane):
    guest, host = plane("9999"), plane("10000")
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(host, guest)
    guest.store.update_job(job_id, status="running", supervisor_pid=None)
    host.store.update_job(job_id, status="failed", reason="job supervisor (pid 7) is gone")
    _exchange(host, guest)
    job = guest.store.job(job_id)
    assert job["status"] == "failed" and job["reason"] == "party 10000 failed: job supervisor (pid 7) is gone"
    assert {t["status"] for t in guest.store.tasks(job_id)} == {"failed"}


def test_one_refusal_means_nobody_starts_even_a_party_that_accepted(plane):
    guest, host = plane("9999"), plane("10000", refusals=["breast_hetero_host is not granted"])
    arbiter = plane("10001")
    job_id = guest.submit(_plan(role={"guest": [9999], "host": [10000], "arbiter": [10001]}),
                          "conf.json", "dsl.json")["job_id"]
    _exchange(guest, host, arbiter, rounds=4)
    assert plane.started == []
    assert guest.store.job(job_id)["status"] == "failed"
    job = arbiter.store.job(job_id)  # it had accepted; the initiator called it off
    assert job["status"] == "canceled" and "not granted" in job["reason"] and not job["supervisor_pid"]
