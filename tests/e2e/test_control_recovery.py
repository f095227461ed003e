"""The control plane between three flow servers over RabbitMQ recovers from what used to
wedge it for good (issue 12 §1): a wrong key at a party fails the initiator's job within
seconds naming both fingerprints, and once the key is fixed the next job runs without
anyone touching a state file; a control message lost on the broker, or a server restarted
mid-proposal, never blocks the jobs after it.

Set FEDWEAVE_TEST_RABBIT_VHOST to run on a vhost of its own (the control queues' names are
those of tests/e2e/test_server_cluster.py: both on one vhost at once would steal each
other's messages)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import service_unavailable

from .test_server_cluster import RABBIT, _control_queues, _job, _rabbit_up, _start, three_servers
from .test_server_cluster import _client as cluster_client
from .test_server_cluster import _store as store_of

pytestmark = pytest.mark.e2e

BROKER = {**RABBIT, "vhost": os.environ.get("FEDWEAVE_TEST_RABBIT_VHOST", RABBIT["vhost"])}
PROPOSAL_TIMEOUT = 15
GUEST, HOST = "9999", "10000"


def _pika():
    import pika

    return pika.BlockingConnection(pika.ConnectionParameters(
        BROKER["host"], BROKER["port"], BROKER["vhost"], pika.PlainCredentials(BROKER["user"], BROKER["password"])))


def _delete_queues(names: list[str]) -> None:
    conn = _pika()
    try:
        for name in names:
            conn.channel().queue_delete(name)
    finally:
        conn.close()


def _stop(homes: dict, pid: str, sig: int = signal.SIGTERM) -> None:
    proc = homes["procs"][pid]
    proc.send_signal(sig)
    proc.wait(timeout=30)
    (homes[pid] / "server.json").unlink(missing_ok=True)


def _up(homes: dict, pid: str) -> None:
    homes["procs"][pid] = proc = _start(homes[pid])
    end = time.monotonic() + 90
    while not (homes[pid] / "server.json").exists():
        assert proc.poll() is None and time.monotonic() < end, (homes[pid] / "server.err").read_text()
        time.sleep(0.1)


def _set_conf(home: Path, **server) -> None:
    path = home / "service_conf.yaml"
    conf = yaml.safe_load(path.read_text())
    conf["server"].update(server)
    path.write_text(yaml.safe_dump(conf))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not _rabbit_up():
        service_unavailable("RabbitMQ on 127.0.0.1:5672")
    _delete_queues(_control_queues())  # nothing left from an earlier run on this vhost
    with three_servers(tmp_path_factory.mktemp("recovery"), "rabbitmq", BROKER) as homes:
        pids = [p for p in homes if p != "procs"]
        for pid in pids:  # a short proposal timeout: restarted with it
            _stop(homes, pid)
            _set_conf(homes[pid], proposal_timeout=PROPOSAL_TIMEOUT)
        for pid in pids:
            _up(homes, pid)
        yield homes
    _delete_queues(_control_queues())


def _client(homes: dict, tmp_path_factory) -> object:
    """A CLI pointed at the guest's server as it runs now (its port changes on a restart)."""
    return cluster_client(homes, tmp_path_factory.mktemp("client"))


def _wait_final(client, job_id: str, limit: float) -> dict:
    end = time.monotonic() + limit
    detail = client.ok("job", "query", "-j", job_id)
    while detail["status"] not in ("failed", "success", "canceled", "timeout") and time.monotonic() < end:
        time.sleep(0.3)
        detail = client.ok("job", "query", "-j", job_id)
    return detail


def _succeeds(client, tmp_path: Path, tag: str) -> str:
    c, d = _job(tmp_path, tag)
    detail = client.ok("job", "submit", "-c", c, "-d", d, "--wait", timeout=300)
    assert detail["status"] == "success", detail["reason"]
    return detail["job_id"]


