"""Messages on the wire, shared by every transport (standalone, RabbitMQ, Pulsar).

A message is a frame: ``FWM1 | header length | header JSON | Ed25519 signature of the
header | payload``. The header names job, variable (name, tag), sender, receiver,
object sequence, chunk i of n and the payload's sha256, so the signature covers the
payload too. An object bigger than ``max_message_size`` is cut into chunks; a Table
goes partition by partition as Arrow IPC segments. What a transport does with frames
(sending, reassembling, acking, dropping) is in :mod:`federation._mq`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backends.computing.api import Table
from federation import codec
from federation._rows import iter_row_segments
from federation.api import Party
from federation.auth import PartyKeys
from flow.core.errors import CodecError, FederationError

FRAME_MAGIC = b"FWM1"
SIG_SIZE = 64
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
#: bytes of each message kept for the frame and header (name + tag are capped to fit)
HEADER_RESERVE = 2048
MAX_NAME_TAG_BYTES = 512
MAX_PARTITIONS = 1 << 16


class PartyRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    role: str
    party_id: str

    @classmethod
    def of(cls, p: Party) -> "PartyRef":
        return cls(role=p.role, party_id=p.party_id)

    def party(self) -> Party:
        return Party(self.role, self.party_id)


class Header(BaseModel):
    """What every message says about itself; signed by the sender."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    v: Literal[1] = 1
    id: str
    job_id: str
    kind: Literal["obj", "table", "abort"]
    name: str
    tag: str
    src: PartyRef
    dst: PartyRef
    seq: int = Field(ge=0)
    obj: str
    i: int = Field(ge=0)
    n: int = Field(ge=1)
    sha256: str
    ts: int
    #: tables: the partition this chunk belongs to, the partition count, and whether the
    #: Arrow segment continues in the next chunk
    part: int = Field(default=0, ge=0)
    partitions: int = Field(default=0, ge=0, le=MAX_PARTITIONS)
    more: bool = False

    def canonical(self) -> bytes:
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Frame:
    header: Header
    header_bytes: bytes
    signature: bytes
    payload: memoryview


Buffer = Union[bytes, bytearray, memoryview]


def seal(header: Header, payload: Buffer | Sequence[Buffer], keys: PartyKeys) -> bytes:
    """The bytes of one message, signed by ``keys``; ``payload`` may be several buffers
    (a piece of an encoded object), copied once, here."""
    hb = header.canonical()
    body = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else list(payload)
    return b"".join([FRAME_MAGIC, struct.pack(">I", len(hb)), hb, keys.sign(hb), *body])


def open_frame(data: bytes | memoryview) -> Frame:
    """Split a message into header, signature and payload; CodecError if malformed
    (nothing is trusted yet: see :meth:`federation._mq.MessageFederation.verify`)."""
    mv = memoryview(data).cast("B")
    if len(mv) < 8 + SIG_SIZE or bytes(mv[:4]) != FRAME_MAGIC:
        raise CodecError("not a fedweave message frame")
    (hlen,) = struct.unpack(">I", mv[4:8])
    if hlen > 16 * HEADER_RESERVE or 8 + hlen + SIG_SIZE > len(mv):
        raise CodecError("truncated message frame")
    hb = bytes(mv[8 : 8 + hlen])
    try:
        header = Header.model_validate_json(hb)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CodecError(f"invalid message header: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    return Frame(header, hb, bytes(mv[8 + hlen : 8 + hlen + SIG_SIZE]), mv[8 + hlen + SIG_SIZE :])


@dataclass(frozen=True)
class Piece:
    """The payload of one message of an object, before it is addressed and signed:
    ``buffers`` joined (views of the encoded object, not copies of it)."""

    buffers: tuple[Buffer, ...]
    sha256: str
    kind: Literal["obj", "table", "abort"] = "obj"
    part: int = 0
    partitions: int = 0
    more: bool = False

    @classmethod
    def of(cls, buffers: Sequence[Buffer], **extra: Any) -> "Piece":
        digest = hashlib.sha256()
        for b in buffers:
            digest.update(b)
        return cls(tuple(buffers), digest.hexdigest(), **extra)

    @property
    def payload(self) -> bytes:
        return b"".join(self.buffers)


class Pieces(Sequence[Piece]):
    """The pieces of one object, cut and hashed as they are first iterated (so the first
    message leaves before the last is hashed) and kept for the next receiver."""

    def __init__(self, count: int, make: Iterator[Piece]):
        self._count, self._make, self._made = count, make, list[Piece]()

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: Any) -> Any:
        return list(self)[i]

    def __iter__(self) -> Iterator[Piece]:
        yield from self._made
        for piece in self._make:
            self._made.append(piece)
            yield piece


def _cut(parts: Sequence[Buffer], size: int) -> Iterator[tuple[memoryview, ...]]:
    """The bytes of ``parts`` (in order) in runs of ``size``, each a tuple of views."""
    run: list[memoryview] = []
    room = size
    for part in parts:
        mv = memoryview(part).cast("B")
        while len(mv):
            run.append(mv[:room])
            room -= len(run[-1])
            mv = mv[len(run[-1]) :]
            if not room:
                yield tuple(run)
                run, room = [], size
    if run:
        yield tuple(run)


def _fragments(data: bytes, size: int, **extra: Any) -> list[Piece]:
    mv = memoryview(data)
    count = max(1, -(-len(mv) // size))
    chunks = [mv[j * size : (j + 1) * size] for j in range(count)]
    return [Piece.of([c], more=j < count - 1, **extra) for j, c in enumerate(chunks)]


def plan_pieces(obj: Any, max_payload: int) -> Sequence[Piece]:
    """``obj`` cut into payloads of at most ``max_payload`` bytes. A Table becomes Arrow
    segments partition by partition (every partition at least one, so the count survives)."""
    if not isinstance(obj, Table):
        parts = codec.encode_parts(obj)
        count = max(1, -(-sum(memoryview(p).nbytes for p in parts) // max_payload))
        return Pieces(count, (Piece.of(run) for run in _cut(parts, max_payload)))
    if not 0 < obj.partitions <= MAX_PARTITIONS:
        raise FederationError(f"cannot send a Table of {obj.partitions} partitions (max {MAX_PARTITIONS})")
    pieces: list[Piece] = []
    for p, rows in enumerate(obj.iter_partitions()):
        for seg in iter_row_segments(rows, max_payload):
            pieces += _fragments(seg, max_payload, kind="table", part=p, partitions=obj.partitions)
    return pieces


@dataclass(frozen=True)
class Rejection:
    """A dropped message, for the audit log. Fields other than ``reason`` and ``channel``
    are what the message claimed (unverified)."""

    job_id: str
    name: str
    tag: str
    src: str
    reason: str
    message_id: str
    channel: str

