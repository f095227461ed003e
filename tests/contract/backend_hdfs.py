"""The hdfs storage engine under the storage contract.

Against a real cluster when ``FEDWEAVE_TEST_HDFS_URL`` is set (e.g. ``http://namenode:9870``,
user from ``FEDWEAVE_TEST_HDFS_USER``; each test gets its own folder under
``/tmp/fedweave-test``, removed afterwards), else against the WebHDFS protocol double in
tests/webhdfs_double.py (a fresh one per test: it starts in milliseconds).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from pathlib import Path
from typing import Iterator

from tests.conftest import service_unavailable
from tests.contract.conftest import StorageBackend

REAL_URL_ENV, REAL_USER_ENV = "FEDWEAVE_TEST_HDFS_URL", "FEDWEAVE_TEST_HDFS_USER"


@contextlib.contextmanager
def hdfs_service() -> Iterator[tuple[str, str]]:
    """(name node URL, user): the real cluster named in the environment, or a double."""
    try:
        import hdfs  # noqa: F401
    except ImportError:
        service_unavailable("the 'hdfs' package (pip install hdfs)")
    url = os.environ.get(REAL_URL_ENV)
    if url:
        yield url, os.environ.get(REAL_USER_ENV) or "fedweave"
        return
    from tests.webhdfs_double import WebHdfsDouble

    with WebHdfsDouble() as double:
        yield double.url, "fedweave"


@contextlib.contextmanager
def storage(scratch: Path) -> Iterator[StorageBackend]:
    from backends.storage.hdfs import HdfsEngine

    with hdfs_service() as (url, user):
        base = f"/tmp/fedweave-test/{uuid.uuid4().hex}"
        engine = HdfsEngine(url, base=base, user=user)

        def raw_entries(namespace: str) -> list[str]:
            return engine._list(posixpath.join(engine.base, namespace))

        try:
            yield StorageBackend(engine, raw_entries)
        finally:
            with contextlib.suppress(Exception):
                engine.client.delete(base, recursive=True)
