"""Federation throughput: each transport beside its broker's raw client, measured in the same run.

    python bench/federation.py [--mb 200] [--ciphertexts 100000] [--key-length 1024]
                               [--repeat 3] [--only rabbitmq,pulsar] [--rabbitmq-url amqp://...]
                               [--pulsar-url pulsar://...]

For every case (an object a job really sends) and transport it times ``remote`` on one
endpoint (in a thread) while ``get`` waits on another, until ``get`` returns, and prints
MB/s of the object's encoded size. "raw" moves the very same bytes, cut into the same
messages, with the broker's plain client and the same guarantees (RabbitMQ: durable
queue, persistent messages, publisher confirms, the same prefetch, acks; publisher in a
thread beside the consumer; Pulsar: a persistent topic, a durable Failover subscription
made before the first message, the same batching, producer queue and consumer queue
settings, asynchronous sends confirmed before the end, one acknowledgement each) and no
encoding, signing, checksums or reassembly; ratio = transport / raw. Transport and raw
runs alternate, best of ``--repeat``. For ciphertexts it also times the bare gmpy2
conversion of the same values to one byte block and back, and prints the ratio that
conversion alone would leave a transport that did nothing else. Without ``--pulsar-url`` a pulsar-lite broker is
started for the run (tests/pulsar_broker.py) in a temporary data directory.

Adding a transport is one entry in ``TRANSPORTS``: a function that opens a (sender,
receiver) endpoint pair and, optionally, one that times the raw client and a service the
run needs (a broker to start).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from federation._mq import MessageFederation  # noqa: E402
from federation.api import Party  # noqa: E402
from federation.auth import KeyStore, standalone_route_table  # noqa: E402
from federation.envelope import DEFAULT_MAX_MESSAGE_SIZE, HEADER_RESERVE, plan_pieces  # noqa: E402
from federation.standalone import StandaloneFederation  # noqa: E402

SENDER, RECEIVER = Party("guest", "9999"), Party("host", "10000")
IDS = [SENDER.party_id, RECEIVER.party_id]
Pair = tuple[MessageFederation, MessageFederation]


# -- cases: what is sent ----------------------------------------------------------------


def numpy_array(args: argparse.Namespace) -> Any:
    return np.random.default_rng(0).random(int(args.mb * 1e6) // 8)


def paillier_ciphertexts(args: argparse.Namespace) -> Any:
    from components.crypto.paillier import generate_keypair

    pk, _ = generate_keypair(args.key_length)
    # obfuscated up front: this measures moving ciphertexts, not the re-randomisation
    return [c.obfuscate() for c in pk.encrypt_many(np.arange(args.ciphertexts) / 7.0)]


def conversion_floor(obj: Any) -> float | None:
    """Seconds that only turning the ciphertexts into bytes and back takes with gmpy2 (one
    block each way, no objects, no checks, no hashing): what any transport that hands the
    receiver GMP numbers must spend under the GIL beside moving the bytes. None: not
    ciphertexts."""
    if isinstance(obj, np.ndarray):
        return None
    import gmpy2

    from components.crypto.paillier_wire import width_for

    cts, bits = [c._c for c in obj], 8 * width_for(obj[0].public_key.n)
    start = time.perf_counter()
    block = gmpy2.pack(cts, bits).to_bytes(len(cts) * bits // 8, "big")
    back = gmpy2.unpack(gmpy2.mpz.from_bytes(block, "big"), bits)
    elapsed = time.perf_counter() - start
    assert back[: len(cts)] == cts
    return elapsed


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return len(a) == len(b) and all(x.ciphertext == y.ciphertext and x.exponent == y.exponent for x, y in zip(a, b))


#: label -> builder of the object to send (given the command line)
CASES: dict[str, Callable[[argparse.Namespace], Any]] = {
    "numpy float64 array": numpy_array,
    "Paillier ciphertexts": paillier_ciphertexts,
}


# -- transports -------------------------------------------------------------------------


@dataclass
class TransportBench:
    #: (scratch dir, job id, args) -> context manager giving (sender, receiver); cleans up on exit
    open_pair: Callable[[Path, str, argparse.Namespace], ContextManager[Pair]]
    #: (messages, args) -> seconds the raw client takes to send and receive them; None: no raw client
    raw: Callable[[list[bytes], argparse.Namespace], float] | None = None
    #: args -> context manager around the whole run (e.g. a broker to start); None: nothing
    service: Callable[[argparse.Namespace], ContextManager[None]] | None = None


@contextlib.contextmanager
def _closing(sender: MessageFederation, receiver: MessageFederation) -> Iterator[Pair]:
    try:
        yield sender, receiver
    finally:
        for fed in (sender, receiver):
            fed.cleanup()
            fed.close()


def standalone_pair(scratch: Path, job_id: str, args: argparse.Namespace) -> ContextManager[Pair]:
    make = lambda p: StandaloneFederation(job_id, p, scratch, parties=IDS, default_timeout=600)  # noqa: E731
    return _closing(make(SENDER), make(RECEIVER))


def rabbitmq_pair(scratch: Path, job_id: str, args: argparse.Namespace) -> ContextManager[Pair]:
    from federation.rabbitmq import RabbitMQFederation

    table = standalone_route_table(scratch, IDS)

    def make(p: Party) -> MessageFederation:
        return RabbitMQFederation(job_id, p, {"url": args.rabbitmq_url, "prefetch": args.prefetch},
                                  keys=KeyStore(scratch).load(p.party_id), route_table=table, parties=IDS,
                                  default_timeout=600)  # fmt: skip

    return _closing(make(SENDER), make(RECEIVER))


def rabbitmq_raw(messages: list[bytes], args: argparse.Namespace) -> float:
    """Plain pika with the transport's guarantees: a durable queue bound to the topic
    exchange, persistent messages, publisher confirms, a prefetch window, one ack each.
    The publisher runs in a thread beside the consumer, as the transport's sender does."""
    import pika

    from federation.rabbitmq import RabbitMQConf

    conf = RabbitMQConf.parse({"url": args.rabbitmq_url})
    params = conf.parameters(conf.broker())
    queue, exchange = f"fedweave.bench.raw.{uuid.uuid4().hex}", "fedweave"
    pub, sub = pika.BlockingConnection(params), pika.BlockingConnection(params)
    try:
        pch, sch = pub.channel(), sub.channel()
        pch.exchange_declare(exchange, "topic", durable=True)
        pch.queue_declare(queue, durable=True)
        pch.queue_bind(queue, exchange, routing_key=queue)
        pch.confirm_delivery()
        sch.basic_qos(prefetch_count=args.prefetch)
        received: list[bytes] = []

        def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
            received.append(body)
            ch.basic_ack(method.delivery_tag)
            if len(received) == len(messages):
                ch.stop_consuming()

        def publish() -> None:
            props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
            for m in messages:
                pch.basic_publish(exchange, queue, m, props, mandatory=True)

        sch.basic_consume(queue, on_message)
        start = time.perf_counter()
        with _in_thread(publish):
            sch.start_consuming()
        elapsed = time.perf_counter() - start
        assert b"".join(received) == b"".join(messages), "raw pika lost or reordered bytes"
        pch.queue_delete(queue)
        return elapsed
    finally:
        pub.close()
        sub.close()


