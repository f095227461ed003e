"""The RabbitMQ transport (pika): durable queues, persistent messages, publisher confirms.

Each broker holds one durable topic exchange (``fedweave``) and a durable queue per
(job, sender, receiver) bound under its own name. Names start with the receiving party,
then the sending one, so permissions are regexes on a party id (:func:`grants`,
conf/rabbitmq.md): a user reads only queues addressed to it and publishes only through
the exchange as itself. Sender and receiver both declare a queue before use.

:mod:`federation._mq` holds every message unacked until its object was handed over. A
consumer pushes up to ``prefetch`` messages; when that window is full of held messages
the rest is pulled with ``basic.get`` (outside the window), so an object bigger than the
window still completes. A lost connection is reopened with back-off: an unconfirmed
message is published again (the receiver drops the copy by id), and a delivery the
broker requeued is re-bound to the copy already held, so each message is acked once.
pika is not thread-safe: publishing and consuming have a connection and a lock each.
Settings, broker addresses, queue names and permissions: :mod:`federation._rabbitmq_conf`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

import pika
import pika.exceptions as pe
from pydantic import ValidationError

from federation._mq import MessageFederation, settings_error
from federation._rabbitmq_conf import CONTROL, PREFIX, Broker, BrokerAddress, RabbitMQConf, grants, queue_name
from federation.api import Party
from federation.auth import KeyStore, PartyKeys, RouteTable, route_table_for
from flow.core.errors import FederationError

__all__ = ["CONTROL", "PREFIX", "Broker", "BrokerAddress", "RabbitMQConf", "RabbitMQFederation", "grants", "queue_name"]
log = logging.getLogger(__name__)

#: broker replies no retry will fix: access refused, precondition failed, vhost not allowed
_PERMANENT_CODES = {403, 406, 530}
#: bytes per socket read; at pika's 4 KiB it re-copies its buffer ~30 times per 128 KiB frame
_RECV_BYTES = 256 * 1024
_ERRORS = (pe.AMQPError, OSError)
_T = TypeVar("_T")


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, (pe.AuthenticationError, pe.ProbableAuthenticationError, pe.ProbableAccessDeniedError)):
        return True
    return getattr(exc, "reply_code", None) in _PERMANENT_CODES


def _describe(exc: BaseException) -> str:
    return str(exc) or f"{type(exc).__name__}{exc.args or ''}"


@dataclass(frozen=True)
class _Queue:
    dst: Party
    control: bool


@dataclass
class _Held:
    """A delivery not acked yet, on connection ``gen``."""

    gen: int
    tag: int
    queue: str
    key: tuple[str, str] | None  # (queue, message id): how a redelivery finds it
    windowed: bool  # pushed by the consumer (counts against prefetch), not pulled


class _Link:
    """One connection and channel to one broker; makes sure the exchange exists."""

    def __init__(self, params: pika.ConnectionParameters, exchange: str, confirm: bool):
        self.conn = pika.BlockingConnection(params)
        stream = getattr(self.conn._impl, "_transport", None)  # private in pika 1.x: skipped if it moves
        if hasattr(stream, "_MAX_RECV_BYTES"):
            stream._MAX_RECV_BYTES = _RECV_BYTES
        self.exchange, self.confirm, self.declared = exchange, confirm, set[str]()
        try:
            self.ch = self.open()
            try:  # a party's user may only use an exchange its administrator created
                self.ch.exchange_declare(exchange, passive=True)
            except pe.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                self.ch = self.open()
                self.ch.exchange_declare(exchange, "topic", durable=True)
        except BaseException:
            self.close()
            raise

    def open(self) -> Any:
        ch = self.conn.channel()
        if self.confirm:
            ch.confirm_delivery()
        return ch

    def declare(self, queue: str) -> None:
        if queue not in self.declared:
            self.ch.queue_declare(queue, durable=True)
            self.ch.queue_bind(queue, self.exchange, routing_key=queue)
            self.declared.add(queue)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection is what we are getting rid of
            if self.conn.is_open:
                self.conn.close()


class RabbitMQFederation(MessageFederation):
    """An endpoint on RabbitMQ. ``parties`` (ids) are the job's parties, whose control queues
    are watched for aborts (default: every party of the route table)."""

    def __init__(self, job_id: str, local: Party, conf: RabbitMQConf | Mapping[str, Any], *, keys: PartyKeys,
                 route_table: RouteTable, parties: Iterable[str | Party] | None = None, session: Any = None,
                 **options: Any):
        super().__init__(job_id, local, keys, route_table, session, **options)
        self.conf = RabbitMQConf.parse(conf)
        ids = {p.party_id if isinstance(p, Party) else str(p) for p in (parties or route_table.parties)}
        self.peer_ids = sorted(ids | {local.party_id})
        self.home = self.conf.broker()
        for pid in self.peer_ids:  # a bad route-table entry fails here, not mid-job
            self.broker_of(pid)
        self._queues: dict[str, _Queue] = {}
        self._pub_lock, self._sub_lock = threading.RLock(), threading.RLock()
        self._pubs: dict[Broker, _Link] = {}
        self._sub: _Link | None = None
        self._gen = 0  # bumped per consumer connection: tags of older ones are void
        self._consuming: set[str] = set()
        self._inbox: dict[str, deque[tuple[str, bytes]]] = defaultdict(deque)
        self._held: dict[str, _Held] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._window: dict[str, int] = defaultdict(int)
        self._sub_down_since: float | None = None
        self._sub_retry_at, self._sub_delay = 0.0, 0.1

    @classmethod
    def from_conf(cls, job_id: str, local: Party, conf: Any, *, parties: Iterable[str], session: Any = None,
                  timeout: float = 600.0, on_reject: Any = None) -> "RabbitMQFederation":
        """Broker and credentials from ``federation.rabbitmq``; peers' keys (and brokers) from
        the route table in the party's home, or this machine's keys when there is none."""
        rabbit = RabbitMQConf.parse(conf.federation.rabbitmq)
        table = route_table_for(conf.home_path, conf.route_table_path, parties)
        return cls(job_id, local, rabbit, keys=KeyStore(conf.home_path).load_or_create(local.party_id),
                   route_table=table, parties=list(parties), session=session,
                   max_message_size=conf.federation.max_message_size, default_timeout=timeout, on_reject=on_reject)

    # -- naming ----------------------------------------------------------------------

    def _queue(self, dst: Party, src_id: str, src_role: str) -> str:
        name = queue_name(self.job_id, dst, src_id, src_role)
        self._queues.setdefault(name, _Queue(dst, src_role == CONTROL))
        return name

    def data_channel(self, src: Party, dst: Party) -> str:
        return self._queue(dst, src.party_id, src.role)

    def control_channel(self, dst: Party) -> str:
        return self._queue(dst, self.local.party_id, CONTROL)

    def broker_of(self, party_id: str) -> Broker:
        """Where ``party_id``'s queues live: for a peer, its route-table ``rabbitmq`` entry wins
        over the service conf; for this party, the service conf always wins."""
        pid = str(party_id)
        route = self.route_table.parties.get(pid)
        extra = (route.model_extra or {}).get("rabbitmq") if route and pid != self.local.party_id else None
        if not extra:
            return self.home
        try:
            return self.conf.broker(BrokerAddress.model_validate(extra))
        except ValidationError as exc:
            raise settings_error(exc, f"route table: party {pid}: rabbitmq") from None

    # -- publishing ------------------------------------------------------------------

    def _retrying(self, broker: Broker, what: str, fn: Callable[[_Link], _T]) -> _T:
        """``fn`` on a publishing link to ``broker``, reconnecting with back-off for up to
        ``retry_timeout``; FederationError at once for what no retry fixes."""
        deadline, delay = None, 0.1
        while True:
            try:
                with self._pub_lock:
                    link = self._pubs.get(broker)
                    if link is None:
                        link = self._pubs[broker] = _Link(self.conf.parameters(broker), self.conf.exchange, True)
                    return fn(link)
            except _ERRORS as exc:
                if not isinstance(exc, pe.UnroutableError):  # that one leaves the link usable
                    with self._pub_lock:
                        if (dead := self._pubs.pop(broker, None)) is not None:
                            dead.close()
                if _permanent(exc):
                    raise FederationError(f"RabbitMQ at {broker} refused to {what}: {_describe(exc)}") from None
                now = time.monotonic()
                deadline = deadline or now + self.conf.retry_timeout
                if now >= deadline:
                    raise FederationError(f"cannot {what}: RabbitMQ at {broker} unreachable for "
                                          f"{self.conf.retry_timeout:g}s ({_describe(exc)})") from None
                log.warning("job %s: cannot %s (%s); retrying in %.1fs", self.job_id, what, _describe(exc), delay)
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, 5.0)

    def _publish(self, channel: str, message_id: str, data: bytes) -> None:
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id,
                                     content_type="application/x-fedweave-frame")

        def send(link: _Link) -> None:
            link.declare(channel)
            try:
                link.ch.basic_publish(self.conf.exchange, channel, data, props, mandatory=True)
            except pe.UnroutableError:
                link.declared.discard(channel)  # deleted meanwhile (a cleanup): declare it again
                raise

        self._retrying(self.broker_of(self._queues[channel].dst.party_id), f"publish to {channel}", send)

    # -- consuming -------------------------------------------------------------------

    def _consumer(self) -> _Link | None:
        """The consuming link, (re)opened when due; None while the broker is away."""
        if self._sub is not None or time.monotonic() < self._sub_retry_at:
            return self._sub
        try:
            link = _Link(self.conf.parameters(self.home), self.conf.exchange, False)
            link.ch.basic_qos(prefetch_count=self.conf.prefetch)
            link.ch.add_on_cancel_callback(lambda frame: self._on_cancel(link, frame.method.consumer_tag))
        except _ERRORS as exc:
            self._sub_lost(exc)
            return None
        self._sub, self._gen, self._sub_down_since, self._sub_delay = link, self._gen + 1, None, 0.1
        return link

    def _sub_lost(self, exc: BaseException) -> None:
        """Drop the consuming link; FederationError if no reconnect can help or the broker
        has been away for ``retry_timeout``."""
        if self._sub is not None:
            self._sub.close()
        self._sub = None
        self._consuming.clear()
        self._window.clear()
        if _permanent(exc):
            raise FederationError(f"RabbitMQ at {self.home} refused to deliver to {self.local}: {_describe(exc)}")
        now = time.monotonic()
        self._sub_down_since = self._sub_down_since or now
        if now - self._sub_down_since >= self.conf.retry_timeout:
            raise FederationError(f"cannot receive: RabbitMQ at {self.home} unreachable for "
                                  f"{self.conf.retry_timeout:g}s ({_describe(exc)})")
        log.warning("job %s: lost RabbitMQ while receiving (%s); reconnecting in %.1fs",
                    self.job_id, _describe(exc), self._sub_delay)
        self._sub_retry_at, self._sub_delay = now + self._sub_delay, min(self._sub_delay * 2, 5.0)

    def _on_cancel(self, link: _Link, queue: str) -> None:
        """The broker ended a consumer (its queue was deleted): declare and subscribe again."""
        self._consuming.discard(queue)
        link.declared.discard(queue)

    def _on_message(self, queue: str, method: Any, props: Any, body: bytes, windowed: bool = True) -> None:
        self._window[queue] += windowed
        key = (queue, props.message_id) if props.message_id else None
        old = self._held.get(self._by_key.get(key, "")) if key else None
        if method.redelivered and old is not None and old.gen != self._gen:
            # requeued when an earlier connection died while we held it: same message, new tag
            old.gen, old.tag, old.windowed = self._gen, method.delivery_tag, windowed
            return
        mid = f"{self._gen}.{method.delivery_tag}"
        self._held[mid] = _Held(self._gen, method.delivery_tag, queue, key, windowed)
        if key:
            self._by_key[key] = mid
        self._inbox[queue].append((mid, body))

    def _watched(self, channel: str) -> list[str]:
        """The queues behind a channel: this party's control channel is one queue per peer."""
        q = self._queues[channel]
        return [self._queue(q.dst, pid, CONTROL) for pid in self.peer_ids] if q.control else [channel]

    def _poll(self, channel: str) -> list[tuple[str, bytes]]:
        queues = self._watched(channel)
        with self._sub_lock:
            if (link := self._consumer()) is not None:
                try:
                    for q in queues:
                        if q not in self._consuming:
                            link.declare(q)
                            link.ch.basic_consume(q, lambda _, m, p, b, q=q: self._on_message(q, m, p, b),
                                                  consumer_tag=q)  # fmt: skip
                            self._consuming.add(q)
                    link.conn.process_data_events(0)
                    for q in queues:
                        self._top_up(link, q)
                except _ERRORS as exc:
                    self._sub_lost(exc)
            out: list[tuple[str, bytes]] = []
            for q in queues:
                box = self._inbox.get(q)
                while box:
                    out.append(box.popleft())
            return out

    def _top_up(self, link: _Link, queue: str) -> None:
        """Pull past a window full of held messages: their object may need more than the
        window to complete, and nothing is acked before it does."""
        if self._window[queue] < self.conf.prefetch:
            return
        for _ in range(self.conf.prefetch):
            method, props, body = link.ch.basic_get(queue)
            if method is None:
                return
            self._on_message(queue, method, props, body, windowed=False)

    def _ack(self, channel: str, message_id: str) -> None:
        with self._sub_lock:
            held = self._held.pop(message_id, None)
            if held is None:
                return
            if held.key is not None and self._by_key.get(held.key) == message_id:
                del self._by_key[held.key]
            if held.gen != self._gen or self._sub is None:
                return  # requeued with its connection; the redelivery is acked as a duplicate
            self._window[held.queue] -= held.windowed
            try:
                self._sub.ch.basic_ack(held.tag)
            except _ERRORS as exc:
                self._sub_lost(exc)

    def _idle(self, seconds: float) -> None:
        """Wait on the consumer's socket, so a delivery ends the wait at once."""
        if self._sub_lock.acquire(blocking=False):
            try:
                if self._sub is not None and self._consuming:
                    try:
                        self._sub.conn.process_data_events(time_limit=seconds)
                    except _ERRORS as exc:
                        self._sub_lost(exc)
                    return
            finally:
                self._sub_lock.release()
        time.sleep(seconds)

    # -- lifecycle -------------------------------------------------------------------

    def cleanup(self) -> None:
        """Delete the job's queues this endpoint used (sent on, received on, watched);
        those the broker refuses or cannot be reached for are logged."""
        self._close_consumer()
        self._delete_queues([*self._queues, *(self._queue(self.local, pid, CONTROL) for pid in self.peer_ids)])
        if self._closed:
            self._close_publishers()

    def _remove_channels(self, channels: list[str]) -> None:
        self._close_consumer()
        self._delete_queues([q for channel in channels for q in self._watched(channel)])

    def _delete_queues(self, names: list[str]) -> None:
        by_broker: dict[Broker, list[str]] = defaultdict(list)
        for name in dict.fromkeys(names):
            by_broker[self.broker_of(self._queues[name].dst.party_id)].append(name)

        def delete(link: _Link, names: list[str]) -> list[str]:
            refused = []
            for name in names:
                try:
                    link.ch.queue_delete(name)
                except pe.ChannelClosedByBroker as exc:
                    if exc.reply_code != 403:
                        raise
                    refused.append(name)
                    link.ch = link.open()
                link.declared.discard(name)
            return refused

        for broker, names in by_broker.items():
            try:
                refused = self._retrying(broker, "delete the job's queues", lambda link, n=names: delete(link, n))
            except FederationError as exc:
                log.warning("job %s: %s", self.job_id, exc)
            else:
                if refused:
                    log.warning("job %s: not allowed to delete %s", self.job_id, ", ".join(refused))

    def _close_consumer(self) -> None:
        with self._sub_lock:
            if self._sub is not None:
                self._sub.close()
            self._sub = None
            for state in (self._consuming, self._inbox, self._held, self._by_key, self._window):
                state.clear()

    def _close_publishers(self) -> None:
        with self._pub_lock:
            for link in self._pubs.values():
                link.close()
            self._pubs.clear()

    def close(self) -> None:
        """Close the connections; unacked messages go back to their queues for a rerun."""
        super().close()
        self._close_publishers()
        self._close_consumer()
