"""Three flow servers (guest, host, arbiter), each with its own home, store and keys,
connected only through RabbitMQ (and once through Pulsar): a job submitted to the guest's server is proposed to
the others, accepted where the initiator was granted the tables, and trains the
standalone model; a job reading a table not granted is rejected with the reason shown
at the initiator; a control message signed by an unknown key is dropped and audited."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import service_unavailable

from .conftest import EXAMPLES, ROOT, load_example, with_lr_params, write_job
from .test_server import InProcessCLI

pytestmark = pytest.mark.e2e

TOKEN = secrets.token_urlsafe(32)  # a cluster server refuses a token weaker than 32 random bytes
RABBIT = {"host": "127.0.0.1", "port": 5672, "user": "guest", "password": "guest", "vhost": "/"}
PARTIES = {"guest": "9999", "host": "10000", "arbiter": "10001"}


def _rabbit_up() -> bool:
    try:
        socket.create_connection((RABBIT["host"], RABBIT["port"]), timeout=2).close()
        return True
    except OSError:
        return False


def _start(home: Path) -> subprocess.Popen:
    """`flow server start` of a home on a free port."""
    env = dict(os.environ, FLOW_HOME=str(home))
    env.pop("FEDWEAVE_SERVICE_CONF", None)
    with open(home / "server.err", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "flow.cli.main", "server", "start", "--port", "0"],
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)


@contextmanager
def three_servers(root: Path, engine: str, settings: dict):
    """{party_id: home} of three running servers talking over ``engine`` (and "procs": their
    processes), the host having granted the guest its table."""
    from federation.auth import KeyStore, RouteTable

    homes = {pid: root / f"org_{pid}" for pid in PARTIES.values()}
    for pid, home in homes.items():
        home.mkdir(parents=True)
        (home / "service_conf.yaml").write_text(yaml.safe_dump({
            "mode": "cluster", "default_engines": {"federation": engine},
            # the local test brokers speak plain text: a cluster server refuses that unless told
            "federation": {engine: settings, "allow_insecure_transport": True},
            "route_table": "route_table.yaml",
            "server": {"token": TOKEN, "party_id": pid, "detect_interval": 1}}))
    table = RouteTable.from_dict({"parties": {
        pid: {"public_key": KeyStore(home).load_or_create(pid).public_key_b64} for pid, home in homes.items()}})
    for home in homes.values():
        table.dump(home / "route_table.yaml")
    guest, host = InProcessCLI(homes["9999"]), InProcessCLI(homes["10000"])  # standalone: each its own
    guest.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    host.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    host.ok("privilege", "grant", "--party", "9999", "--namespace", "experiment", "--name", "breast_hetero_host")
    procs = {pid: _start(home) for pid, home in homes.items()}
    try:
        end = time.monotonic() + 90
        while not all((h / "server.json").exists() for h in homes.values()) and time.monotonic() < end:
            assert all(p.poll() is None for p in procs.values()), [(h / "server.err").read_text()
                                                                   for h in homes.values()]
            time.sleep(0.1)
        homes["procs"] = procs  # type: ignore[assignment] - the servers, for a test that kills one
        yield homes
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            p.wait(timeout=30)


def _client(homes: dict, root: Path) -> InProcessCLI:
    """A CLI pointed at the guest's server with `flow init`."""
    cli = InProcessCLI(root)
    port = json.loads((homes["9999"] / "server.json").read_text())["port"]
    assert cli.ok("init", "--ip", "127.0.0.1", "--port", port, "--token", TOKEN)["reachable"] is True
    return cli


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three servers over RabbitMQ (see :func:`three_servers`)."""
    if not _rabbit_up():
        service_unavailable("RabbitMQ on 127.0.0.1:5672")
    with three_servers(tmp_path_factory.mktemp("cluster"), "rabbitmq", RABBIT) as homes:
        yield homes
    _delete_control_queues()  # the servers keep them on purpose (their inbox while down); the test does not


def _control_queues() -> list[str]:
    from federation._rabbitmq_conf import CONTROL, queue_name
    from federation.api import Party
    from flow.server.control import CONTROL_JOB, ROLE

    pids = list(PARTIES.values())
    return [queue_name(CONTROL_JOB, Party(ROLE, dst), src, role) for dst in pids for src in pids
            for role in (ROLE, CONTROL)]


def _delete_control_queues() -> None:
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters(
        RABBIT["host"], RABBIT["port"], RABBIT["vhost"], pika.PlainCredentials(RABBIT["user"], RABBIT["password"])))
    try:
        for name in _existing_queues(_control_queues()):
            conn.channel().queue_delete(name)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def client(cluster, tmp_path_factory) -> InProcessCLI:
    return _client(cluster, tmp_path_factory.mktemp("cluster_client"))


def _job(tmp_path: Path, tag: str, **lr) -> tuple[Path, Path]:
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, **{"max_iter": 3, "encrypt_param": {"key_length": 512, "allow_short_key": True}, **lr})
    conf["role"]["arbiter"] = [int(PARTIES["arbiter"])]
    return write_job(tmp_path, conf, dsl, tag)


def _store(home: Path):
    from flow.store import Store

    return Store.for_home(home)


def test_a_job_submitted_to_the_guests_server_runs_on_all_three(cluster, client, breast, tmp_path):
    job_id = _runs_on_all_three(cluster, client, breast, tmp_path)
    entries = [e for e in _audit(cluster["10000"], "10000") if e.get("job") == job_id]
    assert any(e["kind"] == "job.proposal.accepted" for e in entries)

    # once every party has ended, each removes the job's queues it received on
    from federation.api import Party
    from federation.rabbitmq import queue_name

    inbound = [queue_name(job_id, Party("host", "10000"), "9999", "guest"),
               queue_name(job_id, Party("guest", "9999"), "10000", "host"),
               queue_name(job_id, Party("arbiter", "10001"), "10000", "host")]
    end = time.monotonic() + 60
    while (left := _existing_queues(inbound)) and time.monotonic() < end:
        time.sleep(0.5)
    assert not left


def test_three_servers_over_pulsar_train_the_standalone_model(breast, tmp_path):
    """The same between Pulsar's topics (a pulsar-lite broker, started here in the main thread)."""
    from tests.pulsar_broker import PulsarLiteBroker, require_broker

    require_broker()
    with PulsarLiteBroker(tmp_path / "pulsar-lite") as broker:
        with three_servers(tmp_path / "orgs", "pulsar", {"service_url": broker.url}) as homes:
            (tmp_path / "client").mkdir()
            job_id = _runs_on_all_three(homes, _client(homes, tmp_path / "client"), breast, tmp_path)
            accepted = [e for e in _audit(homes["10001"], "10001") if e.get("job") == job_id]
            assert [e["kind"] for e in accepted if e["kind"].startswith("job.")] == ["job.proposal.accepted"]
            end = time.monotonic() + 60  # every party's share of the topics is cleaned up, without error
            while not list((homes["9999"] / "jobs" / job_id).glob("cleaned.*")) and time.monotonic() < end:
                time.sleep(0.3)
            assert list((homes["9999"] / "jobs" / job_id).glob("cleaned.*"))
        for pid in PARTIES.values():
            assert "could not clean up" not in (homes[pid] / "server.err").read_text()


