"""Backends under the contract suites, by name.

Every computing backend must pass tests/contract/test_computing_contract.py and every
storage engine tests/contract/test_storage_contract.py unchanged. Adding a backend is
one entry below (Spark: ``"spark": ...`` in COMPUTING; HDFS, Hive: one entry each in
STORAGE); an entry that needs a service or an optional package should call
``pytest.skip`` when it is not available.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import pytest

from backends.computing.api import Session
from backends.computing.local import LocalSession
from backends.storage.api import StorageEngine
from backends.storage.localfs import LocalFSEngine

#: name -> a fresh Session; tests run with 3 partitions by default
COMPUTING: dict[str, Callable[[], Session]] = {
    # inline_below=0: every operation, however small, goes through the process pool
    "local": lambda: LocalSession(partitions=3, workers=2, inline_below=0),
    # the default threshold: these small inputs run inline in the driver
    "local-inline": lambda: LocalSession(partitions=3, workers=2),
}


@dataclass
class StorageBackend:
    """An engine under test plus a look at its raw namespace contents."""

    engine: StorageEngine
    #: every entry (finished tables, temp or aside directories) under a namespace
    raw_entries: Callable[[str], list[str]]


@contextlib.contextmanager
def _localfs(scratch: Path) -> Iterator[StorageBackend]:
    engine = LocalFSEngine(scratch / "store")

    def raw_entries(namespace: str) -> list[str]:
        space = engine.root / namespace
        return sorted(p.name for p in space.iterdir()) if space.is_dir() else []

    yield StorageBackend(engine, raw_entries)


#: name -> context manager giving a StorageBackend over an empty store, given a scratch dir
STORAGE: dict[str, Callable[[Path], ContextManager[StorageBackend]]] = {"localfs": _localfs}


@pytest.fixture(scope="session", params=sorted(COMPUTING))
def session(request) -> Iterator[Session]:
    """One session per computing backend, shared by the whole computing suite."""
    with COMPUTING[request.param]() as s:
        yield s


@pytest.fixture(params=sorted(COMPUTING))
def make_session(request) -> Iterator[Callable[[], Session]]:
    """Fresh sessions of one backend (for stop/lifecycle tests); all stopped afterwards."""
    made: list[Session] = []

    def make() -> Session:
        made.append(COMPUTING[request.param]())
        return made[-1]

    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="session")
def storage_session() -> Iterator[Session]:
    """The computing session the storage suite reads tables into."""
    with LocalSession(partitions=3, workers=2) as s:
        yield s


@pytest.fixture(params=sorted(STORAGE))
def storage(request, tmp_path: Path) -> Iterator[StorageBackend]:
    """An empty store of each storage engine."""
    with STORAGE[request.param](tmp_path) as backend:
        yield backend
