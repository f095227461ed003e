"""The Pulsar transport against a real broker (pulsar-lite, started per test): broker
restarts mid-transfer, redelivery, the broker's message size limit, configuration from
service_conf.yaml, and the settings model. The transport-independent contract is
tests/contract/test_federation_contract.py (``-k pulsar``)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import yaml

from federation.api import Party
from federation.auth import KeyStore, PartyKeys, RouteTable
from flow.core.errors import ConfigError, FederationError, FederationTimeout
from flow.core.settings import load_service_conf
from tests.pulsar_broker import PulsarLiteBroker, free_port, require_broker  # the pulsar_broker fixture: conftest.py

GUEST, HOST = Party("guest", "9999"), Party("host", "10000")


@pytest.fixture
def keys() -> dict[str, PartyKeys]:
    return {pid: PartyKeys.generate(pid) for pid in ("9999", "10000")}


@pytest.fixture
def routes(keys) -> RouteTable:
    return RouteTable.from_dict({"parties": {pid: {"public_key": k.public_key_b64} for pid, k in keys.items()}})


@pytest.fixture
def job_id() -> str:
    return f"job_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def endpoint(pulsar_broker, keys, routes, job_id) -> Iterator[Callable[..., Any]]:
    """Open PulsarFederation endpoints on the test's broker; all closed afterwards."""
    from federation.pulsar import PulsarFederation

    opened: list[PulsarFederation] = []

    def make(party: Party, session: Any = None, max_message_size: int = 4 << 20, **settings: Any) -> PulsarFederation:
        conf = {"service_url": pulsar_broker.url, "operation_timeout_s": 5, "reconnect_timeout_s": 60, **settings}
        fed = PulsarFederation(job_id, party, keys[party.party_id], routes, session, settings=conf,
                               max_message_size=max_message_size, default_timeout=60)  # fmt: skip
        opened.append(fed)
        return fed

    yield make
    for fed in opened:
        fed.close()


