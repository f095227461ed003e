"""Where a party's audit entries go, and the hooks that write them.

A home keeps one log per party (``<home>/audit/<party_id>.log``, see :mod:`flow.governance.audit`):
each party runtime writes its own (the tables its Reader read, the objects it sent and
received), and the home's own actions (uploads, downloads, submissions, grants, schedule
firings) go to the log of the home's party (``server.party_id`` in the service conf, else
``$FEDWEAVE_PARTY_ID``), or :data:`LOCAL_PARTY` in standalone mode, where one home holds
every party of a job. Without a home (``$FLOW_HOME`` unset, a
transport used on its own) the runtime hooks record nothing.
"""

from __future__ import annotations

import atexit
import getpass
import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from flow.core import audit_hook
from flow.governance.audit import AuditError, AuditLog

log = logging.getLogger(__name__)

#: the log of a home's own actions when no party id is configured
LOCAL_PARTY = "local"

_LOGS: dict[tuple[str, str], AuditLog] = {}
_LOGS_LOCK = threading.Lock()


def party_log(party_id: str | None = None, home: str | os.PathLike[str] | None = None) -> AuditLog | None:
    """The (cached) audit log of ``party_id`` (default ``$FEDWEAVE_PARTY_ID``, else
    :data:`LOCAL_PARTY`) under ``home`` (default ``$FLOW_HOME``); None when no home is
    known, which turns auditing off (a transport used outside any flow home)."""
    home = home if home is not None else os.environ.get("FLOW_HOME")
    if not home:
        return None
    party = str(party_id or os.environ.get("FEDWEAVE_PARTY_ID") or LOCAL_PARTY)
    key = (str(home), party)
    found = _LOGS.get(key)  # the per-object path: one dict lookup
    if found is None:
        with _LOGS_LOCK:
            found = _LOGS.get(key) or _LOGS.setdefault(key, AuditLog(Path(home).expanduser(), party))
    return found


def home_logs(home: str | os.PathLike[str]) -> list[AuditLog]:
    """Every party's audit log kept under ``home``."""
    logs = []
    for path in sorted((Path(home) / "audit").glob("*.log")):
        try:
            logs.append(AuditLog(home, path.stem))
        except AuditError:  # not a party's log
            continue
    return logs


def user_actor() -> str:
    """Who runs this command, as the audit log records people (``user:<login>``)."""
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"user:uid{os.getuid()}"


def object_digest(chunk_sha256s: list[str]) -> str:
    """One checksum for an object sent as chunks: sha256 over its chunks' sha256 hex digests
    in order. Sender and receiver both hold those digests (they travel in the headers), so
    neither hashes the payload a second time."""
    return hashlib.sha256("".join(chunk_sha256s).encode("ascii")).hexdigest()


