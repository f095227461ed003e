"""RabbitMQ settings: this party's broker and credentials (``federation.rabbitmq`` in
service_conf.yaml), a peer's broker (its route-table ``rabbitmq`` entry), the connection
parameters they make, and the queue names and user permissions an administrator sets
up (conf/rabbitmq.md). The transport itself is :mod:`federation.rabbitmq`.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from federation._mq import load_settings
from federation.api import Party
from flow.core.errors import ConfigError

PREFIX = "fedweave"
CONTROL = "-"  # in the src-role slot: not a valid role, so control and data names never meet


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
        conf = load_settings(cls, data, source)
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

    def plaintext(self, routes: Mapping[str, Any] | None = None, source: str = "federation.rabbitmq") -> list[str]:
        """The brokers this party would reach without TLS, one line each (where, address, fix): its
        own (this conf) and each peer's route-table ``rabbitmq`` entry in ``routes``
        ({party_id: entry}; this party's own entry is not used, see ``broker_of``)."""
        out = [] if (own := self.broker()).ssl else [f"{source}: {own} has no TLS (use an amqps:// url, or ssl: true)"]
        for pid, entry in (routes or {}).items():
            if not entry:
                continue
            try:
                broker = self.broker(BrokerAddress.model_validate(entry))
            except ValidationError as exc:
                raise ConfigError(f"route table: parties.{pid}.rabbitmq: {exc.errors()[0]['msg']}") from None
            if not broker.ssl:
                out.append(f"route table: parties.{pid}.rabbitmq: {broker} has no TLS (use amqps://, or ssl: true)")
        return out

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
