"""What every broker transport shares: chunking, acks, de-duplication, retries, timeouts.

:class:`MessageFederation` implements remote/get/abort on three transport primitives
(publish, poll, ack) over the frames of :mod:`federation.envelope`. It reassembles
chunks that arrive in any order, ignores redelivered ones, acks a message only once
the object it belongs to was handed over, polls with back-off until a deadline, and
drops — and reports — anything whose signature, checksum or addressing is wrong.
A transport (standalone, RabbitMQ, Pulsar) subclasses it and supplies the primitives.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import threading
import time
import uuid
from abc import abstractmethod
from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from federation import codec
from federation._rows import decode_rows
from federation.api import Federation, Party
from federation.auth import PartyKeys, RouteTable
from federation.envelope import (
    DEFAULT_MAX_MESSAGE_SIZE,
    HEADER_RESERVE,
    MAX_NAME_TAG_BYTES,
    Frame,
    Header,
    PartyRef,
    Piece,
    Rejection,
    open_frame,
    plan_pieces,
    seal,
)
from flow.core import audit_hook, metrics_hook
from flow.core.errors import AuthError, CodecError, ConfigError, FederationError, FederationTimeout, PeerFailed
from flow.core.ids import is_valid

log = logging.getLogger(__name__)

_IDENT_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
ABORT_NAME = "__abort__"
_Settings = TypeVar("_Settings", bound=BaseModel)


# -- broker settings (service conf sections and route-table entries) ------------------


def settings_error(exc: ValidationError, where: str) -> ConfigError:
    """pydantic's first complaint as one line naming the key: ``<where>.<key>: <problem>``."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return ConfigError(f"{where}{'.' + loc if loc else ''}: {err['msg'].removeprefix('Value error, ')}")


def load_settings(model: type[_Settings], data: Any, where: str) -> _Settings:
    """``data`` (a mapping, None for the defaults, or already a ``model``) validated as ``model``;
    ConfigError naming ``where`` and the key otherwise."""
    if isinstance(data, model):
        return data
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise settings_error(exc, where) from None


@dataclass
class _Assembly:
    """The chunks of one object from one sender, collected in any arrival order."""

    first: Header
    chunks: dict[int, tuple[Header, memoryview]] = field(default_factory=dict)
    acks: list[tuple[str, str]] = field(default_factory=list)

    def add(self, h: Header, payload: memoryview, ack: tuple[str, str]) -> None:
        f = self.first
        if (h.kind, h.n, h.partitions, h.seq) != (f.kind, f.n, f.partitions, f.seq) or h.i >= h.n:
            raise CodecError(f"chunk {h.i}/{h.n} of object {h.obj} disagrees with its other chunks")
        self.chunks[h.i] = (h, payload)
        self.acks.append(ack)

    @property
    def complete(self) -> bool:
        return len(self.chunks) == self.first.n

    def build(self, session: Any) -> Any:
        ordered = [self.chunks[i] for i in range(self.first.n)]
        if self.first.kind == "obj":  # the payloads are copied once, into the object's buffer
            return codec.decode_chunks([p for _, p in ordered], session)
        if session is None:
            raise FederationError(f"received Table '{self.first.name}' but this endpoint has no computing session")
        parts: list[list] = [[] for _ in range(self.first.partitions)]
        segment: list[memoryview] = []
        for h, payload in ordered:
            segment.append(payload)
            if not h.more:
                if h.part >= len(parts):
                    raise CodecError(f"table chunk names partition {h.part} of {len(parts)}")
                parts[h.part].extend(decode_rows(segment[0] if len(segment) == 1 else b"".join(segment)))
                segment = []
        if segment:
            raise CodecError("table stream ends inside a segment")
        return session.from_partitions(parts, self.first.partitions)


def _check_party(p: Party, what: str) -> None:
    if not isinstance(p, Party) or not (_IDENT_RE.fullmatch(p.role) and _IDENT_RE.fullmatch(p.party_id)):
        raise ConfigError(f"invalid {what} {p!r}: role and party id must be letters, digits or '_'")


@dataclass(frozen=True)
class _Undecodable:
    """Stands in the ready queue for an authentic object that failed to decode."""

    name: str
    src: Party
    reason: str


