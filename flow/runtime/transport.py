"""Building a party's federation endpoint for a job from the service conf.

The runtime asks for an engine by name; the transport class comes from the
``federation.ENGINES`` registry, so nothing here knows which one runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from federation import ENGINES, Federation, Party
from flow.core.settings import ServiceConf
from flow.governance import trail

if TYPE_CHECKING:
    from flow.dsl import JobPlan

log = logging.getLogger("fedweave.federation")


def _record_rejection(rejection: Any) -> None:
    log.warning("dropped a message: %s", rejection)


def make_federation(engine: str, conf: ServiceConf, job_id: str, local: Party, session: Any,
                    parties: dict[str, list[Party]], timeout: float) -> Federation:
    """A ready endpoint of ``engine`` for ``local`` in ``job_id``; ``parties`` are the job's."""
    trail.install()  # the transports and the Reader record through flow.core.audit_hook
    ids = sorted({p.party_id for ps in parties.values() for p in ps} | {local.party_id})
    return ENGINES.get(engine).from_conf(job_id, local, conf, parties=ids, session=session, timeout=timeout,
                                         on_reject=_record_rejection)


def release_share(conf: ServiceConf, plan: JobPlan, job_id: str, party: Party) -> None:
    """Remove ``party``'s own channels of a job whose share has ended (``Federation.release``),
    through a fresh endpoint of the engine that share used. A transport that refuses or
    cannot be reached is logged: left-over queues are untidy, not wrong."""
    engine = plan.resolved_job_parameters(party).engines(conf.default_engines).federation
    try:
        fed = make_federation(engine, conf, job_id, party, None, plan.parties, timeout=1.0)
    except Exception:  # noqa: BLE001 - see above
        log.exception("job %s: cannot open the transport of %s to remove its channels", job_id, party)
        return
    try:
        fed.release(plan.all_parties())
    except Exception:  # noqa: BLE001 - see above
        log.exception("job %s: could not remove the channels of %s", job_id, party)
    finally:
        fed.close()
