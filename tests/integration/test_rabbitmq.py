"""The RabbitMQ transport beyond the contract suite: its configuration, per-party users and
permissions, lost connections and a broker restart in the middle of a job.

Configuration tests need no broker. The others need RabbitMQ at ``$FEDWEAVE_RABBITMQ_URL``
(default 127.0.0.1:5672, guest); those that add users or restart the broker app also need
``rabbitmqctl`` (run as root or the rabbitmq user). Every vhost and user they create is
removed afterwards, and a stopped broker app is always started again.
"""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import in_ci, service_unavailable

try:
    import pika
except ImportError:  # in CI a missing client is a failure (this import error), elsewhere a skip
    if in_ci():
        raise
    pytest.skip("the pika package is not installed", allow_module_level=True)

from federation.api import Party  # noqa: E402
from federation.auth import KeyStore, RouteTable, standalone_route_table  # noqa: E402
from federation.rabbitmq import CONTROL, RabbitMQConf, RabbitMQFederation, grants, queue_name  # noqa: E402
from flow.core.errors import ConfigError, FederationError, FederationTimeout, PeerFailed  # noqa: E402
from flow.core.settings import FederationConf, ServiceConf  # noqa: E402
from tests.contract.backend_rabbitmq import broker_url, require_broker  # noqa: E402

GUEST, HOST, HOST2 = Party("guest", "9999"), Party("host", "10000"), Party("host", "10001")
IDS = ["9999", "10000", "10001"]


def endpoint(home: Path, job: str, party: Party, conf: dict, **options) -> RabbitMQFederation:
    table = standalone_route_table(home, IDS)
    keys = KeyStore(home).load(party.party_id)
    return RabbitMQFederation(job, party, conf, keys=keys, route_table=table, parties=IDS, **options)


@pytest.fixture
def job() -> str:
    return f"job_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def url() -> str:
    url = broker_url()
    require_broker(url)
    return url


@pytest.fixture
def opened():
    """Endpoints made by a test; cleaned up and closed afterwards."""
    made: list[RabbitMQFederation] = []
    yield made
    for fed in made:
        fed.cleanup()
        fed.close()


