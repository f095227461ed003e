"""Append-only, hash-chained audit log of data access and cross-party traffic.

Why a chain: an operator (or an auditor from another organisation) must be able to show
that nobody quietly edited, dropped, reordered or slipped in a record of who read which
table or what crossed party lines. Each entry carries the sha256 of the previous one and
its own sha256 over its canonical JSON, so any such change breaks the chain at a line
:meth:`AuditLog.verify` can name. A small head file (last seq and hash) catches a
truncated tail, which a chain alone cannot.

One JSON-lines file per party, ``<home>/audit/<party_id>.log``. Several processes of one
party append at once: every append takes an exclusive ``fcntl`` lock, reads the current
tail under it, and writes one line with ``O_APPEND``. Payloads never enter the log;
federation entries carry the variable name, tag, peer, size and sha256 only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from flow.core.errors import StoreError
from flow.core.ids import is_valid

if TYPE_CHECKING:  # typing only: the audit log must not pull in the federation stack
    from federation.envelope import Rejection

GENESIS_HASH = "0" * 64
#: the kinds fedweave itself writes; others are allowed if they follow the same dotted form
KNOWN_KINDS: dict[str, str] = {
    "data.upload": "a table was uploaded into this party's storage",
    "data.read": "a component or user read one of this party's tables",
    "data.download": "a table left storage through download/export",
    "job.submit": "a job was submitted at this party",
    "job.proposal.accepted": "this party accepted another party's job proposal",
    "job.proposal.rejected": "this party refused another party's job proposal",
    "federation.sent": "an object was sent to another party",
    "federation.received": "an object from another party was accepted",
    "federation.rejected": "a message from another party was dropped (bad signature, checksum, addressing)",
    "privilege.grant": "a permission was granted",
    "privilege.revoke": "a permission was revoked",
    "schedule.fire": "a cron schedule submitted its job",
    "login": "a user authenticated against this party's flow server",
}
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_FIELDS = ("seq", "time", "kind", "party", "actor", "job", "details", "prev_hash")
_TAIL_CHUNK = 64 * 1024


class AuditError(StoreError):
    """The audit log cannot be written or was given something it must not record."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`AuditLog.verify`: ``count`` entries checked good before the first bad one."""

    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str = ""


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of every field but ``hash`` (sorted keys, no spaces)."""
    body = {k: entry.get(k) for k in _FIELDS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _utc_iso(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _parse_entry(line: bytes | str) -> dict[str, Any] | None:
    """The entry on ``line``, or None if it is not one (torn write, garbage)."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("seq"), int) or not isinstance(obj.get("hash"), str):
        return None
    return obj


