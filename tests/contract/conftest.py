"""Backends under the contract suites, by name.

Every computing backend must pass tests/contract/test_computing_contract.py, every
storage engine tests/contract/test_storage_contract.py and every federation transport
tests/contract/test_federation_contract.py unchanged. Adding a backend is one entry
below (Spark: ``"spark": ...`` in COMPUTING; HDFS, Hive: one entry each in STORAGE;
RabbitMQ, Pulsar: one entry each in FEDERATION); an entry that needs a service or an
optional package calls ``tests.conftest.service_unavailable`` when it is not there (a
skip on a developer's machine, a failure in CI). Each such entry lives in its own
``backend_<name>.py`` beside this file and is imported only when used.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import pytest

from backends.computing.api import Session
from backends.computing.local import LocalSession
from backends.storage.api import StorageEngine
from backends.storage.localfs import LocalFSEngine
from federation._mq import MessageFederation
from federation.api import Party
from federation.standalone import StandaloneFederation


def _lazy(path: str) -> Callable[..., Any]:
    """``"module:attr"`` imported only when the backend is used, so optional packages
    (pyspark, pika, pulsar-client, pyhive, hdfs) are needed only by their own entries."""
    module, _, attr = path.partition(":")
    return lambda *args, **kwargs: getattr(importlib.import_module(module), attr)(*args, **kwargs)


#: name -> a fresh Session; tests run with 3 partitions by default
COMPUTING: dict[str, Callable[[], Session]] = {
    # inline_below=0: every operation, however small, goes through the process pool
    "local": lambda: LocalSession(partitions=3, workers=2, inline_below=0),
    # the default threshold: these small inputs run inline in the driver
    "local-inline": lambda: LocalSession(partitions=3, workers=2),
    "spark": _lazy("tests.contract.backend_spark:session"),
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
STORAGE: dict[str, Callable[[Path], ContextManager[StorageBackend]]] = {
    "localfs": _localfs,
    "hdfs": _lazy("tests.contract.backend_hdfs:storage"),
    "hive": _lazy("tests.contract.backend_hive:storage"),
}


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


@dataclass
class Transport:
    """How to open endpoints of one transport; ``make(config, job_id, party, **options)``
    is module-level so a spawned process can rebuild endpoints from a pickled Transport."""

    name: str
    make: Callable[..., MessageFederation]
    config: dict[str, Any]
    opened: list[MessageFederation] = field(default_factory=list, repr=False)

    def endpoint(self, job_id: str, party: Party, **options: Any) -> MessageFederation:
        fed = self.make(self.config, job_id, party, **options)
        self.opened.append(fed)
        return fed

    def __getstate__(self):
        return {**self.__dict__, "opened": []}


#: the parties the federation suite exchanges between (guest 9999, hosts 10000 and 10001)
FEDERATION_PARTY_IDS = ["9999", "10000", "10001"]


def standalone_endpoint(config: dict, job_id: str, party: Party, **options: Any) -> MessageFederation:
    return StandaloneFederation(job_id, party, config["home"], parties=FEDERATION_PARTY_IDS, **options)


@contextlib.contextmanager
def _standalone(scratch: Path) -> Iterator[Transport]:
    yield Transport("standalone", standalone_endpoint, {"home": str(scratch)})


#: name -> context manager giving a Transport whose endpoints share one empty space, given a scratch dir
FEDERATION: dict[str, Callable[[Path], ContextManager[Transport]]] = {
    "standalone": _standalone,
    "rabbitmq": _lazy("tests.contract.backend_rabbitmq:transport"),
    "pulsar": _lazy("tests.contract.backend_pulsar:transport"),
}


@pytest.fixture(params=sorted(FEDERATION))
def transport(request, tmp_path: Path) -> Iterator[Transport]:
    """Each transport; every endpoint opened through it is cleaned up and closed afterwards."""
    with FEDERATION[request.param](tmp_path) as t:
        yield t
        for fed in t.opened:
            fed.cleanup()
            fed.close()
