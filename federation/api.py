"""The federation family: how one party's component talks to the others.

``remote(obj, name, tag, parties)`` sends, ``get(name, tag, parties)`` receives, where
``name`` is a transfer variable declared by the component and ``tag`` makes it unique
per use (``"iter.3"``). A control channel carries job-level messages (abort with a
reason) that interrupt a party waiting in ``get``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

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

    def dismiss_abort(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Forget a peer's abort, so later gets wait for their objects again: for an endpoint
        where an abort means nothing (the servers' control plane). Nothing by default."""

    def release(self, peers: Sequence[Party]) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Remove what only this party reads: its channels from each of ``peers`` and its
        control channel. Safe once this party's share has ended while the others still
        run, since nobody else reads them (unlike :meth:`cleanup`). Nothing by default."""