class AuditLog:
    """One party's audit log. Safe to share between threads and processes of that party."""

    def __init__(self, home: str | os.PathLike[str], party_id: str, *,
                 clock: Callable[[], datetime] | None = None, fsync: bool = True):
        party_id = str(party_id)
        if not is_valid("party_id", party_id):
            raise AuditError(f"audit log: party_id '{party_id}' must be 1-64 letters, digits, '_', '-' or '.' "
                             "(not starting with '.')")
        self.party_id = party_id
        self.dir = Path(home) / "audit"
        self.path = self.dir / f"{party_id}.log"
        self.head_path = self.dir / f"{party_id}.head"
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._fsync = fsync
        self._thread_lock = threading.Lock()  # flock is per open file; threads need their own lock

    # -- writing ----------------------------------------------------------------------

    def append(self, kind: str, *, actor: str | None = None, job: str | None = None,
               details: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Record one event and return the entry as written. ``extra`` keywords join ``details``."""
        return self.append_many([self.event(kind, actor=actor, job=job, details={**(details or {}), **extra})])[0]

    def event(self, kind: str, *, actor: str | None = None, job: str | None = None,
              details: dict[str, Any] | None = None, check: bool = True) -> dict[str, Any]:
        """A checked entry stamped now, ready for :meth:`append_many` (seq and hashes come there).
        ``check=False`` skips the JSON check of ``details``, for callers that build them from
        plain strings and numbers on a hot path."""
        if not isinstance(kind, str) or not _KIND_RE.match(kind):
            raise AuditError(f"audit log: kind '{kind}' must be lowercase dotted words like 'data.read'")
        details = dict(details or {})
        if check:
            self._check_json(details)
        return {"time": _utc_iso(self._clock()), "kind": kind, "party": self.party_id,
                "actor": actor or self.party_id, "job": job, "details": details}

    def append_many(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain and write ``events`` (from :meth:`event`) in order, under one lock, with one
        write and one fsync: what a batch of federation entries costs."""
        if not events:
            return []
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._thread_lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                last_seq, last_hash, torn = self._tail()
                written, lines = [], []
                for event in events:
                    last_seq += 1
                    entry = {**event, "seq": last_seq, "prev_hash": last_hash}
                    entry["hash"] = last_hash = entry_hash(entry)
                    written.append(entry)
                    lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
                # a torn line left by a crash gets its own line, so verify can name it
                os.write(fd, (b"\n" if torn else b"") + ("\n".join(lines) + "\n").encode("utf-8"))
                if self._fsync:
                    os.fsync(fd)
                self._write_head(last_seq, last_hash)
            finally:
                os.close(fd)  # closing releases the flock
        return written

    @staticmethod
    def _check_json(details: dict[str, Any]) -> None:
        for key, value in details.items():
            if isinstance(value, (bytes, bytearray, memoryview)):
                raise AuditError(f"audit log: details field '{key}' is raw bytes; record its size and sha256 instead")
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise AuditError(f"audit log: details field '{key}' is not JSON ({exc})") from None

    def _tail(self) -> tuple[int, str, bool]:
        """(seq, hash) of the last well-formed entry, and whether the file ends in a torn line."""
        with open(self.path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            if end == 0:
                return 0, GENESIS_HASH, False
            f.seek(end - 1)
            torn = f.read(1) != b"\n"
            pos, buf = end, b""
            while pos > 0:
                step = min(_TAIL_CHUNK, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
                lines = buf.split(b"\n")
                complete = lines if pos == 0 else lines[1:]  # the first may be cut by the chunk edge
                for raw in reversed(complete):
                    entry = _parse_entry(raw) if raw.strip() else None
                    if entry is not None:
                        return entry["seq"], entry["hash"], torn
                buf = lines[0] if pos > 0 else b""
        return 0, GENESIS_HASH, torn

    def _write_head(self, seq: int, digest: str) -> None:
        tmp = self.head_path.with_name(f"{self.head_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"seq": seq, "hash": digest}), encoding="utf-8")
        os.replace(tmp, self.head_path)

    # -- reading ----------------------------------------------------------------------

    def _snapshot(self) -> tuple[list[bytes], bytes | None]:
        """Every line and the head file's content, read under a shared lock so no append is
        half-seen."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return [], self._read_head()
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            lines = [raw.rstrip(b"\n") for raw in f]
            return lines, self._read_head()

    def _read_head(self) -> bytes | None:
        try:
            return self.head_path.read_bytes()
        except FileNotFoundError:
            return None

    def entries(self, job: str | None = None, since: datetime | str | None = None,
                kind: str | None = None) -> list[dict[str, Any]]:
        """Entries in order, filtered by job id, time (``>= since``) and kind (exact, or a
        dotted prefix: ``"federation"`` matches ``federation.sent``). Unreadable lines are
        left out here; :meth:`verify` reports them."""
        after = _parse_time(since) if since is not None else None
        out = []
        for raw in self._snapshot()[0]:
            entry = _parse_entry(raw)
            if entry is None:
                continue
            if job is not None and entry.get("job") != job:
                continue
            if kind is not None and not (entry.get("kind") == kind or str(entry.get("kind")).startswith(kind + ".")):
                continue
            if after is not None and _parse_time(entry["time"]) < after:
                continue
            out.append(entry)
        return out

    def verify(self) -> VerifyResult:
        """Walk the chain from the start; the first line that is not the expected next entry
        (unparseable, wrong seq, broken link, hash mismatch, other party) is reported, then
        the head file is compared with where the chain ends."""
        lines, head = self._snapshot()
        hashes = [GENESIS_HASH]
        for lineno, raw in enumerate(lines, start=1):
            problem = self._check_line(raw, lineno, len(hashes), hashes[-1])
            if problem:
                return VerifyResult(False, len(hashes) - 1, len(hashes), problem)
            hashes.append(json.loads(raw)["hash"])
        count = len(hashes) - 1
        bad_seq, problem = self._check_head(head, hashes)
        if problem:
            return VerifyResult(False, min(count, bad_seq - 1), bad_seq, problem)
        return VerifyResult(True, count)

    def _check_line(self, raw: bytes, lineno: int, seq: int, prev: str) -> str:
        where = f"{self.path.name} line {lineno}"
        entry = _parse_entry(raw)
        if entry is None:
            return f"{where}: not an audit entry (inserted text or a torn write)"
        if set(entry) != {*_FIELDS, "hash"}:
            return f"{where}: fields {sorted(entry)} are not the entry fields (edited)"
        if entry["hash"] != entry_hash(entry):
            return f"{where}: hash does not match the content of seq {entry['seq']} (edited)"
        if entry["seq"] != seq:
            return f"{where}: seq {entry['seq']} where seq {seq} was expected (removed, reordered or inserted)"
        if entry["prev_hash"] != prev:
            return f"{where}: prev_hash does not link to seq {seq - 1} (removed, reordered or inserted)"
        if entry["party"] != self.party_id:
            return f"{where}: entry of party '{entry['party']}' in the log of party '{self.party_id}'"
        return ""

    def _check_head(self, head: bytes | None, hashes: list[str]) -> tuple[int, str]:
        """(first bad seq, problem) where the head file disagrees with the chain, else (0, "")."""
        count = len(hashes) - 1
        if head is None:
            return (0, "") if count == 0 else (count, f"{self.head_path.name} is missing (removed)")
        try:
            obj = json.loads(head)
            head_seq, head_hash = int(obj["seq"]), str(obj["hash"])
        except (ValueError, KeyError, TypeError):
            return count, f"{self.head_path.name} is unreadable (edited)"
        if head_seq > count:
            return count + 1, (f"the log ends at seq {count} but the head records seq {head_seq} "
                               "(entries removed from the end)")
        # the head may lag the log (an append crashed between its line and its head update),
        # but the entry it names must still be the one in the chain
        if head_seq < 0 or hashes[head_seq] != head_hash:
            return max(head_seq, 1), f"seq {head_seq} differs from the hash the head recorded (edited or replaced)"
        return 0, ""


def federation_details(*, name: str, tag: str, peer: str, payload: bytes | None = None,
                       size: int | None = None, sha256: str | None = None) -> dict[str, Any]:
    """What a federation entry records about a transfer: never the payload, only its size and
    sha256 (computed from ``payload`` when given)."""
    if payload is not None:
        size, sha256 = len(payload), hashlib.sha256(payload).hexdigest()
    return {"name": name, "tag": tag, "peer": peer, "bytes": size, "sha256": sha256}


def audit_transfer(log: AuditLog, direction: str, *, job: str, name: str, tag: str, peer: str,
                   payload: bytes | None = None, size: int | None = None, sha256: str | None = None
                   ) -> dict[str, Any]:
    """Record an object ``"sent"`` to or ``"received"`` from ``peer``."""
    if direction not in ("sent", "received"):
        raise AuditError(f"audit log: direction '{direction}' must be 'sent' or 'received'")
    details = federation_details(name=name, tag=tag, peer=peer, payload=payload, size=size, sha256=sha256)
    return log.append(f"federation.{direction}", actor=peer if direction == "received" else None,
                      job=job, details=details)


def audit_rejection(log: AuditLog, rejection: "Rejection") -> dict[str, Any]:
    """Record a dropped federation message. Uses no logging: fit for a transport's ``on_reject``
    (see :func:`rejection_hook`). The claimed fields are unverified, and recorded as such."""
    return log.append(
        "federation.rejected", actor=rejection.src, job=rejection.job_id,
        details={"name": rejection.name, "tag": rejection.tag, "peer": rejection.src,
                 "reason": rejection.reason, "message_id": rejection.message_id,
                 "channel": rejection.channel, "claimed": True},
    )  # fmt: skip


def rejection_hook(log: AuditLog) -> Callable[["Rejection"], None]:
    """An ``on_reject`` callback for a Federation that writes each rejection to ``log``."""

    def hook(rejection: "Rejection") -> None:
        audit_rejection(log, rejection)

    return hook
