"""The control plane between flow servers: job proposals, accept/reject, status reports,
stop and rerun, sent over the party's own federation transport (RabbitMQ or Pulsar).

Each server opens one endpoint of its federation engine as party ``server:<party_id>``
in the pseudo-job :data:`CONTROL_JOB`. Messages are JSON values, so the transport signs
each with the party's Ed25519 key and the receiver checks it against its route table:
one signed by a key not in the table is dropped and audited (``federation.rejected``).
Nobody needs an inbound port from another organisation, only the broker.

How messages travel per peer is :mod:`flow.server.control_link`: a message dropped,
corrupt or lost never blocks the ones after it, copies are dropped by message id, and a
restarted server resynchronises with each peer by a signed hello (its key fingerprint,
what it sent and what it has seen) instead of trusting its counters. The broker keeps
what arrived while a server was down. Every handler is idempotent. A proposal a party
cannot verify, or that gets no answer in ``server.proposal_timeout``, fails at once
naming that party (:mod:`flow.server.control_proposals`).

A job submitted to the initiator's server: it records the job with its own parties only
and proposes it to every other party id of the job. A party accepts when the initiator
is in its route table and ``flow.governance.privileges.check_job_access`` finds no table the
initiator was not granted; it then records the job with its own parties and starts its
supervisor. When every party accepted, the initiator starts its own; one rejection
fails the job at the initiator with that party's reason. Each party reports its tasks'
states to the initiator (``jobs/<id>/remote/<party>.json``), which ``flow job query``
shows next to its own.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from federation.api import Party
from flow.core.errors import ConfigError, FedweaveError
from flow.core.ids import is_valid
from flow.core.settings import ServiceConf
from flow.dsl import JobPlan
from flow.dsl.loader import plan_from_dicts
from flow.runtime import job as jobs
from flow.runtime.party import job_dir
from flow.runtime.shares import (
    audit_log,
    cleanup_transport,
    default_access_check,
    end_share,
    record_job,
    remote_reports,
    tables_read,
    write_json,
)
from flow.runtime.transport import make_federation
from flow.server.control_link import NAME, ROLE, PeerLinks
from flow.server.control_proposals import NOT_RUNNING, ProposalWatch
from flow.server.worker import Worker
from flow.store import FINAL_STATES, Store

__all__ = ["CONTROL_JOB", "NAME", "ROLE", "ControlPlane", "remote_reports"]

log = logging.getLogger("fedweave.server.control")

CONTROL_JOB = "flow_control"
POLL_S = 0.2
SCAN_S = 1.0
#: how long a rerun waits for the party's previous run to end (a stop sent just before)
RERUN_WAIT_S = 60.0


class ControlPlane(ProposalWatch, Worker):
    """One server's control endpoint: an outbox drained and peers polled by one thread."""

    name = "control-plane"

    def __init__(self, conf: ServiceConf, store: Store, *, federation: Any = None,
                 audit: Any = None, access_check: Callable[..., list[str]] | None = None):
        self.conf, self.store = conf, store
        self.party_id = str(conf.server.party_id or "")
        if not self.party_id:
            raise ConfigError(f"{conf.source or 'service_conf'}: server.party_id is required when mode is "
                              f"'{conf.mode}' (the control plane speaks for this party)")
        self.home = conf.home_path
        self.audit = audit if audit is not None else audit_log(self.home, self.party_id)
        self.access_check = access_check or default_access_check()
        self.fed: Any = federation or self._endpoint()
        self.peers = sorted(p for p in self.fed.route_table.parties if p != self.party_id)
        self.state_path = self.home / "control" / "state.json"
        self.links = PeerLinks(self.fed, self.party_id, self.peers, self.state_path, deliver=self._handle,
                               on_key_mismatch=self._key_mismatch)
        self.state = self.links.state
        audit_reject = getattr(self.fed, "on_reject", None)

        def on_reject(rejection: Any) -> None:  # audited, and the peer told which key is held here
            if audit_reject is not None:
                audit_reject(rejection)
            self.links.rejected(rejection)

        self.fed.on_reject = on_reject
        self._init_proposals()
        self._reported: dict[str, str] = {}
        self._final_reported: set[tuple[str, int]] = set()
        self._reruns: dict[str, tuple[str | None, float]] = {}
        self._next_scan = 0.0
        super().__init__(POLL_S, error_wait=1.0)
        self.handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "propose": self._on_propose, "accept": self._on_accept, "reject": self._on_reject,
            "status": self._on_status, "stop": self._on_stop, "rerun": self._on_rerun,
            "start": self._on_start, "cleanup": self._on_cleanup,
        }
        self._resume_proposals()

    def _endpoint(self) -> Any:
        from federation.auth import RouteTable
        from flow.governance.audit import rejection_hook

        table = RouteTable.load(self.conf.route_table_path)
        me = Party(ROLE, self.party_id)
        fed = make_federation(self.conf.default_engines.federation, self.conf, CONTROL_JOB, me, None,
                              {ROLE: [Party(ROLE, p) for p in table.parties]}, timeout=POLL_S)
        if self.audit is not None:
            fed.on_reject = rejection_hook(self.audit)
        return fed

    # sending and receiving ---------------------------------------------
    def send(self, peer: str, message: dict[str, Any]) -> None:
        """Queue ``message`` for ``peer``; the control thread sends it in order."""
        self.links.send(peer, message)

    def poll_once(self) -> int:
        """Send what is queued, then take every waiting message of every peer; returns how many."""
        self.links.flush()
        got = self.links.poll()
        if time.monotonic() >= self._next_scan:  # the store is read at most once a second
            self._next_scan = time.monotonic() + SCAN_S
            self._run_pending_reruns()
            self._report_statuses()
            self._check_proposals()
            self._cleanup_finished()
        self.links.flush()
        return got

    def _handle(self, peer: str, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        handler = self.handlers.get(kind)
        if handler is None:
            log.warning("control message of unknown type %r from %s ignored", kind, peer)
            return
        job_id = message.get("job_id")
        if not is_valid("job_id", job_id) or ".." in job_id:
            log.warning("control message %s from %s names no valid job id (%r): ignored", kind, peer, job_id)
            return
        try:
            handler(peer, message)
        except FedweaveError as exc:
            log.warning("control message %s from %s for job %s: %s", kind, peer, message.get("job_id"), exc)
        except Exception:  # noqa: BLE001 - one bad message must not stop the control plane
            log.exception("control message %s from %s failed", kind, peer)

    # the initiator -------------------------------------------------------
    def submit(self, plan: JobPlan, conf_path: str, dsl_path: str, description: str | None = None) -> dict[str, Any]:
        """Record a job this party initiates (with its ``description``, kept here) and propose it
        to every other party."""
        if plan.initiator.party_id != self.party_id:
            raise ConfigError(f"{conf_path}: initiator {plan.initiator.role}:{plan.initiator.party_id} is not "
                              f"this server's party {self.party_id}; submit it to the initiator's server")
        others = sorted({p.party_id for p in plan.all_parties()} - {self.party_id})
        unknown = [p for p in others if p not in self.fed.route_table.parties]
        if unknown:
            raise ConfigError(f"{conf_path}: part{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)} "
                              f"not in this party's route table")
        job_id = jobs.new_job_id()
        record_job(self.conf, self.store, plan, job_id, self.party_id, description=description or "")
        self._write_peers(job_id, {p: "proposed" for p in others})
        if others:
            self._expect_answers(job_id)
        for peer in others:
            self.send(peer, {"type": "propose", "job_id": job_id, "conf": plan.raw_conf, "dsl": plan.raw_dsl})
        if not others:
            self._start(job_id)
        return {"job_id": job_id, "proposed_to": others,
                "parties": {r: [p.party_id for p in ps] for r, ps in plan.parties.items()}}

    def _peers_path(self, job_id: str) -> Path:
        return job_dir(self.home, job_id) / "peers.json"

    def _write_peers(self, job_id: str, peers: dict[str, str]) -> None:
        write_json(self._peers_path(job_id), peers)

    def _on_accept(self, peer: str, msg: dict[str, Any]) -> None:
        job_id = msg["job_id"]
        peers = json.loads(self._peers_path(job_id).read_text())
        if peers.get(peer) in ("silent", "unverified"):  # it answered after the job had failed here
            self.send(peer, {"type": "stop", "job_id": job_id, "reason": self.store.job(job_id)["reason"]})
        if peers.get(peer) != "proposed":
            return
        peers[peer] = "accepted"
        self._write_peers(job_id, peers)
        job = self.store.job(job_id)
        if job["status"] in FINAL_STATES:  # another party refused meanwhile: this one never starts
            self.send(peer, {"type": "stop", "job_id": job_id, "reason": job["reason"]})
        elif all(v == "accepted" for v in peers.values()) and job["status"] == "waiting":
            with self._proposals_lock:
                self.proposals.pop(job_id, None)
            self._start(job_id)  # every party agreed: all start now
            self.broadcast(job_id, {"type": "start"})

    def _on_start(self, peer: str, msg: dict[str, Any]) -> None:
        job = self.store.job(msg["job_id"])
        if job["initiator_party"] == peer and job["status"] == "waiting" and not job["supervisor_pid"]:
            self._start(msg["job_id"])

    def _on_reject(self, peer: str, msg: dict[str, Any]) -> None:
        reason = f"rejected by party {peer}: {msg.get('reason') or 'no reason given'}"
        self._fail_proposal(msg["job_id"], reason, {peer: "rejected"})

    def _start(self, job_id: str) -> None:
        self.store.update_job(job_id, supervisor_pid=jobs._start_supervisor(self.conf, job_id))

    def _on_status(self, peer: str, msg: dict[str, Any]) -> None:
        folder = job_dir(self.home, msg["job_id"]) / "remote"
        peers = self._peers_path(msg["job_id"])
        if not peers.is_file() or peer not in json.loads(peers.read_text()):
            return  # not a job this party proposed to that peer
        folder.mkdir(exist_ok=True)
        report = {k: msg.get(k) for k in ("job_id", "attempt", "status", "reason", "tasks")}
        write_json(folder / f"{peer}.json", {**report, "party_id": peer})
        current = msg.get("attempt") == self.store.job(msg["job_id"])["attempt"]  # not a report of an old run
        if current and msg.get("status") in ("failed", "timeout", "canceled"):
            self._peer_ended(msg["job_id"], peer, f"party {peer} {msg['status']}: {msg.get('reason') or 'no reason'}")

    def _peer_ended(self, job_id: str, peer: str, reason: str) -> None:
        """A party's share ended badly (e.g. its server restarted and failed it): end ours with
        its reason now instead of waiting for its messages until the timeout."""
        if end_share(self.store, job_id, reason):
            self.broadcast(job_id, {"type": "stop", "reason": reason})  # the others stop waiting for it too

    def broadcast(self, job_id: str, message: dict[str, Any]) -> None:
        """Send a stop or rerun of a job this party initiated to every other party of it."""
        path = self._peers_path(job_id)
        if path.is_file():
            for peer in json.loads(path.read_text()):
                self.send(peer, {**message, "job_id": job_id})

    # the other parties ---------------------------------------------------
    def _on_propose(self, peer: str, msg: dict[str, Any]) -> None:
        job_id = msg["job_id"]
        try:
            known = self.store.job(job_id)
        except FedweaveError:
            known = None
        if known is not None:  # a repeated proposal gets the same answer; a reused job id is refused
            same = known["initiator_party"] == peer
            self.send(peer, {"type": "accept", "job_id": job_id} if same else
                      {"type": "reject", "job_id": job_id, "reason": f"job id {job_id} is taken here"})
            return
        try:
            msg = {**msg, "conf": self._resolve_latest(msg.get("conf"), msg.get("dsl"))}
            reasons = self._refusals(peer, msg)
        except FedweaveError as exc:
            reasons = [f"the job's tables cannot be resolved here: {exc}"]
        if reasons:
            self._audit("job.proposal.rejected", job_id, peer, reasons=reasons)
            self.send(peer, {"type": "reject", "job_id": job_id, "reason": "; ".join(reasons)})
            return
        plan = plan_from_dicts(msg["conf"], msg["dsl"])
        record_job(self.conf, self.store, plan, job_id, self.party_id)
        self._audit("job.proposal.accepted", job_id, peer, tables=tables_read(plan, self.party_id))
        self.send(peer, {"type": "accept", "job_id": job_id})  # it starts when the initiator says so

    def _resolve_latest(self, raw_conf: Any, raw_dsl: Any) -> Any:
        """The proposed conf with ``{latest}`` in this party's own tables replaced by the
        newest matching table of its storage, so the grants checked (and the job run) are
        those of the real table."""
        from flow.schedules.retrain import LATEST, resolve_latest, roles_of

        if not isinstance(raw_conf, dict) or not isinstance(raw_dsl, dict) or LATEST not in json.dumps(raw_conf):
            return raw_conf
        from backends.storage import engine_from_conf

        roles = roles_of(self.party_id)(raw_conf)
        return resolve_latest(raw_conf, raw_dsl, engine_from_conf(self.conf), roles=roles, label="proposed conf")[0]

    def _refusals(self, peer: str, msg: dict[str, Any]) -> list[str]:
        try:
            plan = plan_from_dicts(msg.get("conf"), msg.get("dsl"))
        except FedweaveError as exc:
            return [f"the job does not validate: {exc}"]
        if plan.initiator.party_id != peer:
            return [f"party {peer} proposed a job whose initiator is {plan.initiator.party_id}"]
        if peer not in self.fed.route_table.parties:
            return [f"initiator {peer} is not in this party's route table"]
        if self.party_id not in {p.party_id for p in plan.all_parties()}:
            return [f"party {self.party_id} has no role in this job"]
        return self.access_check(self.store, peer, tables_read(plan, self.party_id),
                                 initiator_role=plan.initiator.role, local_party_id=self.party_id)

    def _on_stop(self, peer: str, msg: dict[str, Any]) -> None:
        job_id = msg["job_id"]
        job = self.store.job(job_id)
        if job["initiator_party"] != peer or job["status"] in FINAL_STATES:
            return
        if job["supervisor_pid"]:
            jobs.stop_job(self.store, job_id)
        else:  # accepted but never started
            reason = msg.get("reason") or f"stopped by the initiator {peer}"
            self.store.update_tasks(job_id, ("waiting", "running"), status="canceled", reason=reason)
            self.store.update_job(job_id, status="canceled", reason=reason)

    def _on_rerun(self, peer: str, msg: dict[str, Any]) -> None:
        job = self.store.job(msg["job_id"])
        if job["initiator_party"] == peer:  # runs once the job has ended here (a stop may still be under way)
            self._reruns[msg["job_id"]] = (msg.get("component"), time.monotonic() + RERUN_WAIT_S)

    def _run_pending_reruns(self) -> None:
        for job_id, (component, deadline) in list(self._reruns.items()):
            if self.store.job(job_id)["status"] in FINAL_STATES:
                del self._reruns[job_id]
                jobs.rerun_job(self.conf, self.store, job_id, component)
            elif time.monotonic() > deadline:
                del self._reruns[job_id]
                log.warning("rerun of job %s dropped: it did not end in %ss", job_id, RERUN_WAIT_S)

    def _report_statuses(self) -> None:
        """Tell each initiator what changed in the jobs this party runs for it."""
        for job in self.store.jobs(50):
            final = (job["job_id"], job["attempt"]) if job["status"] in FINAL_STATES else None
            if job["initiator_party"] == self.party_id or final in self._final_reported:
                continue
            tasks = [{k: t[k] for k in ("component", "role", "party_id", "status", "progress", "reason")}
                     for t in self.store.tasks(job["job_id"])]
            digest = json.dumps([job["status"], job["reason"], job["attempt"], tasks], sort_keys=True)
            if final:
                self._final_reported.add(final)
            if self._reported.get(job["job_id"]) != digest:
                self._reported[job["job_id"]] = digest
                self.send(job["initiator_party"], {"type": "status", "job_id": job["job_id"], "attempt": job["attempt"],
                                                   "status": job["status"], "reason": job["reason"], "tasks": tasks})

    def _cleanup_finished(self) -> None:
        """Once a job this party initiated has ended at every party, each removes its share
        of the job's queues (they would otherwise stay on the broker)."""
        for job in self.store.jobs(50):
            job_id, attempt = job["job_id"], job["attempt"]
            marker = job_dir(self.home, job_id) / f"cleaned.{attempt}"
            if (job["initiator_party"] != self.party_id or job["status"] not in FINAL_STATES
                    or marker.exists() or not self._peers_path(job_id).is_file()):
                continue
            peers = json.loads(self._peers_path(job_id).read_text())
            reports = {r["party_id"]: r for r in remote_reports(self.home, job_id)}
            if any(state not in NOT_RUNNING and not (reports.get(p, {}).get("status") in FINAL_STATES
                                                and reports[p].get("attempt") == attempt)
                   for p, state in peers.items()):
                continue  # someone still runs (or never answered)
            marker.touch()
            self.broadcast(job_id, {"type": "cleanup"})
            cleanup_transport(self.conf, self.store, job_id)

    def _on_cleanup(self, peer: str, msg: dict[str, Any]) -> None:
        job = self.store.job(msg["job_id"])
        if job["initiator_party"] == peer and job["status"] in FINAL_STATES:
            cleanup_transport(self.conf, self.store, msg["job_id"])

    def _audit(self, kind: str, job_id: str, peer: str, **details: Any) -> None:
        if self.audit is not None:
            self.audit.append(kind, actor=f"party:{peer}", job=job_id, details=details)

    # the thread ----------------------------------------------------------
    def step(self) -> bool:
        return self.poll_once()

    def stop(self) -> None:
        super().stop()
        self.fed.close()
