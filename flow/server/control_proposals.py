"""The initiator's side of a job proposal that gets no answer, or one it cannot trust:
a mixin of :class:`flow.server.control.ControlPlane`.

- A party that cannot verify this party's messages says so (``unverifiable``, or its
  hello names another key than this party's): every job still waiting for that party's
  answer fails at once, naming the party and both key fingerprints.
- A party silent for ``server.proposal_timeout`` fails the job naming it and what was
  checked (:func:`flow.server.control_diagnose.silence`).
- A restarted initiator proposes its waiting jobs again (the proposal may have been in
  its outbox only; a party answers a repeated proposal the same way) and gives each
  party a full timeout to answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from flow.server.control_diagnose import silence
from flow.store import FINAL_STATES

log = logging.getLogger("fedweave.server.control")

#: peer states of a proposal (``jobs/<id>/peers.json``) whose party never runs the job
NOT_RUNNING = ("rejected", "silent", "unverified")


class ProposalWatch:
    """Deadlines of the proposals this party is waiting on (``self.proposals``)."""

    conf: Any
    store: Any
    fed: Any
    links: Any
    party_id: str

    def _init_proposals(self) -> None:
        self.proposals: dict[str, float] = {}
        self._proposals_lock = threading.Lock()

    def _expect_answers(self, job_id: str) -> None:
        with self._proposals_lock:
            self.proposals[job_id] = time.monotonic() + self.conf.server.proposal_timeout

    def _waiting_peers(self, job_id: str) -> list[str]:
        path = self._peers_path(job_id)  # type: ignore[attr-defined]
        if not path.is_file():
            return []
        return [p for p, state in json.loads(path.read_text()).items() if state == "proposed"]

    def _resume_proposals(self) -> None:
        """Propose again the jobs this party initiated that still wait for an answer."""
        for job in self.store.jobs(200):
            if job["initiator_party"] != self.party_id or job["status"] != "waiting" or job["supervisor_pid"]:
                continue
            waiting = self._waiting_peers(job["job_id"])
            if waiting:
                log.info("job %s still waits for %s: proposed again", job["job_id"], ", ".join(waiting))
                for peer in waiting:
                    self.send(peer, {"type": "propose", "job_id": job["job_id"],  # type: ignore[attr-defined]
                                     "conf": job["conf"], "dsl": job["dsl"]})
                self._expect_answers(job["job_id"])

    def _check_proposals(self) -> None:
        """Fail the proposals whose parties stayed silent past ``server.proposal_timeout``."""
        now = time.monotonic()
        with self._proposals_lock:
            due = [j for j, deadline in self.proposals.items() if deadline <= now]
        for job_id in due:
            with self._proposals_lock:
                self.proposals.pop(job_id, None)
            if self.store.job(job_id)["status"] != "waiting":
                continue
            silent = self._waiting_peers(job_id)
            if silent:
                timeout = self.conf.server.proposal_timeout
                reason = "; ".join(f"party {p} did not answer the proposal in {timeout:g}s "
                                   f"({silence(self.fed, self.links, p)})" for p in silent)
                self._fail_proposal(job_id, reason, {p: "silent" for p in silent})

    def _key_mismatch(self, peer: str, held: str, own: str) -> None:
        """``peer`` holds another key for this party than its own: what it is sent is dropped there."""
        reason = (f"party {peer} cannot verify messages from party {self.party_id} with the key it holds for "
                  f"{self.party_id} (fingerprint {held}; party {self.party_id}'s key is {own}): put party "
                  f"{self.party_id}'s public key into party {peer}'s route table and restart its server")
        log.error("%s", reason)
        with self._proposals_lock:
            jobs = list(self.proposals)
        for job_id in jobs:
            if peer in self._waiting_peers(job_id) and self.store.job(job_id)["status"] == "waiting":
                self._fail_proposal(job_id, reason, {peer: "unverified"})

    def _fail_proposal(self, job_id: str, reason: str, marks: dict[str, str]) -> None:
        """Fail a job this party proposed; the parties that accepted it are told to stop."""
        with self._proposals_lock:
            self.proposals.pop(job_id, None)
        peers = json.loads(self._peers_path(job_id).read_text())  # type: ignore[attr-defined]
        peers.update(marks)
        self._write_peers(job_id, peers)  # type: ignore[attr-defined]
        if self.store.job(job_id)["status"] in FINAL_STATES:
            return
        self.store.update_tasks(job_id, ("waiting", "running"), status="failed", reason=reason)
        self.store.update_job(job_id, status="failed", reason=reason)
        for other, state in peers.items():
            if state == "accepted":
                self.send(other, {"type": "stop", "job_id": job_id, "reason": reason})  # type: ignore[attr-defined]
