"""The metrics hook: how the lower floors count what they do (bytes on the wire, receive
waits, Paillier operations) without importing the metrics library that sits above them.

Transports call :func:`current` ``.sent``/``.received``/``.waited``; the Paillier code calls
``.paillier``; the party runtime calls ``.task`` and ``.store``. Until the runtime installs
a hook (``flow.runtime.metrics.enable``) nothing is counted. A process started by one that
installed a hook (a local backend worker, started with ``spawn``) finds it through the
environment: :data:`ENV` names a ``module:function`` that returns the hook, so the worker
counts into the same place without this module importing anything above it.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Protocol

#: ``module:function`` returning the process's hook; set by the runtime for its children
ENV = "FEDWEAVE_METRICS_HOOK"

log = logging.getLogger(__name__)


class MetricsHook(Protocol):
    """What the lower floors count; implementations never raise into the caller."""

    def sent(self, transport: str, peer: str, nbytes: int, messages: int) -> None:
        """``messages`` messages of ``nbytes`` bytes in all went to ``peer`` (``role-party_id``)."""

    def received(self, transport: str, peer: str, nbytes: int, messages: int) -> None:
        """Messages of ``nbytes`` bytes in all arrived from ``peer``."""

    def waited(self, transport: str, peer: str, seconds: float) -> None:
        """A get waited ``seconds`` for an object from ``peer``."""

    def paillier(self, operation: str, count: int = 1) -> None:
        """``count`` Paillier operations (encrypt, decrypt, multiply, dot) ran."""

    def task(self, module: str, role: str, status: str, seconds: float) -> None:
        """A component task of ``module`` ended with ``status`` after ``seconds``."""

    def store(self, operation: str, seconds: float) -> None:
        """A statement on the store took ``seconds``."""


class NoMetrics:
    """The hook before one is installed: counts nothing."""

    def sent(self, transport: str, peer: str, nbytes: int, messages: int) -> None:
        return None

    def received(self, transport: str, peer: str, nbytes: int, messages: int) -> None:
        return None

    def waited(self, transport: str, peer: str, seconds: float) -> None:
        return None

    def paillier(self, operation: str, count: int = 1) -> None:
        return None

    def task(self, module: str, role: str, status: str, seconds: float) -> None:
        return None

    def store(self, operation: str, seconds: float) -> None:
        return None


_hook: MetricsHook | None = None


def install(hook: MetricsHook) -> MetricsHook | None:
    """Make ``hook`` the process's metrics hook; returns the one it replaces (None: unresolved)."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def _from_env() -> MetricsHook:
    spec = os.environ.get(ENV, "")
    if not spec:
        return NoMetrics()
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)()
    except Exception:  # noqa: BLE001 - counting must never break the work it counts
        log.warning("metrics hook %s could not be loaded; counting nothing", spec, exc_info=True)
        return NoMetrics()


def current() -> MetricsHook:
    """The installed hook; the first call in a process without one looks at :data:`ENV`."""
    global _hook
    hook = _hook
    if hook is None:
        hook = _hook = _from_env()
    return hook