def _pulsar_settings(args: argparse.Namespace) -> Any:
    from federation.pulsar import PulsarSettings

    # the C++ client logs to stdout: errors only, so that the table stays readable
    return PulsarSettings.load({"service_url": args.pulsar_url, "client_log_level": "error"})


def pulsar_pair(scratch: Path, job_id: str, args: argparse.Namespace) -> ContextManager[Pair]:
    from federation.pulsar import PulsarFederation

    table, settings = standalone_route_table(scratch, IDS), _pulsar_settings(args)

    def make(p: Party) -> MessageFederation:
        return PulsarFederation(job_id, p, KeyStore(scratch).load(p.party_id), table, settings=settings,
                                default_timeout=600)  # fmt: skip

    return _closing(make(SENDER), make(RECEIVER))


def pulsar_raw(messages: list[bytes], args: argparse.Namespace) -> float:
    """Plain pulsar-client with the transport's settings: a persistent topic, a durable
    Failover subscription made before the first message, batching, ``send_async`` with a
    blocking producer queue and a flush, the same consumer queue, one ack per message,
    redeliveries skipped by message id (as the transport does by its own ids). The
    producer runs in a thread beside the consumer, as the transport's sender does."""
    import pulsar

    s = _pulsar_settings(args)
    topic = f"persistent://{s.tenant}/{s.namespace}/fedweave.bench.raw.{uuid.uuid4().hex}"
    logger = pulsar.ConsoleLogger(pulsar.LoggerLevel.Error)
    pub, sub = pulsar.Client(s.service_url, logger=logger), pulsar.Client(s.service_url, logger=logger)
    try:
        consumer = sub.subscribe(topic, "bench-raw", consumer_type=pulsar.ConsumerType.Failover,
                                 receiver_queue_size=s.receiver_queue_size,
                                 initial_position=pulsar.InitialPosition.Latest)  # fmt: skip
        producer = pub.create_producer(topic, block_if_queue_full=True, batching_enabled=True,
                                       batching_max_messages=1000,
                                       batching_max_publish_delay_ms=s.batching_max_publish_delay_ms)  # fmt: skip
        failed: list[Any] = []

        def confirmed(result: Any, _id: Any) -> None:
            if getattr(result, "name", str(result)) != "Ok":
                failed.append(result)

        def publish() -> None:
            for m in messages:
                producer.send_async(m, confirmed)
            producer.flush()

        received: dict[str, bytes] = {}  # by message id: pulsar-lite may deliver a message twice
        start = time.perf_counter()
        with _in_thread(publish):
            while len(received) < len(messages):
                msg = consumer.receive(timeout_millis=60_000)
                received.setdefault(str(msg.message_id()), msg.data())
                consumer.acknowledge(msg)
        elapsed = time.perf_counter() - start
        assert not failed, f"raw pulsar-client: sends failed: {failed}"
        assert b"".join(received.values()) == b"".join(messages), "raw pulsar-client lost or reordered bytes"
        consumer.unsubscribe()
        return elapsed
    finally:
        pub.close()
        sub.close()


