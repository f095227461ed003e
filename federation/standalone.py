"""The standalone transport: all parties on one machine, one process each, exchanging
messages through a shared directory. No server; a channel is a folder, a message a file.

Layout: ``<home>/federation/<job_id>/<src>.<dst>/<message id>.msg`` and
``<home>/federation/<job_id>/control.<dst>/...`` (``<src>`` is ``role-party_id``). A writer writes a
hidden temp file and renames it into place, so a reader never sees half a message; a
reader reads its folders and deletes a file once the object it belongs to was handed to
the component. Between reads a waiting reader sleeps on a FIFO (``<channel>/.wake``) that
it makes in each folder it waits on, and a writer writes a byte into it after each
message: a message wakes its reader at once, and a reader that waits costs no CPU (a
5 ms poll of every folder cost a waiting party ~6 % of a core). The FIFO is only a hint:
the reader still reads the folders at least every ``poll_max``, and where no FIFO can be
made it falls back to polling every 5 ms. ``fsync`` is off by default: the
rename already makes a message visible atomically to the other processes, and a job
does not outlive the machine it runs on in standalone mode.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import stat
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator

from federation._mq import MessageFederation
from federation.api import Party
from federation.auth import KeyStore, PartyKeys, RouteTable, route_table_for, standalone_route_table
from federation.envelope import Frame
from flow.core.errors import AuthError, FederationError

_MID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,200}")
_SUFFIX = ".msg"
_WAKE = ".wake"
#: the longest a reader sleeps between reads: with FIFOs, and without
_WAKE_POLL_MAX, _POLL_MAX = 0.25, 0.005


class StandaloneFederation(MessageFederation):
    """A directory-backed endpoint. ``parties`` (ids or Party) are the job's parties: their
    keys are created under ``<home>/keys`` if missing and form the route table. Without
    it the route table is every key already in the store, re-read when an unknown
    sender shows up (a peer process may create its key after this one started).
    Pass ``keys`` only together with a ``route_table`` that lists their public key."""

    poll_max = _WAKE_POLL_MAX  # _POLL_MAX once no FIFO could be made

    def __init__(
        self,
        job_id: str,
        local: Party,
        home: str | os.PathLike[str],
        *,
        parties: Iterable[str | Party] | None = None,
        route_table: RouteTable | None = None,
        keys: PartyKeys | None = None,
        session: Any = None,
        fsync: bool = False,
        **options: Any,
    ):
        self.home = Path(home)
        self._store = KeyStore(self.home)
        self._refresh = route_table is None and parties is None
        keys = keys or self._store.load_or_create(local.party_id)
        if route_table is None:
            ids = {p.party_id if isinstance(p, Party) else str(p) for p in parties or self._store.party_ids()}
            route_table = standalone_route_table(self.home, sorted(ids | {local.party_id}))
        super().__init__(job_id, local, keys, route_table, session, **options)
        self.root = self.home / "federation" / job_id
        self.fsync = fsync
        self._delivered: dict[str, set[str]] = defaultdict(set)
        self._folders: dict[str, Path] = {}
        self._wakes: dict[str, int] = {}  # channel -> read end of its FIFO (opened read-write: no EOF)
        self._wake_ok = True
        self._waits = threading.local()

    @classmethod
    def from_conf(cls, job_id: str, local: Party, conf: Any, *, parties: Iterable[str], session: Any = None,
                  timeout: float = 600.0, on_reject: Any = None) -> "StandaloneFederation":
        table = route_table_for(conf.home_path, conf.route_table_path, parties)
        return cls(job_id, local, conf.home_path, route_table=table, session=session,
                   max_message_size=conf.federation.max_message_size, default_timeout=timeout,
                   on_reject=on_reject)

    def verify(self, frame: Frame, src: Party | None) -> None:
        try:
            super().verify(frame, src)
        except AuthError:
            pid = frame.header.src.party_id
            if not (self._refresh and pid not in self.route_table.parties and pid in self._store.party_ids()):
                raise
            self.route_table = standalone_route_table(self.home, self._store.party_ids())
            super().verify(frame, src)

    def _folder(self, channel: str) -> Path:
        """``<job>.<a>.<b>`` lives in ``<home>/federation/<job>/<a>.<b>`` (remembered: a waiting
        party asks for its folders hundreds of times a second)."""
        folder = self._folders.get(channel)
        if folder is None:
            name = channel.removeprefix(f"{self.job_id}.")
            if not _MID_RE.fullmatch(name):
                raise FederationError(f"invalid standalone channel name '{channel}'")
            folder = self._folders[channel] = self.root / name
        return folder

    def _publish(self, channel: str, message_id: str, data: bytes) -> None:
        if not _MID_RE.fullmatch(message_id):
            raise FederationError(f"invalid message id '{message_id}' for the standalone transport")
        folder = self._folder(channel)
        tmp = folder / f".{message_id}.{uuid.uuid4().hex}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # again after a cleanup
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, folder / f"{message_id}{_SUFFIX}")
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise FederationError(f"cannot write message to {folder}: {exc.strerror or exc}") from None
        _wake(folder / _WAKE)

    # -- waiting: a FIFO per folder read, written after each message -----------------

    def _waiting(self, channels: list[str]) -> None:
        for channel in channels:
            if self._wake_ok and channel not in self._wakes:
                fd = self._open_wake(self._folder(channel))
                if fd is None:
                    self._wake_ok, self.poll_max = False, _POLL_MAX
                else:
                    self._wakes[channel] = fd
        # this thread's get sleeps on its own channels only: draining another get's FIFO would delay it
        self._waits.fds = [self._wakes[c] for c in channels if c in self._wakes] if self._wake_ok else []

    @staticmethod
    def _open_wake(folder: Path) -> int | None:
        path = folder / _WAKE
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):
                os.mkfifo(path, 0o600)
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW)
        except (OSError, AttributeError):  # no FIFOs here (AttributeError: not on POSIX)
            return None
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def _idle(self, seconds: float) -> None:
        fds = getattr(self._waits, "fds", [])
        if not fds:
            super()._idle(seconds)
            return
        ready, _, _ = select.select(fds, [], [], seconds)
        for fd in ready:  # drain: one wake-up stands for every message written so far
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(fd, 4096):
                    pass

    def _close_wakes(self, channels: Iterable[str]) -> None:
        for channel in channels:
            fd = self._wakes.pop(channel, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _poll(self, channel: str) -> Iterator[tuple[str, bytes]]:
        folder = self._folder(channel)
        try:
            with os.scandir(folder) as entries:
                found = [(e.name, e.path) for e in entries if e.name.endswith(_SUFFIX) and not e.name.startswith(".")]
        except FileNotFoundError:
            return
        delivered = self._delivered[channel]
        for name, path in sorted(found):
            if name in delivered:
                continue
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:  # consumed or cleaned up meanwhile
                continue
            delivered.add(name)
            yield name, data

    def _ack(self, channel: str, message_id: str) -> None:
        (self._folder(channel) / message_id).unlink(missing_ok=True)
        self._delivered[channel].discard(message_id)

    def cleanup(self) -> None:
        """Remove every message of this job (all parties' channels)."""
        self._close_wakes(list(self._wakes))
        shutil.rmtree(self.root, ignore_errors=True)
        self._delivered.clear()

    def close(self) -> None:
        self._close_wakes(list(self._wakes))
        super().close()

    def _remove_channels(self, channels: list[str]) -> None:
        self._close_wakes(channels)
        for channel in channels:
            shutil.rmtree(self._folder(channel), ignore_errors=True)
            self._delivered.pop(channel, None)
        with contextlib.suppress(OSError):  # the job's folder, once every party released its own
            self.root.rmdir()


def _wake(path: Path) -> None:
    """One byte into a reader's FIFO, if it has one; never blocks (a full FIFO is awake already),
    never follows a link and never writes into anything but a FIFO."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:  # no FIFO (the reader polls), no reader has it open (ENXIO), or a link (ELOOP)
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, b"\0")
    except OSError:  # full (EAGAIN): the reader is awake already; the message is written either way
        pass
    finally:
        os.close(fd)
