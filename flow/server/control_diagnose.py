"""Why a party did not answer a job proposal: what the initiator's server can check of it
from here (the broker, the peer's queue, messages left unconsumed on it, what the peer
last said), in one line for the job's reason."""

from __future__ import annotations

import logging
import time
from typing import Any

from federation.api import Party
from flow.server.control_link import ROLE, PeerLinks

log = logging.getLogger("fedweave.server.control")


def silence(fed: Any, links: PeerLinks, peer: str) -> str:
    """What was checked about ``peer``'s silence, as one line."""
    checks = [_transport(fed, peer)]
    hello = links.peer_hello.get(peer)
    if hello is None:
        checks.append(f"no hello from party {peer}'s server since this server started")
    else:
        checks.append(f"its server last said hello {time.time() - hello['at']:.0f}s ago")
    if peer in links.dropped:
        count, reason = links.dropped[peer]
        checks.append(f"{count} message(s) from it dropped here (last: {reason})")
    return "; ".join(checks)


def _transport(fed: Any, peer: str) -> str:
    kinds = {cls.__name__ for cls in type(fed).__mro__}
    try:
        if "RabbitMQFederation" in kinds:
            return _rabbitmq(fed, peer)
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not fail the one who asks
        log.warning("could not check party %s's queue: %s", peer, exc)
        return f"its queue could not be checked ({exc})"
    if "PulsarFederation" in kinds:
        return "broker and topic backlog not checked (the Pulsar client cannot read a topic's backlog)"
    return "transport not checked"


def _rabbitmq(fed: Any, peer: str) -> str:
    import pika
    import pika.exceptions as pe

    queue = fed.data_channel(fed.local, Party(ROLE, peer))
    broker = fed.broker_of(peer)
    where = f"RabbitMQ at {broker.host}:{broker.port}"
    params = fed.conf.parameters(broker)
    params.connection_attempts, params.socket_timeout = 1, 5.0
    try:
        conn = pika.BlockingConnection(params)
    except (pe.AMQPError, OSError) as exc:
        return f"{where} unreachable ({str(exc) or type(exc).__name__})"
    try:
        try:
            ok = conn.channel().queue_declare(queue, passive=True)
        except pe.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return (f"{where} reachable, but its queue {queue} does not exist: party {peer}'s server "
                        f"never received from this party")
            return f"{where} reachable, its queue {queue} not checked ({exc.reply_text})"
        waiting, consumers = ok.method.message_count, ok.method.consumer_count
    finally:
        if conn.is_open:
            conn.close()
    if waiting:
        return (f"{where} reachable, {waiting} message(s) waiting unconsumed in queue {queue}"
                f"{' (no consumer)' if not consumers else ''}: party {peer}'s server is not consuming")
    if not consumers:
        return (f"{where} reachable, queue {queue} empty and without consumer: party {peer}'s server took the "
                f"messages but is not running now")
    return (f"{where} reachable, queue {queue} consumed: party {peer}'s server took the proposal but did "
            f"not answer (see its log)")