@contextlib.contextmanager
def pulsar_broker(args: argparse.Namespace) -> Iterator[None]:
    """A pulsar-lite broker for this run unless ``--pulsar-url`` names one."""
    if args.pulsar_url:
        yield
        return
    from tests.pulsar_broker import PulsarLiteBroker, missing

    if missing():
        sys.exit(f"bench/federation.py: the Pulsar case needs {missing()} (or --pulsar-url)")
    with tempfile.TemporaryDirectory(prefix="fedweave-bench-pulsar-") as tmp, PulsarLiteBroker(Path(tmp)) as broker:
        args.pulsar_url = broker.url
        yield


#: transport name -> how to open its endpoints and (optionally) time its raw client
#: and what it needs running meanwhile
TRANSPORTS: dict[str, TransportBench] = {
    "standalone": TransportBench(standalone_pair),
    "rabbitmq": TransportBench(rabbitmq_pair, rabbitmq_raw),
    "pulsar": TransportBench(pulsar_pair, pulsar_raw, pulsar_broker),
}


# -- measuring --------------------------------------------------------------------------


@contextlib.contextmanager
def _in_thread(fn: Callable[[], None]) -> Iterator[None]:
    """Run ``fn`` in a thread during the block; re-raise what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        yield
    finally:
        worker.join()
    if errors:
        raise errors[0]


def time_transport(bench: TransportBench, obj: Any, args: argparse.Namespace) -> float:
    """Seconds from the start of ``remote`` (in a thread) to the end of ``get`` beside it."""
    with tempfile.TemporaryDirectory(prefix="fedweave-bench-") as tmp, \
            bench.open_pair(Path(tmp), f"bench_{uuid.uuid4().hex[:10]}", args) as (sender, receiver):
        start = time.perf_counter()
        with _in_thread(lambda: sender.remote(obj, "x", "0", [RECEIVER])):
            (got,) = receiver.get("x", "0", [SENDER])
        elapsed = time.perf_counter() - start
        assert same(obj, got), "the object did not arrive intact"
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200, help="size of the numpy array (MB)")
    parser.add_argument("--ciphertexts", type=int, default=100_000)
    parser.add_argument("--key-length", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure (best is kept)")
    parser.add_argument("--only", default=",".join(TRANSPORTS), help="comma-separated transports")
    parser.add_argument("--rabbitmq-url", default=os.environ.get("FEDWEAVE_RABBITMQ_URL",
                                                                   "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--prefetch", type=int, default=32)
    parser.add_argument("--pulsar-url", default=os.environ.get("FEDWEAVE_PULSAR_URL"),
                        help="an Apache Pulsar or pulsar-lite broker (default: start pulsar-lite)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in TRANSPORTS]
    if unknown:
        parser.error(f"unknown transport(s) {unknown}; known: {sorted(TRANSPORTS)}")

    with contextlib.ExitStack() as services:
        for name in names:
            if TRANSPORTS[name].service is not None:
                services.enter_context(TRANSPORTS[name].service(args))
        run(names, args)


def run(names: list[str], args: argparse.Namespace) -> None:
    header = f"{'case':<22} {'MB':>7} {'transport':<11} {'MB/s':>8} {'raw MB/s':>9} {'ratio':>6}"
    print(f"best of {args.repeat}; messages of {DEFAULT_MAX_MESSAGE_SIZE >> 20} MiB; sender and receiver at once")
    print(header)
    print("-" * len(header))
    bounds = []
    for label, build in CASES.items():
        obj = build(args)
        messages = [p.payload for p in plan_pieces(obj, DEFAULT_MAX_MESSAGE_SIZE - HEADER_RESERVE)]
        mb = sum(map(len, messages)) / 1e6
        for name in names:
            bench, best, best_raw, floor = TRANSPORTS[name], float("inf"), float("inf"), float("inf")
            for _ in range(args.repeat):  # alternated, so a busy machine slows both alike
                best = min(best, time_transport(bench, obj, args))
                best_raw = min(best_raw, bench.raw(messages, args)) if bench.raw else best_raw
                conv = conversion_floor(obj)
                floor = min(floor, conv) if conv is not None else floor
            rate, raw = mb / best, (mb / best_raw if bench.raw else None)
            raw_cell, ratio = (f"{raw:>9.1f}", f"{rate / raw:>6.2f}") if raw else (f"{'-':>9}", f"{'-':>6}")
            print(f"{label:<22} {mb:>7.1f} {name:<11} {rate:>8.1f} {raw_cell} {ratio}", flush=True)
            if raw and floor < float("inf"):
                bounds.append(f"  {label}, {name}: raw {best_raw * 1e3:.0f} ms + conversion {floor * 1e3:.0f} ms "
                              f"-> ratio at most {best_raw / (best_raw + floor):.2f}")
    if bounds:
        print("bytes <-> GMP numbers alone (gmpy2 pack/unpack, same run), added to the raw client's time:")
        print("\n".join(bounds))

if __name__ == "__main__":
    main()
