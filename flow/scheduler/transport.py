"""Building a party's federation endpoint for a job from the service conf.

The runtime asks for an engine by name; the transport class comes from the
``federation.ENGINES`` registry, so nothing here knows which one runs.
"""

from __future__ import annotations

import logging
from typing import Any

from federation import ENGINES, Federation, Party
from flow.settings import ServiceConf

log = logging.getLogger("fedweave.federation")


def _record_rejection(rejection: Any) -> None:
    log.warning("dropped a message: %s", rejection)


def make_federation(engine: str, conf: ServiceConf, job_id: str, local: Party, session: Any,
                    parties: dict[str, list[Party]], timeout: float) -> Federation:
    """A ready endpoint of ``engine`` for ``local`` in ``job_id``; ``parties`` are the job's."""
    ids = sorted({p.party_id for ps in parties.values() for p in ps} | {local.party_id})
    return ENGINES.get(engine).from_conf(job_id, local, conf, parties=ids, session=session, timeout=timeout,
                                         on_reject=_record_rejection)