def _runs_on_all_three(cluster, client, breast, tmp_path) -> str:
    """hetero_lr submitted to the guest's server succeeds at all three parties with the
    standalone weights; returns its job id."""
    c, d = _job(tmp_path, "ok")
    reference = breast.ok("job", "submit", "-c", c, "-d", d)  # the same job standalone, alongside
    detail = client.ok("job", "submit", "-c", c, "-d", d, "--wait", timeout=300)
    job_id = detail["job_id"]
    assert detail["status"] == "success", detail["reason"]
    assert breast.wait(reference["job_id"])["status"] == "success"

    end = time.monotonic() + 60  # the others' final reports reach the initiator

    def reported(tasks: list[dict]) -> bool:  # every party's every task has its final state here
        return {t["role"] for t in tasks} == set(PARTIES) and all(
            t["status"] in ("success", "failed", "canceled", "timeout") for t in tasks)

    while not reported(detail["tasks"]) and time.monotonic() < end:
        time.sleep(0.5)
        detail = client.ok("job", "query", "-j", job_id)
    by_party = {(t["role"], t["party_id"]) for t in detail["tasks"]}
    assert by_party == {(r, p) for r, p in PARTIES.items()}
    assert all(t["status"] == "success" for t in detail["tasks"]), detail["tasks"]

    for role in ("guest", "host"):
        pid, home = PARTIES[role], cluster[PARTIES[role]]
        mine = InProcessCLI(home).ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid,
                                     "-cpn", "hetero_lr_0")
        ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", role, "-p", pid,
                        "-cpn", "hetero_lr_0")
        np.testing.assert_allclose(mine["model"]["weights"], ref["model"]["weights"], atol=1e-8)
    # each party's store and home hold only its own share
    for role, pid in PARTIES.items():
        store = _store(cluster[pid])
        assert {(t["role"], t["party_id"]) for t in store.tasks(job_id)} == {(role, pid)}
        assert store.job(job_id)["status"] == "success"
        store.close()
    assert not (cluster["9999"] / "data" / "experiment" / "breast_hetero_host").exists()
    assert not (cluster["10000"] / "data" / "experiment" / "breast_hetero_guest").exists()
    assert not (cluster["9999"] / "models" / job_id / "host").exists()
    assert not (cluster["10000"] / "models" / job_id / "guest").exists()
    return job_id


