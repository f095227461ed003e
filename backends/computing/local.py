"""The local computing backend: partitions live in the driver, work runs on a process pool.

Why this shape: a party's runtime is one process with threads (scheduler, federation
listeners), so forking it is unsafe; the pool is started lazily with "spawn" (or
"forkserver") and kept for the session. Each operation sends one task per partition:
the function, cloudpickled once per operation (so lambdas and closures work), and that
partition's pairs (standard pickle), and gets the new partition back.

Inline threshold: an operation whose input has fewer than ``inline_below`` rows
(default :data:`INLINE_BELOW`) runs in the driver, partition by partition, because a
round trip to a worker costs more than the work. If the first inline partitions show
that the whole input would take longer than :data:`INLINE_BUDGET_S`, the remaining
partitions go to the pool after all. Until the session's pool exists the budget is
:data:`POOL_START_BUDGET_S`: starting it (interpreters, imports, one per worker) costs more
than a fraction of a second of inline work, and a small job's parties (three on two cores
in a standalone run) would otherwise each start one for a few tens of milliseconds' work.
Inputs at or above the threshold go to the pool unless their rows are cheap: for the
row-wise operations (:data:`ROW_OPS`) the driver first runs a few rows of the first partition
and times them beside pickling them and their results; where a row costs less to compute
than about twice what it costs to ship (a key filter, a parse, a format), the driver runs the
rest too, as no pool could win back its pickling (cheap rows of a million-row table took
tens of seconds on a two-core pool, a second inline). ``inline_below=0`` sends everything
to the pool.

Tables keep one value per key: where an input or a re-keying yields a key twice, the
later pair wins. Functions must not mutate the values they are given (inline runs see
the driver's objects). As with any spawn pool, a script that starts work at import
time needs the ``if __name__ == "__main__":`` guard (workers import the main module).
"""

from __future__ import annotations

import os
import pickle
import random
import threading
import time
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator, cast

import cloudpickle

from backends.computing._local_ops import (  # noqa: F401 - PARENT_POLL_S, sample_keep: re-exported
    PARENT_POLL_S,
    Part,
    _combine,
    _execute,
    _type_name,
    _unique,
    _watch_parent,
    sample_keep,
)
from backends.computing.api import Session, Table, partition_of
from flow.core.errors import ComputingError