class _BatchWriter:
    """Writes one log's federation entries from a background thread, a batch at a time, so a
    transfer only stamps and queues its entry (microseconds) while the lock, write and fsync
    are paid once per batch. Entries reach the file at most :data:`BATCH_DELAY` seconds after
    their transfer, and at process exit; a process killed outright loses at most that much."""

    def __init__(self, audit: AuditLog):
        self.audit = audit
        self._pending: list[dict[str, Any]] = []
        self._lock, self._flush_lock, self._wake = threading.Lock(), threading.Lock(), threading.Event()
        self._owner = 0  # pid whose thread drains the queue (a forked child starts its own)

    def put(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append(event)
            if self._owner != os.getpid():
                self._owner = os.getpid()
                threading.Thread(target=self._run, name=f"audit-{self.audit.party_id}", daemon=True).start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(BATCH_DELAY)  # let the entries of one burst of transfers gather
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:  # batches reach the file in the order they were queued
            with self._lock:
                batch, self._pending = self._pending, []
            try:
                self.audit.append_many(batch)
            except Exception:  # noqa: BLE001 - the audit trail must not break training
                log.exception("audit log of party %s: could not record %d entries", self.audit.party_id, len(batch))


BATCH_DELAY = 0.2
_WRITERS: dict[AuditLog, _BatchWriter] = {}


def flush_audit() -> None:
    """Write every queued federation entry now (also run at process exit)."""
    for writer in list(_WRITERS.values()):
        writer.flush()


atexit.register(flush_audit)


def audit_message(direction: str, job_id: str, name: str, tag: str, peer: str, nbytes: int, sha256: str, *,
                  party: str) -> None:
    """Record one federation object ``"sent"`` to or ``"received"`` from ``peer`` in the log of
    ``party`` under ``$FLOW_HOME`` (no home: nothing is recorded): variable, tag, size and
    checksum, never the payload. Called once per object, not per chunk; the entry is queued
    for a background writer (see :class:`_BatchWriter`), so a transfer never waits for the
    disk, and a failure to write is logged, never raised into a transfer."""
    audit = party_log(party)
    if audit is None:
        return
    try:
        if direction not in ("sent", "received"):
            raise AuditError(f"audit log: direction '{direction}' must be 'sent' or 'received'")
        details = {"name": str(name), "tag": str(tag), "peer": str(peer), "bytes": int(nbytes), "sha256": str(sha256)}
        event = audit.event(f"federation.{direction}", actor=peer if direction == "received" else None, job=job_id,
                            details=details, check=False)  # plain strings and an int: JSON by construction
        writer = _WRITERS.get(audit)
        if writer is None:
            with _LOGS_LOCK:
                writer = _WRITERS.get(audit) or _WRITERS.setdefault(audit, _BatchWriter(audit))
        writer.put(event)
    except Exception:  # noqa: BLE001 - the audit trail must not break training
        log.exception("audit log of party %s: could not record a %s object", party, direction)


def _nbytes(buffers: Any) -> int:
    return sum(memoryview(b).nbytes for b in buffers)


def audit_sent(fed: Any, name: str, tag: str, parties: Any, pieces: Any) -> None:
    """What a transport calls once an object went out: one entry per receiving party, with the
    object's size and :func:`object_digest` of its chunks (whose sha256 it computed anyway)."""
    if party_log(fed.local.party_id) is None:  # auditing off: nothing is computed
        return
    nbytes, digest = sum(_nbytes(p.buffers) for p in pieces), object_digest([p.sha256 for p in pieces])
    for dst in parties:
        audit_message("sent", fed.job_id, name, tag, str(dst), nbytes, digest, party=fed.local.party_id)


def audit_received(fed: Any, header: Any, chunks: dict[int, tuple[Any, Any]]) -> None:
    """What a transport calls once every chunk of an object arrived, was verified and decoded:
    the same size and digest the sender recorded."""
    if party_log(fed.local.party_id) is None:
        return
    ordered = [chunks[i] for i in range(len(chunks))]
    audit_message("received", fed.job_id, header.name, header.tag, str(header.src.party()),
                  sum(_nbytes([payload]) for _, payload in ordered), object_digest([h.sha256 for h, _ in ordered]),
                  party=fed.local.party_id)


def home_log(conf: Any) -> AuditLog:
    """The log of the actions taken in a party's home (``conf``: its ServiceConf): that of its
    ``server.party_id`` when one is set, else as :func:`party_log` picks."""
    found = party_log(conf.server.party_id or None, home=conf.home_path)
    if found is None:  # a home is given, so party_log always finds one
        raise AuditError(f"no audit log in {conf.home_path}")
    return found


def record(service: Any, kind: str, /, *, job: str | None = None, actor: str | None = None,
           **details: Any) -> dict[str, Any]:
    """Record an action taken in the home of ``service`` (its ServiceConf: an upload, a
    download, a submission) in :func:`home_log`, by ``actor`` (default: the user running
    this process)."""
    return home_log(service).append(kind, actor=actor or user_actor(), job=job, details=details)


def audit_event(kind: str, *, party: str, job: str | None = None, **details: Any) -> None:
    """Record what a party's runtime did (a component read a table) in that party's log under
    ``$FLOW_HOME``; like :func:`audit_message`, never raises into the job."""
    audit = party_log(party)
    if audit is None:
        return
    try:
        audit.append(kind, actor=party, job=job, details=details)
    except Exception:  # noqa: BLE001
        log.exception("audit log of party %s: could not record %s", party, kind)


class TrailHook:
    """The :class:`flow.core.audit_hook.AuditHook` the runtime installs: the functions above."""

    sent = staticmethod(audit_sent)
    received = staticmethod(audit_received)
    event = staticmethod(audit_event)


def install() -> None:
    """Record federation traffic and data reads of this process in its home's party logs."""
    if not isinstance(audit_hook.current(), TrailHook):
        audit_hook.install(TrailHook())