def objects(n: int, size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {f"obj{i}": rng.random(size) for i in range(n)}


def assert_nothing_more(fed, names: list[str]) -> None:
    """Everything queued was read (the first get drains the channels): no second copy of
    any object is waiting, and nothing was dropped as forged or corrupt."""
    with pytest.raises(FederationTimeout):
        fed.get("drain", "0", [GUEST], timeout=1.0)
    for name in names:
        with pytest.raises(FederationTimeout):
            fed.get(name, "0", [GUEST], timeout=0.01)
    assert not fed.rejections


# -- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_broker_restart_mid_transfer_loses_and_repeats_nothing(pulsar_broker, endpoint, kill):
    # small messages: every object is many chunks; a 1 s send timeout makes the
    # outage fail sends, so they are re-sent by the transport, not just by the client
    guest = endpoint(GUEST, max_message_size=16 * 1024, send_timeout_s=1)
    host = endpoint(HOST)
    before, during = objects(4, 5000), objects(3, 7000)
    during = {f"late{k}": v for k, v in during.items()}
    for name, value in before.items():
        guest.remote(value, name, "0", [HOST])
    assert np.array_equal(host.get("obj0", "0", [GUEST])[0], before["obj0"])  # consumed and acked
    # half of an object reaches the host before the broker goes: it stays unacked
    partial = np.arange(20_000.0)
    frames = list(guest.frames(partial, "partial", "0", HOST))
    for channel, mid, data in frames[: len(frames) // 2]:
        guest._publish(channel, mid, data)
    guest._flush()
    with pytest.raises(FederationTimeout, match=r"received \d+ of \d+ chunks"):
        host.get("partial", "0", [GUEST], timeout=0.5)

    pulsar_broker.stop(kill=kill)
    errors: list[BaseException] = []

    def send_during_outage() -> None:
        try:
            for name, value in during.items():
                guest.remote(value, name, "0", [HOST])
            for channel, mid, data in frames[len(frames) // 2 :]:
                guest._publish(channel, mid, data)
            guest._flush()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    sender = threading.Thread(target=send_during_outage)
    sender.start()
    time.sleep(2)  # longer than the send timeout: sends fail and are retried
    pulsar_broker.start()
    sender.join(120)
    assert not sender.is_alive() and not errors

    for name, value in {**before, **during}.items():
        if name != "obj0":
            assert np.array_equal(host.get(name, "0", [GUEST])[0], value), name
    assert np.array_equal(host.get("partial", "0", [GUEST])[0], partial)
    assert_nothing_more(host, [*before, *during, "partial"])


def test_a_new_endpoint_gets_what_a_closed_one_left(endpoint):
    """Unacknowledged messages stay queued when an endpoint closes (a rerun reads them)."""
    guest, host = endpoint(GUEST), endpoint(HOST)
    guest.remote("first", "a", "0", [HOST])
    guest.remote("second", "b", "0", [HOST])
    assert host.get("a", "0", [GUEST]) == ["first"]
    host.close()
    assert endpoint(HOST).get("b", "0", [GUEST]) == ["second"]


def test_half_received_object_survives_broker_and_receiver_restart(pulsar_broker, endpoint):
    """Chunks redelivered after a reconnect while their object is incomplete must not be
    acknowledged as duplicates: a receiver that then dies would lose them for good."""
    guest, host = endpoint(GUEST, max_message_size=8192), endpoint(HOST)
    value = np.arange(6000.0)
    frames = list(guest.frames(value, "v", "0", HOST))
    for channel, mid, data in frames[: len(frames) // 2]:
        guest._publish(channel, mid, data)
    guest._flush()
    with pytest.raises(FederationTimeout, match=r"received \d+ of \d+ chunks"):
        host.get("v", "0", [GUEST], timeout=0.5)
    pulsar_broker.restart()
    with pytest.raises(FederationTimeout):  # the consumer reconnects; the broker redelivers
        host.get("v", "0", [GUEST], timeout=3)
    host.close()  # the receiver dies before the rest arrives
    for channel, mid, data in frames[len(frames) // 2 :]:
        guest._publish(channel, mid, data)
    guest._flush()
    assert np.array_equal(endpoint(HOST).get("v", "0", [GUEST])[0], value)


def test_peer_that_never_answers_times_out_clearly(endpoint):
    host = endpoint(HOST)
    with pytest.raises(FederationTimeout) as err:
        host.get("w_grad", "iter.3", [GUEST], timeout=1)
    assert str(err.value) == "timed out after 1s waiting for 'w_grad' tag 'iter.3' from guest:9999"


def test_unreachable_broker_is_named_in_the_timeout(keys, routes, job_id):
    from federation.pulsar import PulsarFederation

    require_broker()
    dead = f"pulsar://127.0.0.1:{free_port()}"  # nothing listens there once the probe socket is closed
    settings = {"service_url": dead, "operation_timeout_s": 1, "connection_timeout_s": 0.5}
    host = PulsarFederation(job_id, HOST, keys["10000"], routes, settings=settings)
    try:
        with pytest.raises(FederationTimeout, match=f"Pulsar: cannot subscribe to .* at {dead}"):
            host.get("x", "0", [GUEST], timeout=0.5)
    finally:
        host.close()


# -- limits ------------------------------------------------------------------------------


def test_messages_fit_the_broker_limit(tmp_path, keys, routes, job_id):
    """A broker with a 64 KiB limit: chunks are cut below it, with room for Pulsar's own
    metadata, and a 1 MB object crosses."""
    from federation.pulsar import PulsarFederation

    require_broker()
    limit = 64 * 1024
    with PulsarLiteBroker(tmp_path / "small", max_message_size=limit) as broker:
        conf = {"service_url": broker.url, "max_message_size": limit, "batching_max_publish_delay_ms": 0}
        guest = PulsarFederation(job_id, GUEST, keys["9999"], routes, settings=conf)
        host = PulsarFederation(job_id, HOST, keys["10000"], routes, settings=conf)
        try:
            assert guest.max_message_size < limit
            big = np.arange(125_000.0)
            guest.remote(big, "big", "0", [HOST])
            assert np.array_equal(host.get("big", "0", [GUEST], timeout=30)[0], big)
        finally:
            guest.close()
            host.close()


def test_a_limit_set_above_the_brokers_fails_clearly(tmp_path, keys, routes, job_id):
    from federation.pulsar import PulsarFederation

    require_broker()
    with PulsarLiteBroker(tmp_path / "small", max_message_size=64 * 1024) as broker:
        guest = PulsarFederation(job_id, GUEST, keys["9999"], routes, max_message_size=1 << 20,
                                 settings={"service_url": broker.url, "reconnect_timeout_s": 5})  # fmt: skip
        try:
            # pulsar-lite refuses it; the client re-sends it without end: the transport gives up
            with pytest.raises(FederationError, match=r"not confirmed in 5s; .*federation\.pulsar\.max_message_size"):
                guest.remote(np.zeros(50_000), "big", "0", [HOST])
        finally:
            guest.close()


def test_a_consumer_that_stops_delivering_mid_object_is_replaced(endpoint, caplog):
    """A broker that stops dispatching to a consumer with permits left (seen with
    pulsar-lite under load) is simulated by pausing the consumer after 100 messages: the
    waiting receiver subscribes again, gets the object whole, skips the redelivered
    copies, and acknowledges everything (a new endpoint finds nothing left)."""
    guest, host = endpoint(GUEST, max_message_size=4096), endpoint(HOST, stall_resubscribe_s=1)
    deliver, seen = host._on_message, []

    def stall_after_100(channel: str, consumer: Any, msg: Any) -> None:
        seen.append(channel)
        if len(seen) == 100:
            consumer.pause_message_listener()
        deliver(channel, consumer, msg)

    host._on_message = stall_after_100
    value = np.arange(60_000.0)
    guest.remote(value, "v", "0", [HOST])
    with caplog.at_level(logging.INFO, "federation.pulsar"):
        assert np.array_equal(host.get("v", "0", [GUEST], timeout=30)[0], value)
    assert "subscribing again" in caplog.text
    assert 100 < len(seen)  # the replacement delivered the rest
    assert_nothing_more(host, ["v"])
    host.close()
    assert_nothing_more(endpoint(HOST), ["v"])


def test_a_consumer_is_not_replaced_while_it_delivers_or_nobody_waits(endpoint, caplog):
    guest, host = endpoint(GUEST), endpoint(HOST, stall_resubscribe_s=4)  # far above a get's few ms
    with caplog.at_level(logging.INFO, "federation.pulsar"):
        for i in range(2):
            guest.remote(i, "x", str(i), [HOST])
            assert host.get("x", str(i), [GUEST])[0] == i
            time.sleep(4.5)  # longer than the patience, but nobody is waiting
        guest.remote(2, "x", "2", [HOST])
        assert host.get("x", "2", [GUEST])[0] == 2
    assert "subscribing again" not in caplog.text


def test_object_of_more_chunks_than_the_client_queue(endpoint):
    """1,500 chunks in one remote: more than the client's 1,000 pending messages."""
    guest, host = endpoint(GUEST, max_message_size=4096), endpoint(HOST)
    value = np.arange(380_000.0)
    guest.remote(value, "v", "0", [HOST])
    assert np.array_equal(host.get("v", "0", [GUEST])[0], value)


# -- configuration ---------------------------------------------------------------------


def _write_conf(root: Path, url: str, pids: dict[str, Path], **pulsar: Any) -> Path:
    routes = {pid: {"public_key": KeyStore(home).load_or_create(pid).public_key_b64} for pid, home in pids.items()}
    (root / "route_table.yaml").write_text(yaml.safe_dump({"parties": routes}))
    conf = root / "service_conf.yaml"
    section = {"service_url": url, "tenant": "public", "namespace": "default", **pulsar}
    conf.write_text(yaml.safe_dump({"home": str(root), "federation": {"pulsar": section, "max_message_size": 1 << 20}}))
    return conf


def test_from_conf_exchanges_between_two_homes(pulsar_broker, tmp_path, job_id, monkeypatch):
    from federation.pulsar import PulsarFederation

    monkeypatch.delenv("FLOW_HOME", raising=False)
    homes = {"9999": tmp_path / "guest", "10000": tmp_path / "host"}
    confs = {}
    for home in homes.values():
        home.mkdir()
    for pid, home in homes.items():
        confs[pid] = load_service_conf(_write_conf(home, pulsar_broker.url, homes, token="not-checked-by-pulsar-lite"))
    parties = list(homes)
    guest = PulsarFederation.from_conf(job_id, GUEST, confs["9999"], parties=parties, timeout=30)
    host = PulsarFederation.from_conf(job_id, HOST, confs["10000"], parties=parties, timeout=30)
    try:
        assert guest.max_message_size == 1 << 20
        guest.remote({"w": np.ones(3)}, "w", "0", [HOST])
        assert np.array_equal(host.get("w", "0", [GUEST])[0]["w"], np.ones(3))
        host.cleanup()
        guest.cleanup()
    finally:
        guest.close()
        host.close()


def test_from_conf_refuses_a_party_missing_from_the_route_table(tmp_path, monkeypatch):
    from federation.pulsar import PulsarFederation

    monkeypatch.delenv("FLOW_HOME", raising=False)
    conf = load_service_conf(_write_conf(tmp_path, "pulsar://127.0.0.1:6650", {"9999": tmp_path}))
    with pytest.raises(ConfigError, match="no public key for party 10000 of this job"):
        PulsarFederation.from_conf("j1", GUEST, conf, parties=["9999", "10000"])


@pytest.mark.parametrize(
    "section, match",
    [
        ({"service_url": "http://b:80"}, r"federation\.pulsar\.service_url: 'http://b:80' is not a Pulsar service URL"),
        ({"tenant": "bad/tenant"}, r"federation\.pulsar\.tenant: 'bad/tenant' is not a valid Pulsar name"),
        ({"operation_timeout_s": 0}, r"federation\.pulsar\.operation_timeout_s: Input should be greater"),
        ({"max_message_size": 100}, r"federation\.pulsar\.max_message_size: Input should be greater"),
        ({"tokn": "x"}, r"federation\.pulsar\.tokn: Extra inputs are not permitted"),
        ({"token": "a", "token_file": "/t"}, r"federation\.pulsar: set token or token_file, not both"),
        ({"tls_certificate_file_path": "/c.pem"}, r"tls_certificate_file_path and tls_private_key_file_path go"),
    ],
)
def test_bad_settings_name_the_key(section, match):
    from federation.pulsar import PulsarSettings

    with pytest.raises(ConfigError, match=match):
        PulsarSettings.load(section)


def test_token_file_and_tls_reach_the_client(tmp_path, keys, routes, monkeypatch):
    require_broker()  # the client package
    import pulsar

    from federation.pulsar import PulsarFederation, PulsarSettings

    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJIUzI1NiJ9.e30.sig\n")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(pulsar, "Client", lambda url, **kw: seen.update(url=url, **kw) or object())
    monkeypatch.setattr(pulsar, "AuthenticationToken", lambda t: ("token", t))
    settings = {"service_url": "pulsar+ssl://broker.example:6651", "token_file": str(token),
                "tls_trust_certs_file_path": "/etc/ca.pem", "tls_validate_hostname": True}  # fmt: skip
    fed = PulsarFederation("j1", GUEST, keys["9999"], routes, settings=settings)
    fed._client("pulsar+ssl://broker.example:6651")
    assert seen["authentication"] == ("token", "eyJhbGciOiJIUzI1NiJ9.e30.sig")
    assert seen["tls_trust_certs_file_path"] == "/etc/ca.pem" and seen["tls_validate_hostname"] is True
    fed._clients.clear()  # the fake client cannot be closed
    missing = {"token_file": str(tmp_path / "absent")}
    with pytest.raises(ConfigError, match=r"federation\.pulsar\.token_file: cannot read"):
        PulsarSettings.load(missing).auth_token()


def test_route_table_points_a_peer_at_its_own_namespace(keys):
    require_broker()  # the client package
    from federation.pulsar import PulsarFederation

    routes = RouteTable.from_dict({"parties": {
        "9999": {"public_key": keys["9999"].public_key_b64},
        "10000": {"public_key": keys["10000"].public_key_b64,
                  "pulsar": {"url": "pulsar+ssl://host-org:6651", "tenant": "org-b", "topic_ttl_s": 60}},
    }})  # fmt: skip
    fed = PulsarFederation("j1", GUEST, keys["9999"], routes, settings={"namespace": "fl"})
    url, topic = fed.topic(fed.data_channel(GUEST, HOST))
    assert (url, topic) == ("pulsar+ssl://host-org:6651", "persistent://org-b/fl/fedweave.j1.guest-9999.host-10000")
    own_url, own_topic = fed.topic(fed.data_channel(HOST, GUEST))
    assert own_url == "pulsar://127.0.0.1:6650" and own_topic.startswith("persistent://public/fl/")
    assert fed.subscription(HOST) == "fedweave-host-10000"
    fed.close()