def test_a_wrong_key_fails_the_job_in_seconds_naming_both_fingerprints_and_the_fixed_key_runs_the_next(
        cluster, tmp_path, tmp_path_factory):
    from federation.auth import KeyStore, PartyKeys, RouteTable, key_fingerprint

    table_path = cluster[HOST] / "route_table.yaml"
    right = table_path.read_text()
    wrong_key = PartyKeys.generate(GUEST)
    _stop(cluster, HOST)
    RouteTable.load(table_path).with_party(GUEST, wrong_key.public_key_b64).dump(table_path)
    _up(cluster, HOST)
    client = _client(cluster, tmp_path_factory)
    c, d = _job(tmp_path, "wrong_key")
    started = time.monotonic()
    job_id = client.ok("job", "submit", "-c", c, "-d", d)["job_id"]
    detail = _wait_final(client, job_id, 60)
    took = time.monotonic() - started
    assert detail["status"] == "failed", detail
    mine = key_fingerprint(KeyStore(cluster[GUEST]).load(GUEST))
    assert (f"party {HOST} cannot verify messages from party {GUEST} with the key it holds for {GUEST} "
            f"(fingerprint {key_fingerprint(wrong_key)}; party {GUEST}'s key is {mine})") in detail["reason"], detail
    assert took < 10, f"the job failed after {took:.1f}s"
    assert job_id not in [j["job_id"] for j in store_of(cluster[HOST]).jobs(100)]

    # the key fixed and both servers restarted; no state file touched
    _stop(cluster, HOST)
    table_path.write_text(right)
    _stop(cluster, GUEST)
    _up(cluster, GUEST)
    _up(cluster, HOST)
    _succeeds(_client(cluster, tmp_path_factory), tmp_path, "fixed")


def test_a_control_message_lost_on_the_broker_blocks_no_later_job(cluster, tmp_path, tmp_path_factory):
    from federation.api import Party
    from federation.rabbitmq import queue_name
    from flow.server.control import CONTROL_JOB, ROLE

    client = _client(cluster, tmp_path_factory)
    _stop(cluster, HOST)  # its proposal waits on the broker, unconsumed
    c, d = _job(tmp_path, "silent")
    job_id = client.ok("job", "submit", "-c", c, "-d", d)["job_id"]
    detail = _wait_final(client, job_id, PROPOSAL_TIMEOUT + 30)
    assert detail["status"] == "failed", detail
    inbox = queue_name(CONTROL_JOB, Party(ROLE, HOST), GUEST, ROLE)
    assert (f"party {HOST} did not answer the proposal in {PROPOSAL_TIMEOUT}s (RabbitMQ at 127.0.0.1:5672 "
            f"reachable") in detail["reason"], detail["reason"]
    assert f"waiting unconsumed in queue {inbox} (no consumer): party {HOST}'s server is not consuming" \
        in detail["reason"], detail["reason"]

    conn = _pika()  # the proposal is lost on the broker
    try:
        assert conn.channel().queue_purge(inbox).method.message_count >= 1
    finally:
        conn.close()
    _up(cluster, HOST)
    _succeeds(client, tmp_path, "after_loss")


def test_servers_restarted_mid_proposal_still_run_the_job(cluster, tmp_path, tmp_path_factory):
    """The host is down when the job is proposed, the guest (the initiator) is killed right
    after proposing; both come back and the job runs."""
    client = _client(cluster, tmp_path_factory)
    _stop(cluster, HOST)
    c, d = _job(tmp_path, "restarted")
    job_id = client.ok("job", "submit", "-c", c, "-d", d)["job_id"]
    time.sleep(1)
    _stop(cluster, GUEST, signal.SIGKILL)
    _up(cluster, HOST)
    _up(cluster, GUEST)
    detail = _wait_final(_client(cluster, tmp_path_factory), job_id, 300)
    assert detail["status"] == "success", detail
    _succeeds(_client(cluster, tmp_path_factory), tmp_path, "after_restarts")
