"""What every federation transport must do. Parametrised over the transports listed in
``FEDERATION`` in tests/contract/conftest.py (the ``transport`` fixture)."""

from __future__ import annotations

import multiprocessing
import random
import threading
import uuid
from typing import Any

import numpy as np
import pytest

from backends.computing.api import Table
from backends.computing.local import LocalSession
from components.base import Instance
from components.crypto.paillier import generate_keypair
from federation.api import Party
from flow.core.errors import FederationError, FederationTimeout, PeerFailed

GUEST, HOST, HOST2 = Party("guest", "9999"), Party("host", "10000"), Party("host", "10001")


@pytest.fixture
def job_id() -> str:
    return f"job_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pair(transport, job_id):
    return transport.endpoint(job_id, GUEST, default_timeout=30), transport.endpoint(job_id, HOST, default_timeout=30)


# -- a computing session for Tables --------------------------------------------------


@pytest.fixture
def compute():
    """Named apart from conftest's ``session`` (the computing suite's parametrised one)."""
    with LocalSession(partitions=4, workers=1) as s:
        yield s


def partitions_of(table: Table) -> list[list]:
    return [sorted(p, key=repr) for p in table.iter_partitions()]


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, Instance):
        return same(a.features, b.features) and a.label == b.label
    return type(a) is type(b) and a == b


# -- the contract ----------------------------------------------------------------------

VALUES = {
    "none": None,
    "bool": True,
    "int": -42,
    "bigint": 2**521 - 1,
    "float": 0.1,
    "str": "naïve",
    "bytes": b"\x00\x01",
    "list": [1, "a", [2.0]],
    "tuple": (1, (2, 3)),
    "dict": {"w": [0.5, 1.5], 3: "int key"},
    "array": np.arange(12, dtype=np.float32).reshape(3, 4),
    "empty_array": np.zeros((0, 5)),
    "scalar": np.int16(-3),
    "instance": Instance(np.array([1.0, 2.0]), 0.0),
    "nested": {"layers": [np.eye(2), (np.ones(3, dtype=bool), {"b": 2**70})]},
}


@pytest.mark.parametrize("name", list(VALUES))
def test_each_codec_type_crosses(pair, name):
    guest, host = pair
    guest.remote(VALUES[name], name, "t", [HOST])
    assert same(host.get(name, "t", [GUEST])[0], VALUES[name])


def test_ciphertexts_cross_and_decrypt(pair):
    pk, sk = generate_keypair(256)
    values = [0.25, -3.5, 1e3]
    guest, host = pair
    guest.remote({"key": pk, "grad": [pk.encrypt(v) for v in values]}, "enc", "iter.0", [HOST])
    got = host.get("enc", "iter.0", [GUEST])[0]
    assert got["key"] == pk
    assert np.allclose(sk.decrypt_many(got["grad"]), values)


@pytest.mark.slow
def test_200mb_array(pair):
    guest, host = pair
    big = np.random.default_rng(0).random(25_000_000)  # 200 MB of float64
    guest.remote(big, "big", "0", [HOST])
    got = host.get("big", "0", [GUEST], timeout=300)[0]
    assert got.shape == big.shape and np.array_equal(got, big)


def test_table_of_100k_rows_keeps_rows_and_partitions(transport, job_id, compute):
    guest = transport.endpoint(job_id, GUEST)
    host = transport.endpoint(job_id, HOST, session=compute)
    table = compute.parallelize(((f"id{i}", (float(i), i % 7)) for i in range(100_000)), 4)
    guest.remote(table, "table", "0", [HOST])
    got = host.get("table", "0", [GUEST])[0]
    assert isinstance(got, Table) and got.partitions == 4 and got.count() == 100_000
    assert partitions_of(got) == partitions_of(table)


def test_ciphertext_table_is_compact(transport, job_id, compute, monkeypatch):
    pk, sk = generate_keypair(256)
    guest = transport.endpoint(job_id, GUEST)
    host = transport.endpoint(job_id, HOST, session=compute)
    table = compute.parallelize([(i, pk.encrypt(i / 10)) for i in range(2000)], 3)
    sizes: list[int] = []
    publish = guest._publish
    monkeypatch.setattr(guest, "_publish", lambda ch, mid, data: (sizes.append(len(data)), publish(ch, mid, data)))
    guest.remote(table, "enc_table", "0", [HOST])
    got = host.get("enc_table", "0", [GUEST])[0]
    width = (2 * pk.n.bit_length() + 7) // 8
    assert sum(sizes) < 2000 * (width + 48) + 3 * 4096  # key listed once per segment, not per row
    rows = sorted(got.collect(), key=lambda kv: kv[0])
    assert [k for k, _ in rows] == list(range(2000))
    assert np.allclose(sk.decrypt_many([v for _, v in rows]), np.arange(2000) / 10)