def _existing_queues(names: list[str]) -> list[str]:
    import pika
    import pika.exceptions as pe

    conn = pika.BlockingConnection(pika.ConnectionParameters(
        RABBIT["host"], RABBIT["port"], RABBIT["vhost"], pika.PlainCredentials(RABBIT["user"], RABBIT["password"])))
    found = []
    try:
        for name in names:
            ch = conn.channel()
            try:
                ch.queue_declare(name, passive=True)
                found.append(name)
                ch.close()
            except pe.ChannelClosedByBroker:
                pass
    finally:
        conn.close()
    return found


def _audit(home: Path, pid: str) -> list[dict]:
    from flow.governance.audit import AuditLog

    return list(AuditLog(home, pid).entries())


def test_a_job_reading_a_table_not_granted_is_rejected_before_anything_runs(cluster, client, tmp_path):
    host = InProcessCLI(cluster["10000"])
    host.ok("privilege", "revoke", "--party", "9999", "--namespace", "experiment", "--name", "breast_hetero_host")
    try:
        c, d = _job(tmp_path, "refused")
        res = client("job", "submit", "-c", c, "-d", d, "--wait", timeout=300)
        assert res.code == 1
        detail = res.data
        assert detail["status"] == "failed"
        assert "rejected by party 10000" in detail["reason"] and "breast_hetero_host" in detail["reason"]
        assert all(t["status"] != "success" for t in detail["tasks"])
        store = _store(cluster["10000"])
        assert detail["job_id"] not in [j["job_id"] for j in store.jobs(100)]  # nothing ran at the host
        store.close()
        arbiter = _store(cluster["10001"])  # it may have accepted: it is called off, never started
        end = time.monotonic() + 30
        while time.monotonic() < end:
            found = [j for j in arbiter.jobs(100) if j["job_id"] == detail["job_id"]]
            if not found or found[0]["status"] == "canceled":
                break
            time.sleep(0.2)
        assert not found or (found[0]["status"] == "canceled" and not found[0]["supervisor_pid"]), found
        assert not list((cluster["10001"] / "logs").glob(f"{detail['job_id']}/**/*.log"))
        arbiter.close()
        assert any(e["kind"] == "job.proposal.rejected" and e.get("job") == detail["job_id"]
                   for e in _audit(cluster["10000"], "10000"))
    finally:
        host.ok("privilege", "grant", "--party", "9999", "--namespace", "experiment", "--name", "breast_hetero_host")