class MessageFederation(Federation):
    """remote/get/abort for any transport that can publish, poll and ack opaque messages
    on named channels (one data channel per sender→receiver pair, one control channel
    per receiver). Chunks of many objects may be in flight on one channel at once."""

    poll_min = 0.002
    poll_max = 0.05

    def __init__(
        self,
        job_id: str,
        local: Party,
        keys: PartyKeys,
        route_table: RouteTable,
        session: Any = None,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        default_timeout: float = 600.0,
        on_reject: Callable[[Rejection], None] | None = None,
        ignore_aborts_before: float | None = None,
    ):
        super().__init__(job_id, local)
        if not is_valid("job_id", job_id):
            raise ConfigError(f"invalid job id {job_id!r}: use letters, digits, '_', '.', '-' (max 128)")
        _check_party(local, "local party")
        if keys.party_id != local.party_id:
            raise ConfigError(f"key of party {keys.party_id} cannot sign for {local}")
        if max_message_size < 2 * HEADER_RESERVE:
            raise ConfigError(f"max_message_size {max_message_size} is below the minimum {2 * HEADER_RESERVE}")
        self.keys, self.route_table, self.session = keys, route_table, session
        self.max_message_size, self.default_timeout, self.on_reject = max_message_size, default_timeout, on_reject
        self._abort_cutoff_ms = None if ignore_aborts_before is None else int(ignore_aborts_before * 1000)
        self.rejections: deque[Rejection] = deque(maxlen=1000)
        self._lock, self._send_lock = threading.RLock(), threading.Lock()
        self._seq: dict[Party, Iterator[int]] = defaultdict(itertools.count)
        self._seen: set[str] = set()
        self._pending: dict[tuple[str, str, Party], dict[str, _Assembly]] = defaultdict(dict)
        self._ready: dict[tuple[str, str, Party], list[tuple[Any, list[tuple[str, str]]]]] = defaultdict(list)
        self._failure: PeerFailed | None = None
        self._closed = False

    # -- transport primitives ---------------------------------------------------------

    @abstractmethod
    def _publish(self, channel: str, message_id: str, data: bytes) -> None:
        """Store/send one message durably on ``channel``."""

    @abstractmethod
    def _poll(self, channel: str) -> Iterable[tuple[str, bytes]]:
        """Messages on ``channel`` not yet handed to this endpoint, as (transport id, data);
        must not block for long."""

    @abstractmethod
    def _ack(self, channel: str, message_id: str) -> None:
        """The message was consumed (or dropped): remove it for good."""

    def _flush(self) -> None:
        """Called after each remote/abort (e.g. to wait for publisher confirms)."""

    def _waiting(self, channels: list[str]) -> None:
        """A get starts waiting on these channels (its sources' and the control channel)."""

    def _idle(self, seconds: float) -> None:
        """Wait before the next poll; push-based transports may wait on their socket."""
        time.sleep(seconds)

    @property
    def transport_name(self) -> str:
        """How metrics name this transport: ``StandaloneFederation`` -> ``standalone``."""
        return type(self).__name__.removesuffix("Federation").lower()

    def data_channel(self, src: Party, dst: Party) -> str:
        return f"{self.job_id}.{src.role}-{src.party_id}.{dst.role}-{dst.party_id}"

    def control_channel(self, dst: Party) -> str:
        return f"{self.job_id}.control.{dst.role}-{dst.party_id}"

    def release(self, peers: Sequence[Party]) -> None:
        inbound = [self.data_channel(p, self.local) for p in dict.fromkeys(peers) if p != self.local]
        self._remove_channels([*inbound, self.control_channel(self.local)])

    @abstractmethod
    def _remove_channels(self, channels: list[str]) -> None:
        """Delete these channels of this party's and whatever is still queued on them."""

    # -- sending ---------------------------------------------------------------------

    def _header(self, piece: Piece, name: str, tag: str, dst: Party, seq: int, obj: str, i: int, n: int) -> Header:
        return Header(
            id=f"{obj}.{i}", job_id=self.job_id, kind=piece.kind, name=name, tag=tag,
            src=PartyRef.of(self.local), dst=PartyRef.of(dst), seq=seq, obj=obj, i=i, n=n,
            sha256=piece.sha256, ts=int(time.time() * 1000), part=piece.part,
            partitions=piece.partitions, more=piece.more,
        )  # fmt: skip

    def frames(self, obj: Any, name: str, tag: str, dst: Party) -> Iterator[tuple[str, str, bytes]]:
        """The signed messages (channel, id, data) that send ``obj`` to ``dst``."""
        yield from self._frames(plan_pieces(obj, self.max_message_size - HEADER_RESERVE), name, tag, dst)

    def _frames(self, pieces: Sequence[Piece], name: str, tag: str, dst: Party) -> Iterator[tuple[str, str, bytes]]:
        _check_party(dst, "destination")
        obj, seq, channel = uuid.uuid4().hex, next(self._seq[dst]), self.data_channel(self.local, dst)
        for i, piece in enumerate(pieces):
            h = self._header(piece, name, tag, dst, seq, obj, i, len(pieces))
            yield channel, h.id, seal(h, piece.buffers, self.keys)

    def remote(self, obj: Any, name: str, tag: str, parties: Sequence[Party]) -> None:
        self._check_open()
        if not isinstance(name, str) or not name or not isinstance(tag, str):
            raise FederationError(f"a transfer needs a non-empty string name and a string tag, got {name!r}/{tag!r}")
        if len(name.encode()) + len(tag.encode()) > MAX_NAME_TAG_BYTES:
            raise FederationError(f"name and tag of '{name}' are longer than {MAX_NAME_TAG_BYTES} bytes together")
        pieces = plan_pieces(obj, self.max_message_size - HEADER_RESERVE)
        counted = metrics_hook.current()
        with self._send_lock:
            for dst in parties:
                nbytes = messages = 0
                for channel, mid, data in self._frames(pieces, name, tag, dst):
                    self._publish(channel, mid, data)
                    nbytes, messages = nbytes + len(data), messages + 1
                counted.sent(self.transport_name, f"{dst.role}-{dst.party_id}", nbytes, messages)
            self._flush()
            # one entry per object and receiver, never the payload
            audit_hook.current().sent(self, name, tag, parties, pieces)

    def abort(self, reason: str, parties: Sequence[Party]) -> None:
        piece = Piece.of([codec.encode({"reason": str(reason)[:2000]})], kind="abort")  # always one message
        with self._send_lock:
            for dst in parties:
                _check_party(dst, "destination")
                h = self._header(piece, ABORT_NAME, "", dst, 0, uuid.uuid4().hex, 0, 1)
                self._publish(self.control_channel(dst), h.id, seal(h, piece.buffers, self.keys))
            self._flush()

    # -- receiving -------------------------------------------------------------------

    def get(self, name: str, tag: str, parties: Sequence[Party], timeout: float | None = None) -> list[Any]:
        self._check_open()
        parties = list(parties)
        for p in parties:
            _check_party(p, "source")
        wait = self.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        channels = {self.data_channel(p, self.local): p for p in parties}
        self._waiting([*channels, self.control_channel(self.local)])
        delay = self.poll_min
        while True:
            with self._lock:
                moved = self._pump(self.control_channel(self.local), None)
                moved += sum(self._pump(ch, src) for ch, src in channels.items())
                out = self._take(name, tag, parties)
                if out is None and self._failure is not None:  # what fully arrived is still handed over
                    raise self._failure
            if out is not None:
                waited = time.monotonic() - deadline + wait
                for p in dict.fromkeys(parties):
                    metrics_hook.current().waited(self.transport_name, f"{p.role}-{p.party_id}", waited)
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FederationTimeout(self._timeout_message(name, tag, parties, wait))
            if self._spare_step():  # a unit of spare work instead of a sleep, then read again
                delay = self.poll_min
                continue
            delay = self.poll_min if moved else min(delay * 2, self.poll_max)
            self._idle(min(delay, remaining))

    def _timeout_message(self, name: str, tag: str, parties: list[Party], wait: float) -> str:
        missing = [p for p in dict.fromkeys(parties) if not self._ready.get((name, tag, p))]
        partial = [
            f"{len(a.chunks)} of {a.first.n} chunks from {p}"
            for p in missing
            for a in self._pending.get((name, tag, p), {}).values()
        ]
        extra = f" (received {', '.join(partial)})" if partial else ""
        who = ", ".join(map(str, missing))
        return f"timed out after {wait:g}s waiting for '{name}' tag '{tag}' from {who}{extra}"

    def _take(self, name: str, tag: str, parties: list[Party]) -> list[Any] | None:
        if any(len(self._ready.get((name, tag, p), ())) < k for p, k in Counter(parties).items()):
            return None
        out = []
        for p in parties:
            obj, acks = self._ready[(name, tag, p)].pop(0)
            for channel, mid in acks:
                self._ack(channel, mid)
            if isinstance(obj, _Undecodable):
                raise CodecError(f"'{obj.name}' from {obj.src} could not be decoded: {obj.reason}")
            out.append(obj)
        return out

    def _pump(self, channel: str, src: Party | None) -> int:
        count = 0
        for mid, data in self._poll(channel):
            count += 1
            self._accept(channel, mid, data, src)
        return count

    def verify(self, frame: Frame, src: Party | None) -> None:
        """AuthError unless the frame is signed by its sender's key, addressed to this job
        and party (from ``src``, when given) and its payload matches its checksum."""
        h = frame.header
        self.route_table.verify(h.src.party_id, frame.header_bytes, frame.signature)
        if h.job_id != self.job_id:
            raise AuthError(f"message for job {h.job_id}, this is job {self.job_id}")
        if h.dst.party() != self.local:
            raise AuthError(f"message for {h.dst.party()}, this is {self.local}")
        if src is not None and h.src.party() != src:
            raise AuthError(f"message from {h.src.party()} on the channel of {src}")
        if (h.kind == "abort") != (src is None):
            raise AuthError(f"{h.kind} message on the {'control' if src is None else 'data'} channel")
        if hashlib.sha256(frame.payload).hexdigest() != h.sha256:
            raise AuthError("payload checksum mismatch")

    def _accept(self, channel: str, mid: str, data: bytes, src: Party | None) -> None:
        header = None
        try:
            frame = open_frame(data)
            header = frame.header
            self.verify(frame, src)
        except (CodecError, AuthError) as exc:
            self._reject(header, str(exc), [(channel, mid)])
            return
        if header.id in self._seen:
            self._ack(channel, mid)
            return
        self._seen.add(header.id)
        metrics_hook.current().received(self.transport_name, f"{header.src.role}-{header.src.party_id}", len(data), 1)
        if header.kind == "abort":
            self._on_abort(header, frame.payload)
            self._ack(channel, mid)
            return
        key = (header.name, header.tag, header.src.party())
        asm = self._pending[key].setdefault(header.obj, _Assembly(header))
        try:
            asm.add(header, frame.payload, (channel, mid))
        except CodecError as exc:
            self._reject(header, str(exc), [(channel, mid)])
            return
        if asm.complete:
            del self._pending[key][header.obj]
            try:
                obj = asm.build(self.session)
            except (CodecError, ValueError, TypeError, OverflowError) as exc:
                self._reject(header, f"undecodable object: {exc}", asm.acks)
                # signed and intact, so the peer really sent it: it will not come again,
                # and waiting for it would only end at the timeout
                self._ready[key].append((_Undecodable(header.name, header.src.party(), str(exc)), []))
                return
            audit_hook.current().received(self, header, asm.chunks)  # one entry per object, not per chunk
            self._ready[key].append((obj, asm.acks))

    def dismiss_abort(self) -> None:
        self._failure = None

    def _on_abort(self, h: Header, payload: memoryview) -> None:
        if self._abort_cutoff_ms is not None and h.ts < self._abort_cutoff_ms:
            log.info("job %s: ignoring an abort from %s sent before this attempt", self.job_id, h.src.party())
            return
        try:
            body = codec.decode(payload)
        except CodecError as exc:
            body = {"reason": f"(unreadable reason: {exc})"}
        reason = body.get("reason") if isinstance(body, dict) else body
        self._failure = PeerFailed(f"{h.src.party()} failed: {reason}")

    def _reject(self, h: Header | None, reason: str, acks: list[tuple[str, str]]) -> None:
        rej = Rejection(
            job_id=h.job_id if h else "?", name=h.name if h else "?", tag=h.tag if h else "?",
            src=str(h.src.party()) if h else "?", reason=reason, message_id=h.id if h else acks[0][1],
            channel=acks[0][0],
        )  # fmt: skip
        log.warning(
            "job %s: dropped message %s on %s (job %s, name %s, tag %s, src %s): %s",
            self.job_id, rej.message_id, rej.channel, rej.job_id, rej.name, rej.tag, rej.src, reason,
        )  # fmt: skip
        self.rejections.append(rej)
        if self.on_reject is not None:
            try:
                self.on_reject(rej)
            except Exception:  # an audit hook must not break receiving
                log.exception("on_reject callback failed")
        for channel, mid in acks:
            self._ack(channel, mid)

    # -- lifecycle -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise FederationError(f"the federation endpoint of {self.local} in job {self.job_id} is closed")

    def close(self) -> None:
        self._closed = True
