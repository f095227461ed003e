"""How control messages travel between two flow servers, so that none of them can block
the others: what :class:`flow.server.control.ControlPlane` sends and receives per peer.

**Numbered messages** (propose, accept, status, stop, ...) go under consecutive tags per
peer (0, 1, ...), the sender's counter in ``<home>/control/state.json``. The tag is only
an address: the receiver takes them in order while they come, and besides scans a window
of the tags ahead every second. A tag that stays missing while a later one arrived (a
message dropped for a bad signature, corrupt, or lost on the broker) is skipped after a
short grace and still looked for a minute in case it comes late. Each message carries a
unique id (``mid``): the receiver drops a copy of one it already handled (a resend after
a failed publish), and a status report older than one it already has for that job.

**Session messages** go under the tag ``hello``, taken as they come:

- ``hello``, sent by a server to every peer when it starts (each answers with its own):
  the sender's key fingerprint, the fingerprint of the key it holds for the receiver,
  its numbering (``epoch``, ``next``: the tags it used so far) and what it has seen of
  the receiver's. The receiver so learns at once which of the tags before ``next``
  will never come (a restarted server does not trust stale counters), that the sender's
  numbering restarted (new ``epoch``), or that the sender holds a wrong key for it.
- ``unverifiable``: "I cannot verify messages from you with the key I hold (fingerprint
  ...)", sent (signed with the sender's own key) when a peer's message fails its
  signature check here, at most every :data:`NOTICE_EVERY_S` per peer.
"""

from __future__ import annotations

import json
import logging
import queue
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from pathlib import Path
from typing import Any, Callable

from federation.api import Party
from flow.core.errors import CodecError, FederationTimeout, PeerFailed
from flow.runtime.shares import write_json

log = logging.getLogger("fedweave.server.control")

ROLE = "server"
NAME = "control"
#: the tag of session messages (hello, unverifiable)
HELLO = "hello"
#: how many tags past the next expected one are looked for, once a second
WINDOW = 16
#: a scan after a hello covers the tags up to its ``next``, at most this many
MAX_SCAN = 2000
#: seconds a missing tag is waited for once a later one arrived, before it is skipped
GAP_GRACE_S = 2.0
#: seconds a skipped tag is still looked for (a message that comes late is still handled)
LATE_S = 60.0
SCAN_S = 1.0
NOTICE_EVERY_S = 0.2
#: message types of which only the newest per job counts (an older one arriving later is stale)
SUPERSEDING = {"status"}
_SEEN_IDS = 10000


def fingerprint_of(route_table: Any, party_id: str) -> str:
    """The fingerprint of the key ``route_table`` holds for ``party_id`` ("none" without one)."""
    from federation.auth import key_fingerprint
    from flow.core.errors import AuthError

    try:
        return key_fingerprint(route_table.public_key(party_id))
    except (AuthError, ValueError):
        return "none"


