"""The audit hook: how the lower floors report what crossed a party line or was read,
without importing the audit log that sits above them.

Transports call :func:`current` ``.sent``/``.received`` once per object; the Reader calls
``.event``. Until the runtime installs a hook (``flow.governance.trail.install``) nothing
is recorded, so a transport or component used on its own writes no files.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class AuditHook(Protocol):
    """What the runtime records for the lower floors; implementations never raise into a transfer."""

    def sent(self, fed: Any, name: str, tag: str, parties: Sequence[Any], pieces: Sequence[Any]) -> None:
        """An object went out to ``parties`` (``pieces``: its chunks with their sha256)."""

    def received(self, fed: Any, header: Any, chunks: dict[int, tuple[Any, Any]]) -> None:
        """Every chunk of an object arrived, was verified and decoded."""

    def event(self, kind: str, *, party: str, job: str | None = None, **details: Any) -> None:
        """A party's runtime did something worth recording (a component read a table)."""


class NoAudit:
    """The hook before one is installed: records nothing."""

    def sent(self, fed: Any, name: str, tag: str, parties: Sequence[Any], pieces: Sequence[Any]) -> None:
        return None

    def received(self, fed: Any, header: Any, chunks: dict[int, tuple[Any, Any]]) -> None:
        return None

    def event(self, kind: str, *, party: str, job: str | None = None, **details: Any) -> None:
        return None


_hook: AuditHook = NoAudit()


def install(hook: AuditHook) -> AuditHook:
    """Make ``hook`` the process's audit hook; returns the one it replaces."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def current() -> AuditHook:
    return _hook
