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
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions as pe
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from federation._mq import MessageFederation
from federation.api import Party
from federation.auth import KeyStore, PartyKeys, RouteTable, route_table_for
from flow.errors import ConfigError, FederationError

log = logging.getLogger(__name__)

PREFIX = "fedweave"
CONTROL = "-"  # in the src-role slot: not a valid role, so control and data names never meet
#: broker replies no retry will fix: access refused, precondition failed, vhost not allowed
_PERMANENT_CODES = {403, 406, 530}
#: bytes per socket read; at pika's 4 KiB it re-copies its buffer ~30 times per 128 KiB frame
_RECV_BYTES = 256 * 1024
_ERRORS = (pe.AMQPError, OSError)
_T = TypeVar("_T")


def _parse_url(data: dict[str, Any]) -> dict[str, Any]:
    url = data.pop("url", None)
    if not url:
        return data
    if given := [k for k in ("host", "port", "vhost", "ssl") if data.get(k) is not None]:
        raise ValueError(f"give the broker either as url or as host/port/vhost/ssl, not both (also set: {given})")
    u = urlsplit(str(url))
    if u.scheme not in ("amqp", "amqps"):
        raise ValueError(f"url must start with amqp:// or amqps://, not '{u.scheme}://'")
    out = {**data, "ssl": u.scheme == "amqps", "host": u.hostname or "127.0.0.1", "port": u.port,
           "vhost": unquote(u.path[1:]) if len(u.path) > 1 else "/"}  # fmt: skip
    for key, value in (("user", u.username), ("password", u.password)):
        if value is not None:
            out.setdefault(key, unquote(value))
    return out


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    vhost: str
    ssl: bool
    server_hostname: str | None = None

    def __str__(self) -> str:
        return f"{'amqps' if self.ssl else 'amqp'}://{self.host}:{self.port}/{quote(self.vhost, safe='')}"


class BrokerAddress(BaseModel):
    """Where a party's inbound queues live: a route-table entry's ``rabbitmq`` field (other
    keys, e.g. a management port, are ignored) or the address part of the service conf."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    vhost: str | None = None
    ssl: bool | None = None
    server_hostname: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _url(cls, data: Any) -> Any:
        return _parse_url(dict(data)) if isinstance(data, Mapping) else data


class RabbitMQConf(BrokerAddress):
    """``federation.rabbitmq`` in service_conf.yaml: this party's own broker and credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str = "guest"
    password: SecretStr = SecretStr("guest")
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify_hostname: bool = True
    heartbeat: int = Field(300, ge=0)
    connection_attempts: int = Field(2, ge=1)
    retry_delay: float = Field(0.5, ge=0)
    socket_timeout: float = Field(10.0, gt=0)
    blocked_connection_timeout: float = Field(300.0, gt=0)
    #: deliveries pushed ahead of ``get``, per queue
    prefetch: int = Field(32, ge=1, le=65535)
    exchange: str = Field(PREFIX, min_length=1, max_length=255)
    #: how long sending or receiving keeps reconnecting to a lost broker before failing
    retry_timeout: float = Field(120.0, gt=0)

    @classmethod
    def parse(cls, data: Any, source: str = "federation.rabbitmq") -> "RabbitMQConf":
        """The validated conf; ConfigError names the bad key."""
        if isinstance(data, cls):
            return data
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        try:
            conf = cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = "".join(f".{p}" for p in err["loc"])
            raise ConfigError(f"{source}{where}: {err['msg']}") from None
        if bool(conf.cert_file) != bool(conf.key_file):
            raise ConfigError(f"{source}: cert_file and key_file go together (client certificate and its key)")
        for name in ("ca_file", "cert_file", "key_file"):
            if (path := getattr(conf, name)) and not os.path.isfile(path):
                raise ConfigError(f"{source}.{name}: {path} does not exist")
        return conf

    def broker(self, route: BrokerAddress | None = None) -> Broker:
        """The address to connect to; a route-table entry wins field by field over this conf."""
        r = route or BrokerAddress()
        tls = r.ssl if r.ssl is not None else bool(self.ssl)
        if r.port or (self.port and tls == bool(self.ssl)):
            port = r.port or self.port
        else:  # this conf's port (if any) is for the other scheme
            port = 5671 if tls else 5672
        return Broker(r.host or self.host or "127.0.0.1", port, r.vhost or self.vhost or "/", tls,
                      r.server_hostname or self.server_hostname)

    def parameters(self, broker: Broker) -> pika.ConnectionParameters:
        tls = None
        if broker.ssl:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            ctx.check_hostname = self.verify_hostname
            tls = pika.SSLOptions(ctx, server_hostname=broker.server_hostname or broker.host)
        return pika.ConnectionParameters(
            host=broker.host, port=broker.port, virtual_host=broker.vhost, ssl_options=tls,
            credentials=pika.PlainCredentials(self.user, self.password.get_secret_value()),
            heartbeat=self.heartbeat, connection_attempts=self.connection_attempts, retry_delay=self.retry_delay,
            socket_timeout=self.socket_timeout, blocked_connection_timeout=self.blocked_connection_timeout,
        )  # fmt: skip


def queue_name(job_id: str, dst: Party, src_id: str, src_role: str) -> str:
    """The queue from ``src_id`` (as ``src_role``, or ``CONTROL``) to ``dst`` in ``job_id``. A
    name over AMQP's 255 bytes keeps its two party ids and hashes the rest."""
    head, tail = f"{PREFIX}.{dst.party_id}.{src_id}.", f"{dst.role}.{src_role}.{job_id}"
    if len((head + tail).encode()) > 255:
        tail = hashlib.sha256(tail.encode()).hexdigest()
    return head + tail


def grants(party_id: str, exchange: str = PREFIX) -> dict[str, str]:
    """Permission regexes for party ``party_id``'s user on any vhost it uses: declare, bind,
    consume and delete its inbound queues; declare, bind and delete the ones it sends on;
    publish only through ``exchange``, only as itself (conf/rabbitmq.md)."""
    p, x = re.escape(str(party_id)), re.escape(exchange)
    own = rf"{PREFIX}\.({p}|[^.]+\.{p})\."
    return {"configure": f"^{own}", "write": f"^({x}$|{own})", "read": rf"^({x}$|{PREFIX}\.{p}\.)",
            "topic_write": rf"^{PREFIX}\.[^.]+\.{p}\.", "topic_read": f"^{own}"}


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
        try:
            if self.conn.is_open:
                self.conn.close()
        except Exception:  # noqa: BLE001 - a broken connection is what we are getting rid of
            pass


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
            err = exc.errors()[0]
            where = "".join(f".{p}" for p in err["loc"])
            raise ConfigError(f"route table: party {pid}: rabbitmq{where}: {err['msg']}") from None

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
        names = list(self._queues) + [self._queue(self.local, pid, CONTROL) for pid in self.peer_ids]
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
        if self._closed:
            self._close_publishers()

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
