"""The Spark computing backend: Tables are RDDs partitioned exactly like the local backend's.

Why this shape:

* Placement. Partition ``i`` of a table holds the keys with ``partition_of(key, n) == i``,
  as on the local backend, so ``iter_partitions`` groups alike and two tables with the
  same partition count join partition by partition: ``glom().zip()`` pairs partition
  ``i`` of each side in one task, with no shuffle. Re-keying ops shuffle whole buckets
  with ``partitionBy`` keyed by the target partition number.
* One semantics. Each task runs the local backend's worker code
  (:mod:`backends.computing._local_ops`) on its partition, so every operation (key
  collisions, union precedence, sampling) gives what the local backend gives.
* Eager. Like the local backend, an operation runs when called: its result is persisted
  and one job fills the cache and counts each partition, so a failing function raises
  here, as :class:`ComputingError` with the worker's exception type and message (the
  worker encodes them into its exception; Spark's wrapping is peeled off). A table's
  cache is dropped when the Table is garbage-collected or its session stops.
* One JVM. Spark allows one SparkContext per process: sessions with the same settings
  share it, and the last ``stop()`` ends it and its JVM. It starts on first use,
  bounded by ``startup_timeout`` (an unreachable master is a ComputingError, not a hang);
  see :mod:`backends.computing._spark_context`. The executor side of every operation is
  in :mod:`backends.computing._spark_tasks`.

Executors need fedweave (and whatever the functions import) importable. With a ``local``
master the workers get this interpreter and its ``sys.path``; with any other master
fedweave's own packages travel as a zip added with ``addPyFile``
(:func:`backends.computing._spark_context.code_zip`), and the workers' Python
(``spark.pyspark.python``) needs only fedweave's dependencies.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import weakref
from typing import Any, Callable, Iterable, Iterator, Mapping

from backends.computing._local_ops import _execute
from backends.computing._spark_context import (
    LOG_LEVELS,
    STARTUP_TIMEOUT_S,
    _Spark,
    acquire,
    local_cores,
    release,
    settings,
)
from backends.computing._spark_tasks import (
    _flat_buckets,
    _gather,
    _head,
    _narrow,
    _one,
    _paired,
    _scatter,
    _stats,
    _target,
    _whole,
    translate,
)
from backends.computing.api import Session, Table, partition_of
from backends.computing.local import LocalSession, _positive
from flow.core.errors import ComputingError

#: tables up to this many rows keep their pairs in the driver once fetched: repeated
#: collect/iter_partitions/first of small results (the common case) cost no Spark job
DRIVER_CACHE_ROWS = 10_000


# ---------------------------------------------------------------- Session and Table


class SparkComputing(Session):
    """Tables on a SparkSession started on first use. ``partitions`` defaults to the cores of
    a ``local[N]`` master, else Spark's default parallelism; ``conf`` holds spark.* settings
    (a service's), ``spark_run`` a job's (FATE names: num-executors, executor-cores,
    executor-memory, driver-memory, master, conf, or spark.* keys); ``workers`` is ignored."""

    engine = "spark"

    def __init__(self, partitions: int | None = None, master: str | None = None, app_name: str = "fedweave",
                 conf: Mapping[str, Any] | None = None, *, spark_run: Mapping[str, Any] | None = None,
                 workers: int | None = None, startup_timeout: float = STARTUP_TIMEOUT_S, log_level: str = "ERROR"):
        if master is not None and not isinstance(master, str):
            raise ComputingError(f"Spark master must be a string, got {master!r}")
        if log_level not in LOG_LEVELS:
            raise ComputingError(f"Spark log_level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        if isinstance(startup_timeout, bool) or not isinstance(startup_timeout, (int, float)) or startup_timeout <= 0:
            raise ComputingError(f"startup_timeout must be a positive number of seconds, got {startup_timeout!r}")
        self._partitions = None if partitions is None else _positive("partitions", partitions)
        self._conf = settings(master, app_name, conf, spark_run)
        self._timeout, self._log_level = float(startup_timeout), log_level
        self._spark: _Spark | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self._tables: weakref.WeakSet[SparkTable] = weakref.WeakSet()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("running" if self._spark else "idle")
        return f"SparkComputing(master={self.master!r}, partitions={self._partitions}, {state})"

    def __reduce__(self):
        raise TypeError("a SparkComputing session cannot be sent to workers")

    @property
    def master(self) -> str:
        return self._conf["spark.master"]

    @property
    def conf(self) -> dict[str, str]:
        """The Spark settings this session starts (or shares) a context with."""
        return dict(self._conf)

    @property
    def spark(self) -> Any:
        """The SparkSession (started if need be), for DataFrame work beside Tables."""
        return self._context().spark

    @property
    def default_partitions(self) -> int:
        if self._partitions is None:
            self._partitions = local_cores(self.master) or max(1, self._context().sc.defaultParallelism)
        return self._partitions

    def _check_open(self) -> None:
        if self._stopped:
            raise ComputingError("the spark computing session is stopped")

    def _context(self) -> _Spark:
        with self._lock:
            self._check_open()
            if self._spark is None:
                self._spark = acquire(self._conf, self._log_level, self._timeout)
            return self._spark

    def _job(self, op: str, action: Callable[[], Any]) -> Any:
        """Run a Spark action; whatever goes wrong comes back as one ComputingError."""
        self._context()
        try:
            return action()
        except ComputingError:
            raise
        except Exception as exc:  # noqa: BLE001 - Py4J / PySpark wrappers of the real failure
            if self._stopped:
                raise ComputingError(f"{op}: the spark computing session is stopped") from exc
            err = translate(op, exc)
            if hasattr(err, "worker_traceback"):
                raise err from None
            raise err from exc

    def parallelize(self, pairs: Iterable[tuple[Any, Any]], partitions: int | None = None) -> "SparkTable":
        n = self.default_partitions if partitions is None else _positive("partitions", partitions)
        groups: list[dict] = [{} for _ in range(n)]
        try:
            for k, v in pairs:
                groups[partition_of(k, n)][k] = v
        except (TypeError, ValueError) as exc:
            raise ComputingError(f"parallelize expects (key, value) pairs with hashable keys: {exc}") from exc
        return self._grouped([list(g.items()) for g in groups])

    def from_partitions(self, parts: Iterable[list[tuple[Any, Any]]], partitions: int) -> "SparkTable":
        n = _positive("partitions", partitions)
        groups = [p if type(p) is list else list(p) for p in parts]
        if len(groups) != n or not all(partition_of(k, n) == i for i, g in enumerate(groups) for k, _ in g):
            return self.parallelize((kv for g in groups for kv in g), n)
        return self._grouped(groups)

    def _batches_table(self, groups: list[list[tuple[int, Any]]]) -> "SparkTable":
        return self._grouped(groups)

    def _grouped(self, groups: list[list]) -> "SparkTable":
        """One element (a whole partition) per slice, so slice i is partition i: no shuffle."""
        sc = self._context().sc
        rdd = self._job("parallelize", lambda: sc.parallelize(groups, len(groups)).flatMap(_whole, True))
        table = SparkTable(self, rdd, [len(g) for g in groups], held=None)
        if table.count() <= DRIVER_CACHE_ROWS:
            table._fetched = groups  # already in the driver
        return table

    def stop(self) -> None:
        """Drop this session's cached tables; the last session using the context ends it."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            spark, self._spark = self._spark, None
        for table in list(self._tables):
            table._drop()
        if spark is not None:
            release(spark)


def _unpersist(rdd: Any) -> None:
    with contextlib.suppress(Exception):  # the context may already be gone
        if rdd.ctx._jsc is not None:
            rdd.unpersist(blocking=False)


class SparkTable(Table):
    """An RDD of pairs whose partition i holds the keys with ``partition_of(key, n) == i``,
    plus each partition's row count."""

    def __init__(self, session: SparkComputing, rdd: Any, sizes: list[int], held: Any):
        self._session, self._rdd, self._sizes = session, rdd, sizes
        self._fetched: list[list] | None = None
        self._drop = weakref.finalize(self, _unpersist, held) if held is not None else (lambda: None)
        session._tables.add(self)

    def __repr__(self) -> str:
        return f"SparkTable(partitions={self.partitions}, count={self.count()})"

    def __reduce__(self):
        raise TypeError("a Table cannot be used inside a function run on workers; collect what you need first")

    @property
    def partitions(self) -> int:
        return len(self._sizes)

    @property
    def session(self) -> SparkComputing:
        return self._session

    @property
    def rdd(self) -> Any:
        """The underlying RDD of (key, value) pairs (persisted; do not unpersist it)."""
        return self._rdd

    # -- building blocks

    def _new(self, op: str, rdd: Any, placement: bool = False) -> tuple["SparkTable", bool]:
        """Persist ``rdd`` and run the job that fills the cache and counts each partition."""
        from pyspark import StorageLevel

        rdd.persist(StorageLevel.MEMORY_AND_DISK)
        stats_fn = functools.partial(_stats, rdd.getNumPartitions() if placement else 0)
        try:
            stats = self._session._job(op, lambda: rdd.mapPartitionsWithIndex(stats_fn).collect())
        except BaseException:
            _unpersist(rdd)
            raise
        return SparkTable(self._session, rdd, [rows for rows, _ in stats], held=rdd), any(m for _, m in stats)

    def _blob(self, op: str, f: Callable | None) -> bytes | None:
        self._session._check_open()
        return LocalSession._ship(op, f)

    def _elementwise(self, op: str, f: Callable | None, arg: Any = None) -> "SparkTable":
        task = functools.partial(_narrow, op, self._blob(op, f), arg)
        return self._new(op, self._rdd.mapPartitionsWithIndex(task, True))[0]

    def _shuffled(self, op: str, f: Callable | None, n: int) -> Any:
        """An RDD of n partitions from buckets each source partition scatters."""
        task = functools.partial(_scatter, op, self._blob(op, f), n)
        return self._rdd.mapPartitionsWithIndex(task).partitionBy(n, _target).mapPartitions(_gather, True)

    def _aligned(self, other: Table) -> tuple[Any, Any]:
        """Both sides with one partition count: the smaller side is re-partitioned."""
        if not isinstance(other, SparkTable):
            raise ComputingError(f"cannot combine a spark table with a {type(other).__name__}")
        other._session._check_open()
        if other.partitions == self.partitions:
            return self._rdd, other._rdd
        if self.count() <= other.count():
            return self._shuffled("split", None, other.partitions), other._rdd
        return self._rdd, other._shuffled("split", None, self.partitions)

    def _two(self, op: str, other: Table, f: Callable | None) -> "SparkTable":
        task = functools.partial(_paired, op, self._blob(op, f), None)
        left, right = self._aligned(other)
        return self._new(op, left.glom().zip(right.glom()).mapPartitionsWithIndex(task, True))[0]

    def _each(self, op: str, f: Callable | None) -> list:
        task = functools.partial(_one, op, self._blob(op, f), None)
        return self._session._job(op, lambda: self._rdd.mapPartitionsWithIndex(task).collect())

    # -- the Table operations

    def map_values(self, f: Callable) -> "SparkTable":
        return self._elementwise("map_values", f)

    def map_partitions(self, f: Callable) -> "SparkTable":
        n = self.partitions
        task = functools.partial(_flat_buckets, "map_partitions", self._blob("map_partitions", f), n)
        out, misplaced = self._new("map_partitions", self._rdd.mapPartitionsWithIndex(task, True), placement=True)
        if not misplaced:
            return out
        try:  # keys changed after all: put them where they belong
            return out._new("map_partitions", out._shuffled("split", None, n))[0]
        finally:
            out._drop()

    def apply_partitions(self, f: Callable) -> list:
        return self._each("apply_partitions", f)

    def map(self, f: Callable) -> "SparkTable":
        return self._new("map", self._shuffled("map", f, self.partitions))[0]

    def join(self, other: Table, f: Callable) -> "SparkTable":
        return self._two("join", other, f)

    def union(self, other: Table, f: Callable | None = None) -> "SparkTable":
        return self._two("union", other, f)

    def filter(self, f: Callable) -> "SparkTable":
        return self._elementwise("filter", f)

    def reduce(self, f: Callable) -> Any:
        partials = [v for ok, v in self._each("reduce", f) if ok]
        if not partials:
            raise ComputingError("reduce of an empty table")
        if len(partials) == 1:
            return partials[0]
        # the final fold runs in the driver, with the same error reporting
        return LocalSession._unwrap("reduce", -1, _execute("reduce", f, -1, None, [(None, v) for v in partials]))[1]

    def _small(self) -> list[list] | None:
        """All partitions, fetched once in one job, for tables small enough to keep in the driver."""
        if self._fetched is None and self.count() <= DRIVER_CACHE_ROWS:
            self._fetched = self._session._job("collect", self._rdd.glom().collect)
        return self._fetched

    def collect(self) -> Iterator[tuple[Any, Any]]:
        small = self._small()
        rows = self._session._job("collect", self._rdd.collect) if small is None else small
        return (kv for part in rows for kv in part) if small is not None else iter(rows)

    def count(self) -> int:
        return sum(self._sizes)

    def sample(self, fraction: float, seed: int | None = None) -> "SparkTable":
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise ComputingError(f"sample fraction must be a number in [0, 1], got {fraction!r}")
        seed = random.getrandbits(63) if seed is None else seed
        return self._elementwise("sample", None, (float(fraction), seed))

    def first(self) -> tuple[Any, Any]:
        index = next((i for i, rows in enumerate(self._sizes) if rows), None)
        if index is None:
            raise ComputingError("first() of an empty table")
        small = self._small()
        if small is not None:
            return small[index][0]
        sc = self._session._context().sc
        return self._session._job("first", lambda: sc.runJob(self._rdd, _head, [index]))[0]

    def iter_partitions(self) -> Iterator[list[tuple[Any, Any]]]:
        """One job per non-empty partition, so only one partition is in the driver at a time."""
        small = self._small()
        if small is not None:
            yield from (list(part) for part in small)
            return
        sc = self._session._context().sc
        for i, rows in enumerate(self._sizes):
            if rows:
                yield self._session._job("iter_partitions", lambda i=i: sc.runJob(self._rdd, _whole, [i]))
            else:
                yield []