@pytest.fixture(scope="module")
def ctl():
    """``rabbitmqctl`` as a function: args -> stdout; fails the test on a non-zero exit."""
    exe = shutil.which("rabbitmqctl")
    if exe is None or subprocess.run([exe, "-q", "status"], capture_output=True, timeout=60).returncode:
        service_unavailable("rabbitmqctl with access to the local broker")

    def run(*args: str) -> str:
        done = subprocess.run([exe, "-q", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}"
        return done.stdout

    return run


def admin_channel(url: str, vhost: str | None = None):
    params = pika.URLParameters(url)
    if vhost is not None:
        params.virtual_host = vhost
    conn = pika.BlockingConnection(params)
    return conn, conn.channel()


def ready_messages(url: str, queue: str) -> int:
    """Messages waiting in ``queue``, not counting those delivered and not yet acked."""
    conn, ch = admin_channel(url)
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


# -- configuration (no broker) ------------------------------------------------------------


def test_url_gives_address_and_credentials():
    conf = RabbitMQConf.parse({"url": "amqps://alice:p%40ss@broker.example:5999/fl%2Fprod", "prefetch": 8})
    assert (conf.host, conf.port, conf.vhost, conf.ssl, conf.user) == ("broker.example", 5999, "fl/prod", True, "alice")
    assert conf.password.get_secret_value() == "p@ss" and "p@ss" not in repr(conf)
    assert conf.broker().port == 5999 and conf.prefetch == 8


def test_route_table_wins_for_peers_and_tls_picks_the_port(tmp_path):
    conf = RabbitMQConf.parse({"host": "mq.local", "port": 5673, "vhost": "mine"})
    table = standalone_route_table(tmp_path, IDS)
    table = table.with_party("10000", table.parties["10000"].public_key, rabbitmq={"host": "10.0.0.2", "mng_port": 1})
    table = table.with_party("10001", table.parties["10001"].public_key, rabbitmq={"url": "amqps://10.0.0.3/fl"})
    table = table.with_party("9999", table.parties["9999"].public_key, rabbitmq={"host": "public.example"})
    fed = RabbitMQFederation("j", GUEST, conf, keys=KeyStore(tmp_path).load("9999"), route_table=table)
    assert str(fed.broker_of("10000")) == "amqp://10.0.0.2:5673/mine"  # missing fields from the conf
    assert str(fed.broker_of("10001")) == "amqps://10.0.0.3:5671/fl"  # TLS: the conf's plain port does not apply
    assert str(fed.broker_of("9999")) == "amqp://mq.local:5673/mine"  # this party: its own conf wins
    assert fed.peer_ids == sorted(IDS)  # no job parties given: every party of the route table
    bad = table.with_party("10001", table.parties["10001"].public_key, rabbitmq={"port": "x"})
    with pytest.raises(ConfigError, match=r"route table: party 10001: rabbitmq\.port: "):
        RabbitMQFederation("j", GUEST, conf, keys=KeyStore(tmp_path).load("9999"), route_table=bad)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"port": 0}, "federation.rabbitmq.port:"),
        ({"prefetch": 0}, "federation.rabbitmq.prefetch:"),
        ({"hots": "x"}, "federation.rabbitmq.hots:"),
        ({"url": "http://h/"}, "amqp:// or amqps://"),
        ({"url": "amqp://h/", "vhost": "v"}, "not both"),
        ({"cert_file": __file__}, "cert_file and key_file go together"),
        ({"ca_file": "/no/such/ca.pem"}, "federation.rabbitmq.ca_file: /no/such/ca.pem does not exist"),
    ],
)
def test_bad_conf_names_the_field(data, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        RabbitMQConf.parse(data)


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return str(cert_path), str(key_path)


def test_tls_options_trust_the_ca_and_present_the_client_certificate(tmp_path):
    import ssl

    cert, key = _self_signed(tmp_path)
    conf = RabbitMQConf.parse({"url": "amqps://broker.test/fl", "ca_file": cert, "cert_file": cert, "key_file": key})
    params = conf.parameters(conf.broker())
    ctx = params.ssl_options.context
    assert params.port == 5671 and params.ssl_options.server_hostname == "broker.test"
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert any(c["subject"] == ((("commonName", "broker.test"),),) for c in ctx.get_ca_certs())
    relaxed = RabbitMQConf.parse({"ssl": True, "ca_file": cert, "verify_hostname": False})
    assert not relaxed.parameters(relaxed.broker()).ssl_options.context.check_hostname
    assert RabbitMQConf.parse({}).parameters(RabbitMQConf.parse({}).broker()).ssl_options is None


def test_queue_names_fit_the_permission_regexes():
    job = "job.with-dots_1"
    to_host = queue_name(job, HOST, "9999", "guest")
    control = queue_name(job, HOST, "9999", CONTROL)
    assert to_host == "fedweave.10000.9999.host.guest.job.with-dots_1" and control != to_host
    long = queue_name("j" * 128, Party("r" * 64, "1" * 64), "2" * 64, "s" * 64)
    assert len(long) <= 255 and long.startswith(f"fedweave.{'1' * 64}.{'2' * 64}.")
    host, guest = grants("10000"), grants("9999")
    can = lambda perm, name: re.match(perm, name) is not None  # noqa: E731 - as RabbitMQ matches
    assert can(host["read"], to_host) and not can(guest["read"], to_host)  # only the receiver reads
    assert can(guest["configure"], to_host) and can(host["configure"], to_host)  # both may declare it
    assert not can(grants("1000")["read"], to_host) and not can(grants("100000")["configure"], to_host)
    assert can(guest["topic_write"], to_host) and not can(host["topic_write"], to_host)  # only its sender
    assert can(guest["write"], "fedweave") and not can(guest["configure"], "fedweave")
    assert not can(guest["write"], "amq.default")


def test_from_conf_reads_the_route_table_in_the_home(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOW_HOME", raising=False)
    standalone_route_table(tmp_path / "home", IDS).dump(tmp_path / "home" / "routes.yaml")
    conf = ServiceConf(home=str(tmp_path / "home"), route_table="routes.yaml", source=str(tmp_path / "service.yaml"),
                       federation=FederationConf(max_message_size=65536, rabbitmq={"url": "amqp://mq/v"}))
    fed = RabbitMQFederation.from_conf("j", HOST, conf, parties=["9999", "10000"], timeout=7)
    assert isinstance(fed.route_table, RouteTable) and set(fed.route_table.parties) == set(IDS)
    assert fed.peer_ids == ["10000", "9999"] and fed.max_message_size == 65536 and fed.default_timeout == 7
    assert str(fed.home) == "amqp://mq:5672/v"
    bad = conf.model_copy(update={"federation": FederationConf(rabbitmq={"prot": 1})})
    with pytest.raises(ConfigError, match="federation.rabbitmq.prot"):
        RabbitMQFederation.from_conf("j", HOST, bad, parties=IDS)


def test_unreachable_broker_fails_with_a_clear_message(tmp_path, job):
    KeyStore(tmp_path).load_or_create("9999")
    standalone_route_table(tmp_path, IDS)
    conf = {"host": "127.0.0.1", "port": 1, "retry_timeout": 0.3, "connection_attempts": 1, "retry_delay": 0}
    fed = endpoint(tmp_path, job, GUEST, conf)
    with pytest.raises(FederationError, match=r"cannot publish to .*unreachable for 0.3s"):
        fed.remote(1, "x", "0", [HOST])
    with pytest.raises(FederationError, match=r"cannot receive: RabbitMQ at amqp://127.0.0.1:1/%2F unreachable"):
        fed.get("x", "0", [HOST], timeout=30)


# -- against the broker -------------------------------------------------------------------


def test_a_lost_consumer_connection_rebinds_held_messages(tmp_path, url, job, opened):
    """Chunks held (unacked) when the connection dies come back redelivered; they are
    matched to the copies already held, acked once after the object completes, and the
    object is handed over once."""
    standalone_route_table(tmp_path, IDS)
    guest = endpoint(tmp_path, job, GUEST, {"url": url}, max_message_size=8192)
    host = endpoint(tmp_path, job, HOST, {"url": url, "prefetch": 4}, default_timeout=30)
    opened += [guest, host]
    obj = np.random.default_rng(7).random(20_000)  # 160 KB: ~27 chunks, a poll takes at most 2 x 4
    guest.remote(obj, "w", "0", [HOST])
    channel, key = host.data_channel(GUEST, HOST), ("w", "0", GUEST)
    for _ in range(1000):  # until some chunks arrived and are held
        host._pump(channel, GUEST)
        if host._pending.get(key):
            break
        host._idle(0.01)
    (held,) = host._pending[key].values()
    assert 0 < len(held.chunks) < held.first.n
    host._sub.conn.close()  # the broker requeues everything unacked
    assert np.array_equal(host.get("w", "0", [GUEST])[0], obj)
    assert not host.rejections and not host._held
    with pytest.raises(FederationTimeout):
        host.get("w", "0", [GUEST], timeout=0.3)
    host.close()  # anything still unacked would now be ready again
    assert ready_messages(url, channel) == 0


def test_a_deleted_queue_is_declared_and_subscribed_again(tmp_path, url, job, opened):
    standalone_route_table(tmp_path, IDS)
    guest, host = endpoint(tmp_path, job, GUEST, {"url": url}), endpoint(tmp_path, job, HOST, {"url": url})
    opened += [guest, host]
    guest.remote("first", "x", "0", [HOST])
    assert host.get("x", "0", [GUEST]) == ["first"]
    host.cleanup()  # the sender's connection still takes the queue for declared
    guest.remote("second", "x", "1", [HOST])
    assert host.get("x", "1", [GUEST]) == ["second"]
    guest.cleanup()  # deleted under the receiver's consumer: the broker cancels it
    guest.remote("third", "x", "2", [HOST])
    assert host.get("x", "2", [GUEST], timeout=10) == ["third"]


def test_threads_share_one_endpoint(tmp_path, url, job, opened):
    standalone_route_table(tmp_path, IDS)
    guest = endpoint(tmp_path, job, GUEST, {"url": url}, max_message_size=16384, default_timeout=60)
    host = endpoint(tmp_path, job, HOST, {"url": url}, max_message_size=16384, default_timeout=60)
    opened += [guest, host]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for k in range(5):
                guest.remote(np.full(3000, i * 10 + k), "x", f"{i}.{k}", [HOST])
                (echo,) = host.get("x", f"{i}.{k}", [GUEST])
                host.remote(echo * 2, "y", f"{i}.{k}", [GUEST])
                assert guest.get("y", f"{i}.{k}", [HOST])[0][0] == (i * 10 + k) * 2
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert not guest.rejections and not host.rejections


def test_broker_restart_mid_job_loses_nothing_and_applies_nothing_twice(tmp_path, url, job, opened, ctl):
    standalone_route_table(tmp_path, IDS)
    conf = {"url": url, "retry_timeout": 90, "prefetch": 8}
    guest = endpoint(tmp_path, job, GUEST, conf, max_message_size=65536, default_timeout=120)
    host = endpoint(tmp_path, job, HOST, conf, default_timeout=120)
    opened += [guest, host]
    objects = [np.random.default_rng(i).random(150_000 + i) for i in range(8)]  # ~1.2 MB, 19 chunks each
    got: list[np.ndarray] = []
    first = threading.Event()
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for i, obj in enumerate(objects):
                guest.remote(obj, "grad", str(i), [HOST])
                time.sleep(0.1)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def receive() -> None:
        try:
            for i in range(len(objects)):
                got.append(host.get("grad", str(i), [GUEST])[0])
                first.set()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            first.set()

    threads = [threading.Thread(target=send), threading.Thread(target=receive)]
    for t in threads:
        t.start()
    try:
        assert first.wait(60)
        ctl("stop_app")
        time.sleep(1.0)
    finally:
        ctl("start_app")
    for t in threads:
        t.join(150)
    assert not errors, errors[0]
    assert len(got) == len(objects) and all(np.array_equal(a, b) for a, b in zip(got, objects))
    assert not host.rejections
    with pytest.raises(FederationTimeout):  # no second copy of anything is waiting
        host.get("grad", "0", [GUEST], timeout=0.5)
    host.close()
    assert ready_messages(url, host.data_channel(GUEST, HOST)) == 0


@pytest.fixture(scope="module")
def party_users(url, ctl):
    """A fresh vhost with a user for the guest and one for the host, granted exactly ``grants(party)``; the
    exchange is created by the administrator (``url``'s user). Removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    vhost = f"fedweave_test_{tag}"
    admin = pika.URLParameters(url).credentials.username
    users = {pid: (f"fw_{tag}_{pid}", uuid.uuid4().hex) for pid in (GUEST.party_id, HOST.party_id)}
    ctl("add_vhost", vhost)
    try:
        ctl("set_permissions", "-p", vhost, admin, ".*", ".*", ".*")
        conn, ch = admin_channel(url, vhost)
        ch.exchange_declare("fedweave", "topic", durable=True)
        conn.close()
        for pid, (user, password) in users.items():
            ctl("add_user", user, password)
            g = grants(pid)
            ctl("set_permissions", "-p", vhost, user, g["configure"], g["write"], g["read"])
            ctl("set_topic_permissions", "-p", vhost, user, "fedweave", g["topic_write"], g["topic_read"])
        yield vhost, users
    finally:
        for user, _ in users.values():
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=120)
        ctl("delete_vhost", vhost)


def test_each_party_user_reaches_only_its_own_queues(tmp_path, url, job, party_users, opened):
    vhost, users = party_users
    base = pika.URLParameters(url)
    conf = lambda pid: {"host": base.host, "port": base.port, "vhost": vhost,  # noqa: E731
                        "user": users[pid][0], "password": users[pid][1], "retry_timeout": 5}
    standalone_route_table(tmp_path, IDS)
    guest = endpoint(tmp_path, job, GUEST, conf("9999"), default_timeout=30)
    guest.remote({"w": [1.0, 2.0]}, "model", "0", [HOST])  # before the receiver exists
    host = endpoint(tmp_path, job, HOST, conf("10000"), default_timeout=30)
    opened += [guest, host]
    assert host.get("model", "0", [GUEST]) == [{"w": [1.0, 2.0]}]
    host.remote("ack", "reply", "0", [GUEST])
    assert guest.get("reply", "0", [HOST]) == ["ack"]
    host.abort("stop", [GUEST])
    with pytest.raises(PeerFailed, match="host:10000 failed: stop"):
        guest.get("never", "0", [HOST])

    to_host = queue_name(job, HOST, "9999", "guest")
    guest.remote("unread", "x", "1", [HOST])
    params = pika.ConnectionParameters(base.host, base.port, vhost, pika.PlainCredentials(*users["9999"]))
    for attempt in (lambda ch: ch.basic_get(to_host),  # read the host's queue
                    lambda ch: ch.basic_consume(to_host, lambda *a: None),
                    lambda ch: ch.basic_publish("", to_host, b"x"),  # around the exchange
                    lambda ch: ch.basic_publish("fedweave", queue_name(job, HOST, "10001", "host"), b"x")):  # as 10001
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            attempt(ch)
        assert refused.value.reply_code == 403
        conn.close()
    spy = endpoint(tmp_path, job, HOST, conf("9999"), default_timeout=5)  # the guest's user posing as host
    opened.append(spy)
    with pytest.raises(FederationError, match="ACCESS_REFUSED"):
        spy.get("x", "1", [GUEST])
    assert host.get("x", "1", [GUEST]) == ["unread"]  # still there for its addressee

    for fed in (guest, host):
        fed.cleanup()  # each user may delete the queues it used, and that is all of them
    conn, ch = admin_channel(url, vhost)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare(to_host, passive=True)
    conn.close()


def test_route_table_sends_to_each_peers_own_vhost(tmp_path, url, job, party_users, opened):
    """Each party receives on its own vhost; a sender finds a peer's in the route table."""
    vhost, _ = party_users
    base = pika.URLParameters(url)
    admin = {"host": base.host, "port": base.port, "user": base.credentials.username,
             "password": base.credentials.password}
    table = standalone_route_table(tmp_path, IDS)
    table = table.with_party("9999", table.parties["9999"].public_key, rabbitmq={"vhost": "/"})
    table = table.with_party("10000", table.parties["10000"].public_key, rabbitmq={"vhost": vhost})
    keys = KeyStore(tmp_path)
    guest = RabbitMQFederation(job, GUEST, {**admin, "vhost": "/"}, keys=keys.load("9999"), route_table=table)
    host = RabbitMQFederation(job, HOST, {**admin, "vhost": vhost}, keys=keys.load("10000"), route_table=table)
    opened += [guest, host]
    guest.remote("to the host's vhost", "x", "0", [HOST])
    conn, ch = admin_channel(url, vhost)
    assert ch.queue_declare(queue_name(job, HOST, "9999", "guest"), passive=True).method.message_count == 1
    conn.close()
    assert host.get("x", "0", [GUEST]) == ["to the host's vhost"]
    host.remote("back to /", "y", "0", [GUEST])
    assert guest.get("y", "0", [HOST]) == ["back to /"]


def test_a_peer_that_never_answers_times_out(tmp_path, url, job, opened):
    standalone_route_table(tmp_path, IDS)
    host = endpoint(tmp_path, job, HOST, {"url": url})
    opened.append(host)
    with pytest.raises(FederationTimeout) as err:
        host.get("w_grad", "iter.7", [GUEST, HOST2], timeout=0.5)
    assert str(err.value) == "timed out after 0.5s waiting for 'w_grad' tag 'iter.7' from guest:9999, host:10001"
