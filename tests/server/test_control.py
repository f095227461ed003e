"""The control plane's rules, with two servers on an in-memory transport (the broker's
signing and delivery are tested in tests/e2e/test_server_cluster.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federation.auth import PartyKeys, RouteTable
from flow.core.errors import FederationTimeout
from flow.core.settings import ServiceConf
from flow.server import control
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
        conf = ServiceConf(mode="cluster", home=str(home), server={"party_id": pid},
                           federation={"allow_insecure_transport": True})  # as a test broker needs
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


def test_a_query_that_finds_the_supervisor_gone_as_a_failed_report_lands_keeps_that_partys_reason(
        plane, monkeypatch):
    """The report kills this party's supervisor; a `job query` at that moment finds it gone. The
    query's own reason ("supervisor ... killed by SIGKILL") must not replace the party's."""
    guest, host = plane("9999"), plane("10000")
    job_id = guest.submit(_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(host, guest)
    guest.store.update_job(job_id, status="running", supervisor_pid=4242)
    monkeypatch.setattr(control.jobs, "_alive", lambda pid: False)  # nothing is killed here
    monkeypatch.setattr(control.jobs, "process_alive", lambda pid, job_id: False)
    found_gone = control.jobs.supervisor_gone

    def report_lands_meanwhile(home, job):  # between the query's look at the job and its write
        guest._peer_ended(job_id, "10000", "party 10000 failed: its server restarted")
        return found_gone(home, job)

    monkeypatch.setattr(control.jobs, "supervisor_gone", report_lands_meanwhile)
    job = control.jobs.end_orphaned(guest.store, guest.store.job(job_id), guest.home)
    assert (job["status"], job["reason"]) == ("failed", "party 10000 failed: its server restarted")
    assert {t["reason"] for t in guest.store.tasks(job_id)} == {"party 10000 failed: its server restarted"}


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


def _latest_plan():
    plan = _plan()
    conf = json.loads(json.dumps(plan.raw_conf))
    conf["component_parameters"]["role"]["host"]["0"]["reader_0"]["table"]["name"] = "breast_{latest}"
    return _plan(**conf)


def _upload(host: control.ControlPlane, names: list[str], tmp_path: Path) -> None:
    """Tables of the host's own storage, stored in this order (the last is the newest)."""
    from flow.ops.local import LocalOps

    csv = tmp_path / "t.csv"
    csv.write_text("id,x0,x1\n1,0.5,1.5\n2,2.5,3.5\n")
    for name in names:
        LocalOps(host.conf, host.store).data_upload(csv, "experiment", name)


def test_a_proposal_with_latest_is_checked_and_recorded_on_the_newest_table_of_the_party(plane, tmp_path):
    from flow.governance.privileges import check_job_access, grant

    guest, host = plane("9999"), plane("10000")
    _upload(host, ["breast_v1", "breast_v2", "other_v3"], tmp_path)
    host.access_check = check_job_access
    grant(host.store, "9999", "experiment", "breast_v1")  # an older version only: refused
    first = guest.submit(_latest_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(guest, host)
    job = guest.store.job(first)
    assert job["status"] == "failed" and "table experiment/breast_v2 is not granted" in job["reason"], job["reason"]

    grant(host.store, "9999", "experiment", "breast_v2")
    second = guest.submit(_latest_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(guest, host)
    assert sorted(plane.started) == [("10000", second), ("9999", second)]
    recorded = json.loads((host.home / "jobs" / second / "conf.json").read_text())
    assert recorded["component_parameters"]["role"]["host"]["0"]["reader_0"]["table"]["name"] == "breast_v2"
    # the initiator's copy keeps the placeholder: only the host resolves its own tables
    mine = guest.store.job(second)["conf"]["component_parameters"]["role"]["host"]["0"]["reader_0"]["table"]
    assert mine["name"] == "breast_{latest}"


def test_a_proposal_whose_latest_table_is_missing_is_refused_naming_the_pattern(plane):
    guest, host = plane("9999"), plane("10000")
    job_id = guest.submit(_latest_plan(), "conf.json", "dsl.json")["job_id"]
    _exchange(guest, host)
    job = guest.store.job(job_id)
    assert job["status"] == "failed" and "matches 'breast_{latest}'" in job["reason"], job["reason"]
    assert host.checks == [] and host.store.jobs() == []


def test_a_schedule_fired_by_the_guests_server_resolves_latest_at_each_party_in_its_own_storage(plane, tmp_path):
    """The guest's firing resolves only the guest's tables; the host resolves its own when
    the job is proposed to it."""
    from flow.server.app import server_scheduler

    guest, host = plane("9999"), plane("10000")
    _upload(guest, ["guest_v1", "guest_v2"], tmp_path)
    _upload(host, ["breast_v1", "breast_v2"], tmp_path)
    plan = _latest_plan()
    conf = json.loads(json.dumps(plan.raw_conf))
    conf["component_parameters"]["role"]["guest"]["0"]["reader_0"]["table"]["name"] = "guest_{latest}"
    (tmp_path / "conf.json").write_text(json.dumps(conf))
    (tmp_path / "dsl.json").write_text(json.dumps(plan.raw_dsl))
    sched = server_scheduler(guest.conf, guest.store, guest)
    sched.add("nightly", "0 3 1 1 *", str(tmp_path / "conf.json"), str(tmp_path / "dsl.json"))
    job_id = sched.run_now("nightly")
    _exchange(guest, host)
    assert sorted(plane.started) == [("10000", job_id), ("9999", job_id)]

    def reader(home: Path, role: str) -> str:
        recorded = json.loads((home / "jobs" / job_id / "conf.json").read_text())
        return recorded["component_parameters"]["role"][role]["0"]["reader_0"]["table"]["name"]

    assert (reader(guest.home, "guest"), reader(guest.home, "host")) == ("guest_v2", "breast_{latest}")
    assert reader(host.home, "host") == "breast_v2"
    assert host.checks[0][1] == [{"namespace": "experiment", "name": "breast_v2"}]
