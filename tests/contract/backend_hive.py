"""The hive storage engine under the storage contract.

Against the Spark Thrift Server of tests/hive_server.py (started once per test process),
or a HiveServer2 at ``FEDWEAVE_TEST_HIVE_URL`` (``host:port``) when that is set. Every
test gets its own Hive database, dropped afterwards. ``FEDWEAVE_TEST_HIVE_WRITE=load``
runs the suite through the LOAD DATA path (a local staging folder) instead of INSERTs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from tests.conftest import service_unavailable
from tests.contract.conftest import StorageBackend

REAL_URL_ENV, WRITE_ENV = "FEDWEAVE_TEST_HIVE_URL", "FEDWEAVE_TEST_HIVE_WRITE"


def hive_address() -> tuple[str, int]:
    """(host, port) of the HiveServer2 the tests use; unavailable -> skip, or fail in CI."""
    try:
        import pyhive.hive  # noqa: F401
        import thrift_sasl  # noqa: F401
    except ImportError as exc:
        service_unavailable(f"pyhive with thrift_sasl ({exc})")
    real = os.environ.get(REAL_URL_ENV)
    if real:
        host, _, port = real.rpartition(":")
        return host, int(port)
    from tests.hive_server import HiveServerUnavailable, shared_server

    try:
        server = shared_server()
    except HiveServerUnavailable as exc:
        service_unavailable(f"the Spark Thrift Server (HiveServer2): {exc}")
    return server.host, server.port


@contextlib.contextmanager
def hive_engine(scratch: Path, **options) -> Iterator[Any]:
    """A HiveEngine over a fresh database, dropped (with its tables) afterwards."""
    from backends.storage.hive import HiveEngine

    host, port = hive_address()
    engine = HiveEngine(host, port, database=f"fwtest_{uuid.uuid4().hex[:12]}", **options)
    try:
        yield engine
    finally:
        with contextlib.suppress(Exception):
            engine._run(f"DROP DATABASE IF EXISTS `{engine.database}` CASCADE", "drop the test database")
        engine.close()


def raw_entries(engine) -> Callable[[str], list[str]]:
    """Every Hive object of a namespace: finished tables by their fedweave name, anything
    else (temp, staging, aside) by its Hive name."""
    from backends.storage.hive import hive_name

    def entries(namespace: str) -> list[str]:
        found = []
        for table in engine._tables(engine.database):
            props = engine._properties(table)
            if props.get("fedweave.namespace") != namespace:
                continue
            name = props.get("fedweave.name", "")
            found.append(name if table == hive_name(namespace, name) else table)
        return sorted(found)

    return entries


@contextlib.contextmanager
def storage(scratch: Path) -> Iterator[StorageBackend]:
    options = {}
    if os.environ.get(WRITE_ENV, "insert") == "load":
        options["staging_dir"] = tempfile.mkdtemp(prefix="fedweave-hive-staging-", dir=scratch)
    with hive_engine(scratch, **options) as engine:
        yield StorageBackend(engine, raw_entries(engine))
