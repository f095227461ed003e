"""The federation family: how one party's component talks to the others.

``remote(obj, name, tag, parties)`` sends, ``get(name, tag, parties)`` receives, where
``name`` is a transfer variable declared by the component and ``tag`` makes it unique
per use (``"iter.3"``). A control channel carries job-level messages (abort with a
reason) that interrupt a party waiting in ``get``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Sequence

from flow.core.party import Party

__all__ = ["Federation", "Party"]


class Federation(ABC):
    """One party's endpoint in one job. Objects: JSON-able values, numpy arrays,
    Paillier ciphertexts, and Tables (these stream partition by partition)."""

    def __init__(self, job_id: str, local: Party):
        self.job_id = job_id
        self.local = local

    @classmethod
    @abstractmethod
    def from_conf(cls, job_id: str, local: Party, conf: Any, *, parties: Sequence[str], session: Any = None,
                  timeout: float = 600.0, on_reject: Any = None) -> "Federation":
        """An endpoint built from this party's service conf (``flow.core.settings.ServiceConf``):
        its home, ``federation.max_message_size`` and the transport's own section
        (``federation.<engine>``). ``parties`` are the party ids of the job."""

    @abstractmethod
    def remote(self, obj: Any, name: str, tag: str, parties: Sequence[Party]) -> None:
        """Send ``obj`` to every party in ``parties``."""

    @abstractmethod
    def get(self, name: str, tag: str, parties: Sequence[Party], timeout: float | None = None) -> list[Any]:
        """Receive ``name``/``tag`` from each party, in the order given. Raises
        FederationTimeout naming the peer and variable, or PeerFailed when a peer aborts."""

    @abstractmethod
    def abort(self, reason: str, parties: Sequence[Party]) -> None:
        """Tell ``parties`` this party failed, with the reason they should show."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; queued data of the job may stay for a rerun."""

    @abstractmethod
    def cleanup(self) -> None:
        """Remove everything this job left in the transport (queues, topics, files)."""

    @contextlib.contextmanager
    def spare_work(self, step: Callable[[], bool] | None) -> Iterator[None]:
        """Within the block, a ``get`` with no message yet calls ``step`` instead of sleeping,
        and reads its channels again after each call: ``step`` does about a millisecond of
        work (drawing the randomness of the next encryptions) and returns whether more is
        wanted. A waiting party's idle core does what it would otherwise do on the critical
        path. ``None``: nothing (a cipher with no such work). Transports that cannot
        interleave ignore it."""
        if step is None:
            yield
            return
        steps: list[Callable[[], bool]] = self.__dict__.setdefault("_spare_steps", [])
        steps.append(step)
        try:
            yield
        finally:
            steps.remove(step)

    def _spare_step(self) -> bool:
        """One unit of the spare work registered by :meth:`spare_work`; False when none is
        wanted (the caller then sleeps as usual)."""
        for step in self.__dict__.get("_spare_steps", ()):
            if step():
                return True
        return False

    def dismiss_abort(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Forget a peer's abort, so later gets wait for their objects again: for an endpoint
        where an abort means nothing (the servers' control plane). Nothing by default."""

    def release(self, peers: Sequence[Party]) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Remove what only this party reads: its channels from each of ``peers`` and its
        control channel. Safe once this party's share has ended while the others still
        run, since nobody else reads them (unlike :meth:`cleanup`). Nothing by default."""