def test_a_control_message_signed_by_an_unknown_key_is_dropped_and_audited(cluster, tmp_path):
    from federation.api import Party
    from federation.auth import PartyKeys, RouteTable
    from federation.rabbitmq import RabbitMQFederation
    from flow.server.control import CONTROL_JOB, NAME, ROLE

    table = RouteTable.load(cluster["9999"] / "route_table.yaml")
    impostor = RabbitMQFederation(CONTROL_JOB, Party(ROLE, "10000"), RABBIT, keys=PartyKeys.generate("10000"),
                                  route_table=table)
    conf, dsl = load_example("hetero_lr")
    forged = {"type": "propose", "job_id": "forged_job_1", "conf": conf, "dsl": dsl}
    try:
        impostor.remote(forged, NAME, "999999", [Party(ROLE, "9999")])
    finally:
        impostor.close()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        hits = [e for e in _audit(cluster["9999"], "9999") if e["kind"] == "federation.rejected"
                and e["details"].get("tag") == "999999"]
        if hits:
            break
        time.sleep(0.3)
    assert hits and "signature" in hits[0]["details"]["reason"]
    assert hits[0]["details"]["peer"] == "server:10000"  # what it claimed
    store = _store(cluster["9999"])
    assert "forged_job_1" not in [j["job_id"] for j in store.jobs(100)]
    store.close()


def test_the_hosts_server_killed_mid_training_fails_the_job_at_the_guest_and_rerun_completes_it(
        cluster, client, tmp_path):
    from flow.store import Store

    c, d = _job(tmp_path, "killed", max_iter=10, tol=1e-12)
    job_id = client.ok("job", "submit", "-c", c, "-d", d)["job_id"]
    host_home = cluster["10000"]
    host = Store.for_home(host_home)
    end = time.monotonic() + 120
    while time.monotonic() < end:  # until the host is a few iterations into training
        try:
            if any(t["component"] == "hetero_lr_0" and t["progress"] >= 10 for t in host.tasks(job_id)):
                break
        except Exception:  # noqa: BLE001 - not recorded at the host yet
            pass
        time.sleep(0.1)
    else:
        pytest.fail("the host never started training")
    # the host's machine goes down: its server and the job's processes with it
    server = cluster["procs"]["10000"]
    victims = [host.job(job_id)["supervisor_pid"]] + [r["pid"] for r in host.party_runs(job_id) if r["pid"]]
    server.kill()
    server.wait()
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (host_home / "server.json").unlink(missing_ok=True)
    cluster["procs"]["10000"] = _start(host_home)  # restarted: it finds the job's processes gone
    end = time.monotonic() + 120
    detail = client.ok("job", "query", "-j", job_id)
    while detail["status"] not in ("failed", "success", "canceled", "timeout") and time.monotonic() < end:
        time.sleep(0.3)
        detail = client.ok("job", "query", "-j", job_id)
    assert detail["status"] == "failed", detail
    assert "party 10000 failed" in detail["reason"] and "is gone" in detail["reason"], detail["reason"]
    assert host.job(job_id)["status"] == "failed"

    done = client.ok("job", "rerun", "-j", job_id, "--wait", timeout=300)
    assert done["status"] == "success" and done["rerun_from"] == "hetero_lr_0", done
    end = time.monotonic() + 60
    while host.job(job_id)["status"] != "success" and time.monotonic() < end:
        time.sleep(0.3)
    assert host.job(job_id)["status"] == "success"
    model = InProcessCLI(host_home).ok("tracking", "output-model", "-j", job_id, "-r", "host", "-p", "10000",
                                       "-cpn", "hetero_lr_0")["model"]
    assert model["iters"] == 10  # trained from the start of the component, not from where it was killed
    host.close()
