"""The RabbitMQ transport under the federation contract suite.

The broker comes from ``$FEDWEAVE_RABBITMQ_URL`` (default ``amqp://guest:guest@127.0.0.1:5672/%2F``,
where ``make test`` starts one). Every test uses its own job id, so its queues never meet
another's; the contract fixture deletes them (``cleanup``) when the test ends, and
:func:`sweep` then removes what endpoints in spawned processes left behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from federation.api import Party
from federation.auth import KeyStore, standalone_route_table
from tests.conftest import service_unavailable
from tests.contract.conftest import FEDERATION_PARTY_IDS, Transport

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: the parties (and roles) tests/contract/test_federation_contract.py exchanges between
PARTIES = [Party("guest", "9999"), Party("host", "10000"), Party("host", "10001")]


def broker_url() -> str:
    return os.environ.get("FEDWEAVE_RABBITMQ_URL", DEFAULT_URL)


def require_broker(url: str) -> None:
    """Skip (fail in CI) unless pika is installed and the broker at ``url`` accepts a login."""
    try:
        import pika
    except ImportError:
        service_unavailable("the pika package (pip install pika)")
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable broker
        service_unavailable(f"RabbitMQ at {url} ({type(exc).__name__}: {exc})")


def rabbitmq_endpoint(config: dict, job_id: str, party: Party, **options: Any):
    """Module level, so a spawned process can rebuild endpoints from a pickled Transport."""
    from federation.rabbitmq import RabbitMQFederation

    home = config["home"]
    keys = KeyStore(home).load_or_create(party.party_id)
    table = standalone_route_table(home, FEDERATION_PARTY_IDS)
    return RabbitMQFederation(job_id, party, config["rabbitmq"], keys=keys, route_table=table,
                              parties=FEDERATION_PARTY_IDS, **options)


def sweep(url: str, job_ids: set[str]) -> None:
    """Delete every queue the suite's parties can have left in these jobs, including those of
    endpoints that lived in another process and never cleaned up."""
    import pika

    from federation.rabbitmq import CONTROL, queue_name

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for job in job_ids:
            for dst in PARTIES:
                for src in PARTIES:
                    for role in (src.role, CONTROL):
                        ch.queue_delete(queue_name(job, dst, src.party_id, role))
    finally:
        conn.close()


@contextlib.contextmanager
def transport(scratch: Path) -> Iterator[Transport]:
    url = broker_url()
    require_broker(url)
    t = Transport("rabbitmq", rabbitmq_endpoint, {"home": str(scratch), "rabbitmq": {"url": url}})
    try:
        yield t
    finally:
        sweep(url, {fed.job_id for fed in t.opened})