def test_empty_table_and_table_without_session(transport, job_id, compute):
    guest = transport.endpoint(job_id, GUEST)
    host = transport.endpoint(job_id, HOST, session=compute)
    guest.remote(compute.parallelize([], 5), "empty", "0", [HOST])
    got = host.get("empty", "0", [GUEST])[0]
    assert got.partitions == 5 and got.count() == 0
    bare = transport.endpoint(job_id, HOST2)
    guest.remote(compute.parallelize([(1, 1)], 2), "t", "0", [HOST2])
    with pytest.raises(FederationError, match="no computing session"):
        bare.get("t", "0", [GUEST], timeout=10)


def test_messages_respect_max_size(transport, job_id, compute, monkeypatch):
    limit = 8192
    guest = transport.endpoint(job_id, GUEST, max_message_size=limit)
    host = transport.endpoint(job_id, HOST, session=compute)
    sizes: list[int] = []
    publish = guest._publish
    monkeypatch.setattr(guest, "_publish", lambda ch, mid, data: (sizes.append(len(data)), publish(ch, mid, data)))
    obj = np.arange(10_000.0)
    table = compute.parallelize([(i, np.full(i * 100, float(i))) for i in range(30)], 3)  # rows up to 23 KB
    guest.remote(obj, "arr", "0", [HOST])
    guest.remote(table, "tab", "0", [HOST])
    assert len(sizes) > 20 and max(sizes) <= limit
    assert same(host.get("arr", "0", [GUEST])[0], obj)
    got = dict(host.get("tab", "0", [GUEST])[0].collect())
    assert all(np.array_equal(got[i], np.full(i * 100, float(i))) for i in range(30))


def test_many_tags_in_flight(transport, job_id):
    guest = transport.endpoint(job_id, GUEST, max_message_size=8192)
    host = transport.endpoint(job_id, HOST)
    for i in range(30):
        guest.remote(np.full(2000 if i % 3 == 0 else 3, i), "grad", f"iter.{i}", [HOST])  # some chunked
        guest.remote(f"loss {i}", "loss", f"iter.{i}", [HOST])
    for i in reversed(range(30)):
        assert host.get("loss", f"iter.{i}", [GUEST]) == [f"loss {i}"]
        (grad,) = host.get("grad", f"iter.{i}", [GUEST])
        assert grad[0] == i and grad.size == (2000 if i % 3 == 0 else 3)


def test_out_of_order_chunks(transport, job_id, compute):
    guest = transport.endpoint(job_id, GUEST, max_message_size=8192)
    host = transport.endpoint(job_id, HOST, session=compute)
    obj = {"w": np.random.default_rng(3).random(5000), "tag": "x"}
    table = compute.parallelize([(i, np.full(1500, i)) for i in range(20)], 2)
    frames = list(guest.frames(obj, "obj", "0", HOST)) + list(guest.frames(table, "tab", "0", HOST))
    assert len(frames) > 10
    random.Random(5).shuffle(frames)
    for channel, mid, data in frames:
        guest._publish(channel, mid, data)
    assert same(host.get("obj", "0", [GUEST])[0], obj)
    assert same(partitions_of(host.get("tab", "0", [GUEST])[0]), partitions_of(table))


def test_receiver_starts_after_sender(transport, job_id):
    guest = transport.endpoint(job_id, GUEST)
    guest.remote([1, 2, 3], "late", "0", [HOST, HOST2])
    host = transport.endpoint(job_id, HOST)
    host2 = transport.endpoint(job_id, HOST2)
    assert host.get("late", "0", [GUEST]) == [[1, 2, 3]]
    assert host2.get("late", "0", [GUEST]) == [[1, 2, 3]]


def test_get_returns_in_the_order_asked(transport, job_id):
    guest = transport.endpoint(job_id, GUEST)
    transport.endpoint(job_id, HOST).remote("from 10000", "x", "0", [GUEST])
    transport.endpoint(job_id, HOST2).remote("from 10001", "x", "0", [GUEST])
    assert guest.get("x", "0", [HOST2, HOST]) == ["from 10001", "from 10000"]


def test_a_waiting_get_does_the_spare_work_and_still_returns_what_arrives(pair):
    guest, host = pair
    done: list[int] = []

    def step() -> bool:  # ~1 ms of work, wanted until 50 units are done
        if len(done) < 50:
            done.append(sum(range(20_000)))
        return len(done) < 50

    with host.spare_work(step):
        assert host._spare_step() and len(done) == 1
        threading.Timer(0.5, lambda: guest.remote("late", "x", "0", [HOST])).start()
        assert host.get("x", "0", [GUEST], timeout=30) == ["late"]
    assert len(done) == 50  # all of it while waiting, then no more (it asked for no more)
    assert not host._spare_step()  # the block's end removed it
    with host.spare_work(None):  # a cipher with nothing to do ahead
        guest.remote(1, "y", "0", [HOST])
        assert host.get("y", "0", [GUEST]) == [1]