#: inputs with fewer rows than this may run inline in the driver (no IPC)
INLINE_BELOW = 1_000
#: ...as long as the projected inline run time stays under this many seconds
INLINE_BUDGET_S = 0.05
#: ...or under this many while no pool has been started (the price of starting one)
POOL_START_BUDGET_S = 0.5
START_METHODS = ("spawn", "forkserver")
#: operations whose payload may be cut into slices of rows (see _probe_rows)
ROW_OPS = frozenset({"map_values", "filter", "map", "sample"})
#: rows a probe times (after one alone, which decides by itself when it is slow)
PROBE_ROWS = 64
#: a first row slower than this sends the operation to the pool without more probing
PROBE_SLOW_S = 1e-3
#: rows cheaper than this stay in the driver whatever their pickling costs: a pool's own
#: overhead per row (pipes, queues, result objects) is about as much
CHEAP_ROW_S = 2e-6


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _positive(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ComputingError(f"{what} must be a positive integer, got {value!r}")
    return value


def _merge(results: list[dict[int, Part]], n: int) -> list[Part]:
    """Gather scattered buckets into n partitions, one pair per key."""
    groups: list[list[Part]] = [[] for _ in range(n)]
    for buckets in results:
        for j, bucket in buckets.items():
            groups[j].append(bucket)
    return [g[0] if len(g) == 1 else _unique([kv for b in g for kv in b]) for g in groups]


def _grouped(part: Part, i: int, n: int) -> bool:
    """Whether a streamed partition really is partition i (a misplaced key would
    silently drop out of partition-wise joins)."""
    return all(partition_of(kv[0], n) == i for kv in part)


class LocalSession(Session):
    """Process-pool computing on this machine; ``workers`` defaults to all usable cores and
    ``partitions`` (the default partition count) to ``workers``."""

    engine = "local"

    def __init__(self, partitions: int | None = None, workers: int | None = None, *,
                 inline_below: int = INLINE_BELOW, start_method: str = "spawn"):
        self._workers = _positive("workers", _cores() if workers is None else workers)
        self._partitions = _positive("partitions", self._workers if partitions is None else partitions)
        if start_method not in START_METHODS:
            raise ComputingError(f"start_method must be one of {', '.join(START_METHODS)}, got {start_method!r}")
        if isinstance(inline_below, bool) or not isinstance(inline_below, int) or inline_below < 0:
            raise ComputingError(f"inline_below must be a non-negative integer, got {inline_below!r}")
        self._start_method = start_method
        self._inline_below = inline_below
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None
        self._stopped = False

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("pool up" if self._executor else "idle")
        return f"LocalSession(partitions={self._partitions}, workers={self._workers}, {state})"

    def __reduce__(self):
        raise TypeError("a LocalSession cannot be sent to workers")

    @property
    def default_partitions(self) -> int:
        return self._partitions

    @property
    def workers(self) -> int:
        return self._workers

    def _count(self, partitions: int | None) -> int:
        return self._partitions if partitions is None else _positive("partitions", partitions)

    def _check_open(self) -> None:
        if self._stopped:
            raise ComputingError("the local computing session is stopped")

    def parallelize(self, pairs: Iterable[tuple[Any, Any]], partitions: int | None = None) -> "LocalTable":
        self._check_open()
        n = self._count(partitions)
        groups: list[dict] = [{} for _ in range(n)]
        try:
            for k, v in pairs:
                groups[partition_of(k, n)][k] = v
        except (TypeError, ValueError) as exc:
            raise ComputingError(f"parallelize expects (key, value) pairs with hashable keys: {exc}") from exc
        return LocalTable(self, [list(g.items()) for g in groups])

    def from_partitions(self, parts: Iterable[list[tuple[Any, Any]]], partitions: int) -> "LocalTable":
        """Takes ownership of the given lists; regroups if they are not what they claim."""
        self._check_open()
        n = _positive("partitions", partitions)
        groups = [p if type(p) is list else list(p) for p in parts]
        if len(groups) != n or not all(_grouped(g, i, n) for i, g in enumerate(groups)):
            return self.parallelize((kv for g in groups for kv in g), n)
        return LocalTable(self, groups)

    # -- running operations

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            self._check_open()
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self._workers, mp_context=get_context(self._start_method),
                    initializer=_watch_parent, initargs=(os.getpid(),),
                )
                self._finalizer = weakref.finalize(self, self._executor.shutdown, wait=False, cancel_futures=True)
            return self._executor

    def _drop_pool(self, wait: bool) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    @staticmethod
    def _ship(op: str, fn: Callable | None) -> bytes | None:
        if fn is None:
            return None
        if not callable(fn):
            raise ComputingError(f"{op} expects a function, got {type(fn).__name__}")
        try:
            return cloudpickle.dumps(fn)
        except Exception as exc:
            raise ComputingError(
                f"{op}: the function cannot be sent to workers ({_type_name(exc)}: {exc}); "
                "it must be picklable by cloudpickle and must not capture a Session or Table"
            ) from exc

    @staticmethod
    def _unwrap(op: str, index: int, outcome: tuple[bool, Any]) -> Any:
        ok, value = outcome
        if ok:
            return value
        type_name, message, worker_tb = value
        where = f"on partition {index}" if index >= 0 else "in the driver"
        err = ComputingError(f"{op} failed {where}: {type_name}: {message}")
        err.worker_traceback = worker_tb
        if hasattr(err, "add_note"):
            err.add_note("worker traceback:\n" + worker_tb)
        raise err

    def _batches_table(self, groups: list[list[tuple[int, Any]]]) -> Table:
        self._check_open()
        return LocalTable(self, groups)

    def _apply_indexed(self, table: Table, fn: Callable[[list], list], rows_each: int) -> list:
        """Partitions weighed by ``rows_each`` for the inline threshold: a few heavy items go
        straight to the pool instead of one running in the driver first."""
        parts = cast(LocalTable, table)._parts  # made by self.parallelize
        return self._run("apply_partitions", fn, parts, sizes=[len(p) * max(1, rows_each) for p in parts])

    def _run(self, op: str, fn: Callable | None, payloads: list, arg: Any = None,
             sizes: list[int] | None = None) -> list:
        """One task per payload (a partition, or a pair of them); results in order."""
        self._check_open()
        blob = self._ship(op, fn)
        sizes = [len(p) for p in payloads] if sizes is None else sizes
        results: list = [None] * len(payloads)
        done = self._run_inline(op, fn, arg, payloads, sizes, results)
        if done == 0 and op in ROW_OPS and self._inline_below > 0 and \
                self._run_rows(op, fn, blob, arg, payloads, results):
            return results
        if done < len(payloads):
            self._run_pool(op, blob, arg, payloads, results, done)
        return results

    def _run_rows(self, op: str, fn, blob: bytes | None, arg, payloads: list, results: list) -> bool:
        """A row-wise operation on a large input: probe its first rows, then run the rest in
        the driver or on the pool as the probe says; False if there was no row to probe."""
        probe = self._probe_rows(op, fn, arg, payloads)
        if probe is None:
            return False
        first, taken, head, inline = probe
        rest = [p[taken:] if i == first else p for i, p in enumerate(payloads)]
        if inline:
            for i, payload in enumerate(rest):
                results[i] = self._unwrap(op, i, _execute(op, fn, i, arg, payload))
        else:
            self._run_pool(op, blob, arg, rest, results, 0)
        results[first] = _combine(op, head, results[first])
        return True

    def _probe_rows(self, op: str, fn, arg, payloads: list) -> tuple[int, int, Any, bool] | None:
        """Run the first rows of the first non-empty partition in the driver: (that partition,
        how many rows ran, their result, whether the driver should run the rest). The rest is
        cheap to run inline when a row's compute time c and shipping time s (pickling it and its
        result, there and back) make c · (1 - 1/W) ≤ s · (1/W + 1/2): what W workers save in
        compute is lost to shipping, of which the driver's half is serial; or when c is below
        :data:`CHEAP_ROW_S` whatever s is."""
        first = next((i for i, p in enumerate(payloads) if p), None)
        if first is None:
            return None
        part = payloads[first]
        start = time.perf_counter()
        one = self._unwrap(op, first, _execute(op, fn, first, arg, part[:1]))
        if time.perf_counter() - start > PROBE_SLOW_S or len(part) == 1:
            return first, 1, one, False
        rows = part[1:PROBE_ROWS + 1]
        start = time.perf_counter()
        out = self._unwrap(op, first, _execute(op, fn, first, arg, rows))
        compute = time.perf_counter() - start
        start = time.perf_counter()
        try:
            pickle.dumps(rows, pickle.HIGHEST_PROTOCOL)
            pickle.dumps(out, pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - unpicklable: the pool reports it with its own message
            return first, 1, one, False
        ship = 2 * (time.perf_counter() - start)  # loads cost about what dumps do
        w = self._workers
        inline = compute <= CHEAP_ROW_S * len(rows) or compute * (1 - 1 / w) <= ship * (1 / w + 0.5)
        return first, len(rows) + 1, _combine(op, one, out), inline

    def _run_inline(self, op: str, fn, arg, payloads: list, sizes: list[int], results: list) -> int:
        total = sum(sizes)
        if total >= self._inline_below:
            return 0
        budget = INLINE_BUDGET_S if self._executor is not None else POOL_START_BUDGET_S
        start, rows = time.perf_counter(), 0
        for i, payload in enumerate(payloads):
            results[i] = self._unwrap(op, i, _execute(op, fn, i, arg, payload))
            rows += sizes[i]
            if rows and (time.perf_counter() - start) * total / rows > budget:
                return i + 1  # slower than it looked: the rest goes to the pool
        return len(payloads)

    def _run_pool(self, op: str, blob: bytes | None, arg, payloads: list, results: list, first: int) -> None:
        pool = self._pool()
        futures = [pool.submit(_execute, op, blob, i, arg, payloads[i]) for i in range(first, len(payloads))]
        try:
            for i, fut in zip(range(first, len(payloads)), futures):
                try:
                    outcome = fut.result()
                except BrokenProcessPool as exc:
                    self._drop_pool(wait=False)
                    raise ComputingError(
                        f"{op}: a worker process died on partition {i} (crash, os._exit or out of memory); "
                        "the pool restarts on the next operation"
                    ) from exc
                except Exception as exc:  # pickling of the partition or of the result failed
                    raise ComputingError(
                        f"{op} failed on partition {i}: {_type_name(exc)}: {exc} "
                        "(values must be picklable with the standard pickle)"
                    ) from exc
                results[i] = self._unwrap(op, i, outcome)
        finally:
            for fut in futures:
                fut.cancel()

    def stop(self) -> None:
        """Shut the pool down; the session refuses further work."""
        self._stopped = True
        self._drop_pool(wait=True)


class LocalTable(Table):
    """Partitions held in the driver as lists of pairs, grouped by :func:`partition_of`."""

    def __init__(self, session: LocalSession, parts: list[Part]):
        self._session = session
        self._parts = parts

    def __repr__(self) -> str:
        return f"LocalTable(partitions={self.partitions}, count={self.count()})"

    def __reduce__(self):
        raise TypeError("a Table cannot be used inside a function run on workers; collect what you need first")

    @property
    def partitions(self) -> int:
        return len(self._parts)

    @property
    def session(self) -> LocalSession:
        return self._session

    def _new(self, parts: list[Part]) -> "LocalTable":
        return LocalTable(self._session, parts)

    def _scattered(self, op: str, f: Callable | None, n: int) -> "LocalTable":
        return self._new(_merge(self._session._run(op, f, self._parts, arg=n), n))

    def _repartition(self, n: int) -> "LocalTable":
        return self if n == self.partitions else self._scattered("split", None, n)

    def _aligned(self, other: Table) -> tuple[list[Part], list[Part]]:
        """Both sides with one partition count: the smaller side is re-partitioned."""
        if not isinstance(other, LocalTable):
            raise ComputingError(f"cannot combine a local table with a {type(other).__name__}")
        if other.partitions == self.partitions:
            return self._parts, other._parts
        if self.count() <= other.count():
            return self._repartition(other.partitions)._parts, other._parts
        return self._parts, other._repartition(self.partitions)._parts

    def _paired(self, op: str, other: Table, f: Callable | None) -> "LocalTable":
        left, right = self._aligned(other)
        sizes = [len(a) + len(b) for a, b in zip(left, right)]
        return self._new(self._session._run(op, f, list(zip(left, right)), sizes=sizes))

    def map_values(self, f: Callable) -> "LocalTable":
        return self._new(self._session._run("map_values", f, self._parts))

    def map_partitions(self, f: Callable) -> "LocalTable":
        return self._scattered("map_partitions", f, self.partitions)

    def apply_partitions(self, f: Callable) -> list:
        return self._session._run("apply_partitions", f, self._parts)

    def map(self, f: Callable) -> "LocalTable":
        return self._scattered("map", f, self.partitions)

    def join(self, other: Table, f: Callable) -> "LocalTable":
        return self._paired("join", other, f)

    def union(self, other: Table, f: Callable | None = None) -> "LocalTable":
        return self._paired("union", other, f)

    def filter(self, f: Callable) -> "LocalTable":
        return self._new(self._session._run("filter", f, self._parts))

    def reduce(self, f: Callable) -> Any:
        partials = [v for ok, v in self._session._run("reduce", f, self._parts) if ok]
        if not partials:
            raise ComputingError("reduce of an empty table")
        if len(partials) == 1:
            return partials[0]
        # the final fold runs in the driver, with the same error reporting
        _, total = LocalSession._unwrap("reduce", -1, _execute("reduce", f, -1, None, [(None, v) for v in partials]))
        return total

    def collect(self) -> Iterator[tuple[Any, Any]]:
        return (kv for part in self._parts for kv in part)

    def count(self) -> int:
        return sum(len(p) for p in self._parts)

    def keys(self) -> list[Any]:
        """From the driver's partitions: no round trip through the pool."""
        return [k for part in self._parts for k, _ in part]

    def sample(self, fraction: float, seed: int | None = None) -> "LocalTable":
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise ComputingError(f"sample fraction must be a number in [0, 1], got {fraction!r}")
        seed = random.getrandbits(63) if seed is None else seed
        return self._new(self._session._run("sample", None, self._parts, arg=(float(fraction), seed)))

    def first(self) -> tuple[Any, Any]:
        for part in self._parts:
            if part:
                return part[0]
        raise ComputingError("first() of an empty table")

    def iter_partitions(self) -> Iterator[list[tuple[Any, Any]]]:
        for part in self._parts:
            yield list(part)
