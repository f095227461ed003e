"""The Pulsar transport under the federation contract suite, against a pulsar-lite broker
started for each test on a free 127.0.0.1 port (see tests/pulsar_broker.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from federation.api import Party
from federation.auth import KeyStore, standalone_route_table
from tests.contract.conftest import FEDERATION_PARTY_IDS, Transport
from tests.pulsar_broker import PulsarLiteBroker, require_broker


def pulsar_endpoint(config: dict, job_id: str, party: Party, **options: Any):
    """Module level, so a spawned process can rebuild endpoints from a pickled Transport.
    Keys live under the scratch home, as in the standalone transport; every party's
    public key is in the route table."""
    from federation.pulsar import PulsarFederation

    home = config["home"]
    route_table = standalone_route_table(home, FEDERATION_PARTY_IDS)
    keys = KeyStore(home).load_or_create(party.party_id)
    return PulsarFederation(job_id, party, keys, route_table, settings=config["pulsar"], **options)


@contextlib.contextmanager
def transport(scratch: Path) -> Iterator[Transport]:
    require_broker()
    with PulsarLiteBroker(scratch / "pulsar-lite") as broker:
        settings = {"service_url": broker.url, "operation_timeout_s": 10, "reconnect_timeout_s": 60}
        yield Transport("pulsar", pulsar_endpoint, {"home": str(scratch), "pulsar": settings})