def test_spare_work_never_delays_a_message_that_has_arrived(pair, monkeypatch):
    """After each unit of spare work the get reads its channels again: a message that has
    reached this endpoint waits at most one unit (~1 ms), however much work is left."""
    guest, host = pair
    events: list[str] = []
    pump = host._pump

    def reading(*args):
        events.append("read")
        return pump(*args)

    monkeypatch.setattr(host, "_pump", reading)
    with host.spare_work(lambda: events.append("work") is None):  # always wants more
        threading.Timer(0.3, lambda: guest.remote("soon", "z", "1", [HOST])).start()
        assert host.get("z", "1", [GUEST], timeout=30) == ["soon"]
    work = [i for i, e in enumerate(events) if e == "work"]
    assert len(work) > 10  # it worked while the message was on its way
    assert all(events[i + 1] == "read" for i in work)  # and read right after every unit
    assert events[-1] == "read"


def test_duplicates_are_ignored(pair):
    guest, host = pair
    guest.max_message_size = 8192
    frames = list(guest.frames(np.arange(3000), "dup", "0", HOST))
    assert len(frames) > 1
    for channel, mid, data in frames + frames[::-1]:
        guest._publish(channel, mid, data)
    assert np.array_equal(host.get("dup", "0", [GUEST])[0], np.arange(3000))
    for channel, mid, data in frames:  # a redelivery after the object was consumed
        guest._publish(channel, mid, data)
    with pytest.raises(FederationTimeout):
        host.get("dup", "0", [GUEST], timeout=0.3)
    assert not host.rejections


def test_timeout_names_peer_and_variable(pair):
    _, host = pair
    with pytest.raises(FederationTimeout) as err:
        host.get("w_grad", "iter.7", [GUEST], timeout=0.1)
    assert str(err.value) == "timed out after 0.1s waiting for 'w_grad' tag 'iter.7' from guest:9999"


def test_abort_reaches_a_waiting_get(pair):
    guest, host = pair
    caught: list[BaseException] = []

    def wait():
        try:
            host.get("never", "0", [GUEST], timeout=60)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            caught.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    guest.abort("out of memory in HeteroLR", [HOST])
    waiter.join(30)
    assert not waiter.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], PeerFailed)
    assert str(caught[0]) == "guest:9999 failed: out of memory in HeteroLR"


def test_cleanup_removes_pending_messages(pair):
    guest, host = pair
    guest.remote("stale", "x", "0", [HOST])
    guest.cleanup()
    with pytest.raises(FederationTimeout):
        host.get("x", "0", [GUEST], timeout=0.2)


def test_release_removes_only_what_this_party_reads(transport, job_id):
    guest, host = transport.endpoint(job_id, GUEST), transport.endpoint(job_id, HOST)
    guest.remote("for the host", "x", "0", [HOST])
    guest.abort("left for the host", [HOST])
    host.remote("for the guest", "y", "0", [GUEST])
    host.release([GUEST, HOST, HOST2])
    again = transport.endpoint(job_id, HOST, default_timeout=30)
    with pytest.raises(FederationTimeout):  # neither the data nor the abort is there any more
        again.get("x", "0", [GUEST], timeout=0.3)
    assert guest.get("y", "0", [HOST], timeout=30) == ["for the guest"]


def test_closed_endpoint_refuses_work(pair):
    guest, _ = pair
    guest.close()
    with pytest.raises(FederationError, match="closed"):
        guest.remote(1, "x", "0", [HOST])


def _host_process(transport: Any, job_id: str) -> None:
    """Runs in a spawned process, with a pickled copy of conftest's ``Transport``."""
    fed = transport.endpoint(job_id, HOST, default_timeout=120)
    x = fed.get("x", "0", [GUEST])[0]
    fed.remote({"sum": float(x.sum()), "double": x * 2}, "reply", "0", [GUEST])
    fed.abort("host finished on purpose", [GUEST])


def test_exchange_between_processes(transport, job_id):
    proc = multiprocessing.get_context("spawn").Process(target=_host_process, args=(transport, job_id))
    proc.start()
    try:
        guest = transport.endpoint(job_id, GUEST, default_timeout=120)
        x = np.random.default_rng(1).random((300, 40))
        guest.remote(x, "x", "0", [HOST])
        reply = guest.get("reply", "0", [HOST])[0]
        assert reply["sum"] == pytest.approx(x.sum()) and np.array_equal(reply["double"], x * 2)
        with pytest.raises(PeerFailed, match="host:10000 failed: host finished on purpose"):
            guest.get("more", "0", [HOST])
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