class PeerLinks:
    """The numbered and session messages of one server with each of its peers."""

    def __init__(self, fed: Any, party_id: str, peers: list[str], state_path: Path, *,
                 deliver: Callable[[str, dict[str, Any]], None],
                 on_key_mismatch: Callable[[str, str, str], None]):
        from federation.auth import key_fingerprint

        self.fed, self.party_id, self.peers, self.state_path = fed, party_id, peers, state_path
        self.deliver, self.on_key_mismatch = deliver, on_key_mismatch
        keys = getattr(fed, "keys", None)
        self.fingerprint = key_fingerprint(keys) if keys is not None else fingerprint_of(fed.route_table, party_id)
        self.state = self._load_state()
        self.outbox: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._retry: deque[tuple[str, dict[str, Any]]] = deque()
        #: each peer's last session message (hello): what it holds and has seen, and when
        self.peer_hello: dict[str, dict[str, Any]] = {}
        #: messages of each peer dropped here: (count, last reason)
        self.dropped: dict[str, tuple[int, str]] = {}
        self._hint: dict[str, int] = {}
        self._sure: set[str] = set()
        self._gap_since: dict[str, float] = {}
        self._late: dict[str, dict[int, float]] = defaultdict(dict)
        self._next_scan: dict[str, float] = {}
        self._ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._newest: dict[tuple[str, str, str], int] = {}
        self._noticed: dict[str, float] = {}
        for peer in peers:
            self.hello(peer, reply=True)

    # state ---------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            raw = {}
        state = {"epoch": raw.get("epoch") or uuid.uuid4().hex[:12], "sent": dict(raw.get("sent", {})),
                 "recv": dict(raw.get("recv", {})), "ahead": {p: list(v) for p, v in raw.get("ahead", {}).items()},
                 "epochs": dict(raw.get("epochs", {}))}
        if state != raw:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.state_path, state)
        return state

    def save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.state_path, self.state)

    # sending -------------------------------------------------------------
    def send(self, peer: str, message: dict[str, Any]) -> None:
        """Queue ``message`` for ``peer`` (with a fresh message id); :meth:`flush` sends it."""
        self.outbox.put((str(peer), {**message, "mid": uuid.uuid4().hex}))

    def hello(self, peer: str, *, reply: bool) -> None:
        self.outbox.put((peer, {"type": "hello", "reply": reply}))

    def flush(self) -> None:
        """Send what is queued, in order. A message that fails to go out is tried again on
        the next flush (with a new tag, its id kept) and the error raised."""
        while True:
            if self._retry:
                peer, message = self._retry.popleft()
            else:
                try:
                    peer, message = self.outbox.get_nowait()
                except queue.Empty:
                    return
            try:
                if message["type"] in ("hello", "unverifiable"):
                    body = self._hello_body(peer, message) if message["type"] == "hello" else message
                    self.fed.remote(body, NAME, HELLO, [Party(ROLE, peer)])
                    continue
                n = int(self.state["sent"].get(peer, 0))
                self.state["sent"][peer] = n + 1
                self.save()  # before sending: a restart never reuses a tag
                self.fed.remote(message, NAME, str(n), [Party(ROLE, peer)])
            except Exception:
                self._retry.appendleft((peer, message))
                raise

    def _hello_body(self, peer: str, message: dict[str, Any]) -> dict[str, Any]:
        return {"type": "hello", "reply": bool(message.get("reply")), "party": self.party_id,
                "fingerprint": self.fingerprint, "holds": fingerprint_of(self.fed.route_table, peer),
                "epoch": self.state["epoch"], "next": int(self.state["sent"].get(peer, 0)),
                "seen": {"epoch": self.state["epochs"].get(peer), "next": int(self.state["recv"].get(peer, 0))},
                "ts": int(time.time() * 1000)}

    # rejections ----------------------------------------------------------
    def rejected(self, rejection: Any) -> None:
        """A message claiming to come from a peer was dropped here (``on_reject``): count it,
        and when its signature did not verify tell that peer which key this party holds."""
        role, _, peer = str(rejection.src).partition(":")
        if role != ROLE or peer not in self.peers:
            return
        count, _ = self.dropped.get(peer, (0, ""))
        self.dropped[peer] = (count + 1, str(rejection.reason))
        now = time.monotonic()
        if "signature" not in str(rejection.reason) or now - self._noticed.get(peer, -1e9) < NOTICE_EVERY_S:
            return
        self._noticed[peer] = now
        held = fingerprint_of(self.fed.route_table, peer)
        log.warning("cannot verify messages from party %s with the key held for it (fingerprint %s): told it",
                    peer, held)
        self.outbox.put((peer, {"type": "unverifiable", "party": self.party_id, "fingerprint": self.fingerprint,
                                "holds": held, "tag": str(rejection.tag), "reason": str(rejection.reason),
                                "text": f"cannot verify messages from {peer} with the key I hold "
                                        f"(fingerprint {held})"}))

    # receiving -----------------------------------------------------------
    def _take(self, peer: str, tag: str, timeout: float = 0.0) -> Any:
        """The message ``tag`` of ``peer`` if it is here, else None."""
        try:
            return self.fed.get(NAME, tag, [Party(ROLE, peer)], timeout=timeout)[0]
        except FederationTimeout:
            return None
        except CodecError as exc:  # authentic but unreadable: consumed, as good as lost
            log.warning("control message %s from party %s could not be read: %s", tag, peer, exc)
            return None
        except PeerFailed as exc:  # an abort has no meaning on the control plane: it must not stick
            log.warning("abort from party %s on the control plane ignored: %s", peer, exc)
            self.fed.dismiss_abort()
            return None

    def poll(self) -> int:
        """Take every waiting message of every peer; returns how many."""
        got = 0
        for peer in self.peers:
            got += self._session(peer) + self._numbered(peer)
        return got

    def _session(self, peer: str) -> int:
        n = 0
        while n < 100 and (msg := self._take(peer, HELLO)) is not None:
            n += 1
            kind = msg.get("type") if isinstance(msg, dict) else None
            try:
                if kind == "hello":
                    self._on_hello(peer, msg)
                elif kind == "unverifiable":
                    self._on_unverifiable(peer, msg)
                else:
                    log.warning("session message of unknown type %r from party %s ignored", kind, peer)
            except (TypeError, ValueError) as exc:
                log.warning("malformed %s from party %s ignored: %s", kind, peer, exc)
        return n

    def _on_hello(self, peer: str, msg: dict[str, Any]) -> None:
        self.peer_hello[peer] = {**msg, "at": time.time()}
        self._check_holds(peer, msg)
        epoch, nxt = msg.get("epoch"), int(msg.get("next") or 0)
        known = self.state["epochs"].get(peer)
        if known is not None and epoch != known:
            log.warning("party %s numbers its control messages anew (its state was reset): following it", peer)
            self.state["recv"][peer], self.state["ahead"][peer] = 0, []
            self._late.pop(peer, None)
            self._gap_since.pop(peer, None)
            self._newest = {k: v for k, v in self._newest.items() if k[0] != peer}
        self.state["epochs"][peer] = epoch
        self.save()
        # every message it sent before this hello has arrived by now, or never will
        self._hint[peer] = max(self._hint.get(peer, 0), nxt)
        self._sure.add(peer)
        if msg.get("reply"):
            self.hello(peer, reply=False)

    def _check_holds(self, peer: str, msg: dict[str, Any]) -> None:
        held = str(msg.get("holds") or "")
        if held and held != self.fingerprint:
            self.on_key_mismatch(peer, held, self.fingerprint)

    def _on_unverifiable(self, peer: str, msg: dict[str, Any]) -> None:
        held = str(msg.get("holds") or "")
        if held and held != self.fingerprint:
            self._check_holds(peer, msg)
        else:  # it holds this party's right key: what it dropped was not signed here
            log.warning("party %s dropped a message (tag %s) claiming to come from this party that this party's "
                        "key did not sign: %s", peer, msg.get("tag"), msg.get("reason"))

    def _numbered(self, peer: str) -> int:
        recv, ahead = self.state["recv"], set(self.state["ahead"].get(peer, []))
        base, got = int(recv.get(peer, 0)), 0
        while (msg := self._take(peer, str(base), timeout=0.01 if not got else 0.0)) is not None:
            self._handle(peer, base, msg)
            base, got = self._advance(peer, base + 1, ahead), got + 1
        now = time.monotonic()
        if now >= self._next_scan.get(peer, 0.0) or self._hint.get(peer, 0) > base:
            self._next_scan[peer] = now + SCAN_S
            top = min(max(base + WINDOW, self._hint.get(peer, 0)), base + MAX_SCAN)
            for t in range(base + 1, top):
                if t not in ahead and (msg := self._take(peer, str(t))) is not None:
                    self._handle(peer, t, msg)
                    ahead.add(t)
                    got += 1
            for t, until in list(self._late[peer].items()):
                if now > until:
                    del self._late[peer][t]
                elif (msg := self._take(peer, str(t))) is not None:
                    del self._late[peer][t]
                    log.info("control message %s from party %s came late: handled", t, peer)
                    self._handle(peer, t, msg)
                    got += 1
        base = self._skip_gaps(peer, base, ahead, now)
        self._set_base(peer, base, ahead)
        return got

    def _skip_gaps(self, peer: str, base: int, ahead: set[int], now: float) -> int:
        """Skip the tags that will not come: below a hello's ``next`` at once, below one
        that arrived after :data:`GAP_GRACE_S`."""
        hint = self._hint.get(peer, 0)
        sure = peer in self._sure
        self._sure.discard(peer)
        if base >= hint and not ahead:
            self._gap_since.pop(peer, None)
            return base
        since = self._gap_since.setdefault(peer, now)
        stop = hint if sure and base < hint else (min(ahead) if ahead else hint)
        if not sure and now - since < GAP_GRACE_S:
            return base
        lost = [t for t in range(base, stop) if t not in ahead]
        if lost:
            log.warning("control message%s %s from party %s never arrived (dropped, corrupt or lost): skipped",
                        "s" if len(lost) > 1 else "", _ranges(lost), peer)
            for t in lost[-WINDOW * 4:]:
                self._late[peer][t] = now + LATE_S
        self._gap_since.pop(peer, None)
        ahead -= {t for t in ahead if t < stop}
        return self._advance(peer, max(stop, base), ahead)

    def _advance(self, peer: str, base: int, ahead: set[int]) -> int:
        while base in ahead:
            ahead.discard(base)
            base += 1
        self._set_base(peer, base, ahead)
        return base

    def _set_base(self, peer: str, base: int, ahead: set[int]) -> None:
        old = (self.state["recv"].get(peer), sorted(self.state["ahead"].get(peer, [])))
        if old != (base, sorted(ahead)):
            self.state["recv"][peer], self.state["ahead"][peer] = base, sorted(ahead)
            self.save()

    def _handle(self, peer: str, tag: int, msg: Any) -> None:
        if isinstance(msg, dict):
            mid = str(msg.get("mid") or "")
            if mid:
                if (peer, mid) in self._ids:
                    log.info("control message %s from party %s is a copy of one handled: dropped", mid, peer)
                    return
                self._ids[(peer, mid)] = None
                while len(self._ids) > _SEEN_IDS:
                    self._ids.popitem(last=False)
            kind, job_id = msg.get("type"), msg.get("job_id")
            if kind in SUPERSEDING and isinstance(job_id, str):
                key = (peer, job_id, str(kind))
                if tag < self._newest.get(key, -1):
                    log.info("%s of job %s from party %s older than one handled: dropped", kind, job_id, peer)
                    return
                self._newest[key] = tag
        self.deliver(peer, msg)


def _ranges(tags: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7``."""
    out: list[str] = []
    start = prev = tags[0]
    for t in [*tags[1:], None]:
        if t is None or t != prev + 1:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = t if t is not None else start
        prev = t if t is not None else prev
    return ", ".join(out)
