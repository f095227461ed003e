"""The Spark computing backend under the contract suite: local[2], 3 partitions.

Needs pyspark and a Java runtime; without them the entry is a skip locally and a
failure in CI (tests.conftest.service_unavailable). Every session made here shares the
process's one SparkContext (Spark allows one per process); it ends with the last stop().
"""

from __future__ import annotations

import importlib.util
import shutil

from tests.conftest import service_unavailable

#: small and quiet: two local cores, a 1 GB driver, no UI, loopback only (the backend's defaults)
MASTER = "local[2]"


def available() -> bool:
    return importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None


def session():
    """A fresh SparkComputing session (the Spark context itself starts on first use)."""
    if not available():
        service_unavailable("Spark (pyspark and a Java runtime)")
    from backends.computing.spark import SparkComputing

    return SparkComputing(partitions=3, master=MASTER, app_name="fedweave-tests")
