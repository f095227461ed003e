"""The Pulsar transport: each (job, sender, receiver) channel is a persistent topic
``persistent://<tenant>/<namespace>/<topic_prefix>.<channel>`` that the receiver reads
through its durable Failover subscription ``<topic_prefix>-<role>-<party_id>``; its
control channel (abort) is one more topic. Chunking, signatures, checksums,
de-duplication, reassembly, timeouts and abort are :mod:`federation._mq`'s; here:

- before its first message on a channel a sender creates the receiver's subscription,
  so what is sent before the receiver starts is kept; receivers subscribe at the end;
- small messages are batched; each ``remote`` waits until the broker has persisted
  every message, re-sending failed ones (a broker restart) for ``reconnect_timeout_s``;
- a message is acknowledged once its object was handed over; after a reconnect the
  broker redelivers the rest: copies of messages still being assembled are skipped,
  copies of consumed ones are dropped by ``_mq`` (it remembers message ids);
- a consumer that delivers nothing while this party waits on its channel is replaced
  after ``stall_resubscribe_s`` (brokers have been seen to stop dispatching to a
  consumer that still has permits: pulsar-lite under load, Apache Pulsar issue 6054);
  the new one gets what is unacknowledged again and the copies are skipped as above;
- ``cleanup`` unsubscribes; pulsar-client has no admin API to delete topics.

Settings: ``federation.pulsar`` in service_conf.yaml (:class:`PulsarSettings` in
:mod:`federation._pulsar_conf`, conf/pulsar.md).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections import defaultdict, deque
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Mapping, TypeVar

from pydantic import ValidationError

from federation._mq import MessageFederation, settings_error
from federation._pulsar_conf import FATAL, HINTS, PULSAR_OVERHEAD, PeerRoute, PulsarSettings, import_pulsar
from federation._pulsar_outbox import Entry, Outbox
from federation.api import Party
from federation.auth import KeyStore, PartyKeys, RouteTable, route_table_for
from federation.envelope import DEFAULT_MAX_MESSAGE_SIZE
from flow.core.errors import FederationError

__all__ = ["PULSAR_OVERHEAD", "PeerRoute", "PulsarFederation", "PulsarSettings"]
log = logging.getLogger(__name__)
T = TypeVar("T")

def _close_clients(clients: dict[str, Any]) -> None:
    for client in list(clients.values()):
        with contextlib.suppress(Exception):  # shutting down; the broker may be gone
            client.close()
    clients.clear()


@dataclass
class _Silence:
    """How long a channel has delivered nothing while a get waited on it."""

    since: float  # the later of the last arrival and the start of the wait
    patience: float  # silence after which its consumer is replaced


class PulsarFederation(MessageFederation):
    """One party's endpoint in one job over Pulsar. ``settings`` is this party's
    ``federation.pulsar`` section (a dict or :class:`PulsarSettings`); a peer's inbox is
    on the cluster/tenant/namespace of its route-table ``pulsar`` entry, else on ours."""

    poll_max = 0.5  # _idle returns as soon as a message arrives
    #: bytes handed to the client and not yet confirmed before a publish waits
    max_pending_bytes = 64 * 1024 * 1024

    def __init__(self, job_id: str, local: Party, keys: PartyKeys, route_table: RouteTable, session: Any = None, *,
                 settings: Mapping[str, Any] | PulsarSettings | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, **options: Any):  # fmt: skip
        """``options`` are MessageFederation's; ``max_message_size`` is lowered to fit the
        broker's limit (``settings.max_message_size`` less Pulsar's own metadata)."""
        self.settings = PulsarSettings.load(settings)
        limit = self.settings.max_message_size - PULSAR_OVERHEAD
        super().__init__(job_id, local, keys, route_table, session, max_message_size=min(max_message_size, limit),
                         **options)  # fmt: skip
        self._pulsar = import_pulsar()
        self._token = self.settings.auth_token()
        self._clients: dict[str, Any] = {}  # service URL -> client
        self._finalizer = weakref.finalize(self, _close_clients, self._clients)
        self._owner: dict[str, Party] = {}  # channel -> the party that reads it
        self._routes: dict[Party, tuple[str, str]] = {}
        self._producers: dict[str, Any] = {}
        self._consumers: dict[str, Any] = {}
        self._sent_on: set[str] = set()  # channels used, kept after close for cleanup
        self._read_from: set[str] = set()
        self._id_burnt: set[str] = set()
        self._last_error: str | None = None
        # receiving: the listener thread fills _inbox; _held maps what _mq holds to its ids
        self._inbox: dict[str, deque] = defaultdict(deque)
        self._held: dict[str, dict[str, Any]] = defaultdict(dict)
        self._silence: dict[str, _Silence] = {}  # channel -> how long it has delivered nothing
        self._io, self._arrived = threading.Lock(), threading.Event()
        # sending: what the client holds until the broker confirms it
        self._outbox = Outbox(self._send_async, self.topic, self.settings.reconnect_timeout_s,
                              self._pulsar.PulsarException)  # fmt: skip

    @classmethod
    def from_conf(cls, job_id: str, local: Party, conf: Any, *, parties: Iterable[str], session: Any = None,
                  timeout: float = 600.0, on_reject: Any = None) -> PulsarFederation:  # fmt: skip
        """An endpoint from this party's ServiceConf: ``federation.pulsar``, the key under
        ``<home>/keys`` and the route table in the home (this machine's keys when there is
        none), which must list every party of the job."""
        settings = PulsarSettings.load(conf.federation.pulsar)
        route_table = route_table_for(conf.home_path, conf.route_table_path, parties)
        keys = KeyStore(conf.home_path).load_or_create(local.party_id)
        return cls(job_id, local, keys, route_table, session, settings=settings, on_reject=on_reject,
                   max_message_size=conf.federation.max_message_size, default_timeout=timeout)  # fmt: skip

    # -- naming --------------------------------------------------------------------------

    def data_channel(self, src: Party, dst: Party) -> str:
        channel = super().data_channel(src, dst)
        self._owner.setdefault(channel, dst)
        return channel

    def control_channel(self, dst: Party) -> str:
        channel = super().control_channel(dst)
        self._owner.setdefault(channel, dst)
        return channel

    def subscription(self, party: Party) -> str:
        """The durable subscription through which ``party`` reads its channels."""
        return f"{self.settings.topic_prefix}-{party.role}-{party.party_id}"

    def topic(self, channel: str) -> tuple[str, str]:
        """(service URL, topic) of a channel: on the cluster/namespace of its reader."""
        owner = self._owner.get(channel)
        if owner is None:
            raise FederationError(f"channel '{channel}' was not named by this endpoint")
        if owner not in self._routes:
            s, entry = self.settings, self.route_table.parties.get(owner.party_id)
            raw = getattr(entry, "pulsar", None) if owner != self.local else None
            try:
                peer = PeerRoute.model_validate(raw or {})
            except ValidationError as exc:
                raise settings_error(exc, f"route table: parties.{owner.party_id}.pulsar") from None
            space = f"{peer.tenant or s.tenant}/{peer.namespace or s.namespace}"
            self._routes[owner] = (peer.url or s.service_url, space)
        url, space = self._routes[owner]
        return url, f"persistent://{space}/{self.settings.topic_prefix}.{channel}"

    # -- connections ---------------------------------------------------------------------

    def _client(self, url: str) -> Any:
        with self._io:  # sending and receiving threads may both ask first
            if url not in self._clients:
                self._clients[url] = self._new_client(url)
            return self._clients[url]

    def _new_client(self, url: str) -> Any:
        s, pulsar = self.settings, self._pulsar
        auth = pulsar.AuthenticationToken(self._token) if self._token is not None else None
        return pulsar.Client(
            url, authentication=auth, operation_timeout_seconds=s.operation_timeout_s,
            connection_timeout_ms=int(s.connection_timeout_s * 1000), io_threads=1, message_listener_threads=1,
            logger=pulsar.ConsoleLogger(getattr(pulsar.LoggerLevel, s.client_log_level.title())),
            tls_trust_certs_file_path=s.tls_trust_certs_file_path, tls_validate_hostname=s.tls_validate_hostname,
            tls_allow_insecure_connection=s.tls_allow_insecure_connection,
            tls_certificate_file_path=s.tls_certificate_file_path,
            tls_private_key_file_path=s.tls_private_key_file_path,
        )  # fmt: skip

    def _touch_subscription(self, url: str, topic: str, name: str, unsubscribe: bool = False) -> None:
        """Attach a consumer that takes no messages to subscription ``name`` (creating it
        if missing, so what is sent before its receiver starts is kept), then close or
        unsubscribe it. It runs on a client of its own: pulsar-lite tells consumers of a
        subscription apart by consumer id alone, and client-assigned ids start at 0 in
        every client, so this one (id 0) must not meet the receiver's (ids from 1)."""
        pulsar, client = self._pulsar, self._new_client(url)
        try:
            consumer = client.subscribe(topic, name, consumer_type=pulsar.ConsumerType.Failover, receiver_queue_size=0,
                                        initial_position=pulsar.InitialPosition.Latest)  # fmt: skip
            if unsubscribe:
                consumer.unsubscribe()
            consumer.close()
        finally:
            client.close()

    def _retry(self, what: str, url: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried through connection problems for ``reconnect_timeout_s``."""
        deadline, pause = time.monotonic() + self.settings.reconnect_timeout_s, 0.1
        while True:
            try:
                return fn()
            except self._pulsar.PulsarException as exc:
                kind = type(exc).__name__
                if kind in FATAL or time.monotonic() + pause > deadline:
                    hint = HINTS.get(kind, "")
                    raise FederationError(f"Pulsar at {url}: cannot {what}: {kind}: {exc}{hint}") from None
                log.warning("Pulsar at %s: cannot %s (%s); retrying", url, what, exc)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _producer(self, channel: str) -> Any:
        if channel not in self._producers:
            (url, topic), s = self.topic(channel), self.settings
            sub, client = self.subscription(self._owner[channel]), self._client(url)
            self._retry(f"create subscription {sub} on {topic}", url, lambda: self._touch_subscription(url, topic, sub))
            name = f"{s.topic_prefix}-{self.local.role}-{self.local.party_id}-{uuid.uuid4().hex[:12]}"
            self._producers[channel] = self._retry(f"open a producer on {topic}", url, lambda: client.create_producer(
                topic, producer_name=name, send_timeout_millis=int(s.send_timeout_s * 1000), block_if_queue_full=True,
                batching_enabled=s.batching_max_publish_delay_ms > 0, batching_max_messages=1000,
                batching_max_publish_delay_ms=max(s.batching_max_publish_delay_ms, 1),
            ))  # fmt: skip
            self._sent_on.add(channel)
        return self._producers[channel]

    def _consumer(self, channel: str) -> Any | None:
        """The consumer of one of this party's channels; None while the broker is unreachable."""
        if channel not in self._consumers:
            (url, topic), pulsar = self.topic(channel), self._pulsar
            sub = self.subscription(self.local)
            try:
                client = self._client(url)
                if url not in self._id_burnt:  # see _touch_subscription: our consumer ids start at 1
                    client.create_reader(topic, pulsar.MessageId.latest).close()
                    self._id_burnt.add(url)
                self._consumers[channel] = client.subscribe(
                    topic, sub, consumer_type=pulsar.ConsumerType.Failover,
                    consumer_name=f"{sub}-{uuid.uuid4().hex[:8]}", initial_position=pulsar.InitialPosition.Latest,
                    receiver_queue_size=self.settings.receiver_queue_size,
                    message_listener=partial(self._on_message, channel),
                )  # fmt: skip
            except pulsar.PulsarException as exc:
                kind = type(exc).__name__
                self._last_error = f"cannot subscribe to {topic} at {url}: {kind}: {exc}{HINTS.get(kind, '')}"
                if kind in FATAL:
                    raise FederationError(f"Pulsar: {self._last_error}") from None
                log.warning("Pulsar: %s; retrying", self._last_error)
                return None
            self._read_from.add(channel)
            self._last_error = None
        return self._consumers[channel]

    # -- sending -------------------------------------------------------------------------

    def _publish(self, channel: str, message_id: str, data: bytes) -> None:
        self._outbox.put((channel, message_id, data), self.max_pending_bytes)

    def _send_async(self, entry: Entry, done: Callable[[Any, Any], None]) -> None:
        self._producer(entry[0]).send_async(entry[2], done)  # releases the GIL while it queues

    def _flush(self) -> None:
        """Wait until the broker has every message. A batch goes out by itself within
        ``batching_max_publish_delay_ms``; the client's ``flush_async`` is not called: it
        holds the GIL while it waits for the producer's lock, which the client's own
        thread can hold while it waits for the GIL (a deadlock seen in the test suite)."""
        self._outbox.drain(0)

    # -- receiving -----------------------------------------------------------------------

    def _on_message(self, channel: str, _consumer: Any, msg: Any) -> None:
        """Runs on the client's listener thread: queue the message for the next poll."""
        with self._io:
            self._inbox[channel].append(msg)
        self._arrived.set()

    def _poll(self, channel: str) -> list[tuple[str, bytes]]:
        if self._consumer(channel) is None:
            return []
        with self._io:
            queue = self._inbox.pop(channel, ())
        self._watch(channel, bool(queue))
        held, out = self._held[channel], []
        for msg in queue:
            msg_id = msg.message_id()
            key = str(msg_id)
            if key in held:  # redelivered after a reconnect while its object is still incomplete
                log.debug("Pulsar: %s on %s redelivered while held; skipped", key, channel)
                continue
            held[key] = msg_id
            out.append((key, msg.data()))
        return out

    def _waiting(self, channels: list[str]) -> None:
        now, base = time.monotonic(), self.settings.stall_resubscribe_s
        for channel in channels:
            self._silence.setdefault(channel, _Silence(now, base)).since = now

    def _watch(self, channel: str, arrived: bool) -> None:
        """Replace the consumer of a channel that delivered nothing for too long."""
        now, base = time.monotonic(), self.settings.stall_resubscribe_s
        silence = self._silence.setdefault(channel, _Silence(now, base))
        if arrived:
            silence.since, silence.patience = now, base
        elif now - silence.since >= silence.patience:
            (url, topic), old = self.topic(channel), self._consumers.pop(channel)
            log.info("Pulsar at %s: nothing delivered on %s for %.0fs; subscribing again", url, topic,
                     now - silence.since)  # fmt: skip
            self._quietly(old)
            silence.since, silence.patience = now, min(silence.patience * 2, 8 * base)
            self._consumer(channel)

    def _ack(self, channel: str, message_id: str) -> None:
        msg_id = self._held[channel].pop(message_id, None)
        consumer = self._consumers.get(channel)
        if msg_id is not None and consumer is not None:
            try:
                consumer.acknowledge(msg_id)
            except self._pulsar.PulsarException as exc:  # redelivered later, then dropped as a duplicate
                log.info("Pulsar: acknowledging %s on %s failed: %s", message_id, channel, exc)

    def _idle(self, seconds: float) -> None:
        if self._arrived.wait(seconds):
            self._arrived.clear()

    def _timeout_message(self, name: str, tag: str, parties: list[Party], wait: float) -> str:
        message = super()._timeout_message(name, tag, parties, wait)
        return f"{message}; Pulsar: {self._last_error}" if self._last_error else message

    # -- lifecycle -----------------------------------------------------------------------

    def cleanup(self) -> None:
        """Unsubscribe what this job used: this party's subscriptions on its channels and,
        on the channels it sent on, the receiver's (what is still queued there is
        dropped), so call it once every party is done. Topics are left to the broker,
        which deletes inactive ones (pulsar-client has no admin API). A broker refusing
        (Apache Pulsar does while a receiver is connected) is logged."""
        for channel in [*self._sent_on, *self._read_from]:
            self._unsubscribe(channel, self._owner[channel])
        self._sent_on.clear()
        self._read_from.clear()
        with self._io:
            self._inbox.clear()
        self._held.clear()
        self._silence.clear()

    def _remove_channels(self, channels: list[str]) -> None:
        for channel in channels:
            self._unsubscribe(channel, self.local)
            self._read_from.discard(channel)
            with self._io:
                self._inbox.pop(channel, None)
            self._held.pop(channel, None)
            self._silence.pop(channel, None)

    def _unsubscribe(self, channel: str, owner: Party) -> None:
        """Drop ``owner``'s subscription on a channel (and its backlog); close our handles on it."""
        self._quietly(self._producers.pop(channel, None))
        (url, topic), sub = self.topic(channel), self.subscription(owner)
        consumer = self._consumers.pop(channel, None)
        try:
            if consumer is not None:
                consumer.unsubscribe()
            else:
                self._touch_subscription(url, topic, sub, unsubscribe=True)
        except self._pulsar.PulsarException as exc:
            log.info("Pulsar at %s: cannot unsubscribe %s from %s: %s", url, sub, topic, exc)
        self._quietly(consumer)

    def _quietly(self, handle: Any) -> None:
        """Close a producer or consumer (if any) whatever state the broker is in."""
        if handle is not None:
            with contextlib.suppress(self._pulsar.PulsarException):
                handle.close()

    def close(self) -> None:
        """Close consumers, producers and clients; unacknowledged messages stay queued."""
        super().close()
        for handle in [*self._consumers.values(), *self._producers.values()]:
            self._quietly(handle)
        self._consumers.clear()
        self._producers.clear()
        self._finalizer()
