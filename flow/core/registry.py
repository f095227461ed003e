"""Name → implementation registries: a dict of built-ins plus an entry-point group.

Every pluggable family (components, computing, storage, federation) is looked up here,
never through an if/elif chain, so a third-party package can add one by declaring an
entry point in the ``fedweave.<family>`` group.
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from flow.core.errors import ConfigError

T = TypeVar("T")


def import_string(path: str):
    """Import ``"package.module:attr"``."""
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


def did_you_mean(word: str, choices) -> str:
    """A ``" (did you mean 'x'?)"`` suffix when a close name exists, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Lazily imported built-ins (``name -> "module:attr"``) plus entry points of ``group``."""

    def __init__(self, family: str, builtins: dict[str, str], *, case_insensitive: bool = False):
        self.family = family
        self.group = f"fedweave.{family}"
        self._paths = dict(builtins)
        self._loaded: dict[str, T] = {}
        self._ci = case_insensitive
        self._scanned = False

    def _key(self, name: str) -> str:
        return name.lower() if self._ci else name

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in entry_points(group=self.group):
            self._paths.setdefault(ep.name, ep.value)
        if self._ci:
            self._paths = {self._key(k): v for k, v in self._paths.items()}

    def register(self, name: str, obj: T) -> None:
        self._loaded[self._key(name)] = obj

    def names(self) -> list[str]:
        self._scan()
        return sorted(set(self._paths) | set(self._loaded))

    def __contains__(self, name: str) -> bool:
        self._scan()
        key = self._key(name)
        return key in self._paths or key in self._loaded

    def get(self, name: str) -> T:
        self._scan()
        key = self._key(name)
        if key not in self._loaded:
            if key not in self._paths:
                raise ConfigError(
                    f"unknown {self.family} '{name}'{did_you_mean(name, self.names())}; "
                    f"known: {', '.join(self.names())}"
                )
            self._loaded[key] = import_string(self._paths[key])
        return self._loaded[key]
