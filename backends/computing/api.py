"""The computing family: a Session makes Tables; components only ever see Table.

A Table is a distributed key -> value collection split into partitions by a stable
hash of the key (:func:`partition_of`), so two tables with the same partition count
join partition by partition on every backend. Functions passed to Table operations
run on workers (other processes, Spark executors): they must be picklable by
cloudpickle and must not rely on driver state they mutate.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
W = TypeVar("W")
R = TypeVar("R")


def partition_of(key: Any, partitions: int) -> int:
    """Stable across processes and machines (unlike ``hash()``)."""
    data = key if isinstance(key, bytes) else str(key).encode()
    return zlib.crc32(data) % partitions


class Table(ABC):
    """A partitioned key -> value collection. Operations return new Tables."""

    @property
    @abstractmethod
    def partitions(self) -> int:
        """Number of partitions."""

    @abstractmethod
    def map_values(self, f: Callable[[V], W]) -> "Table":
        """Apply ``f`` to every value; keys and partitioning are kept."""

    @abstractmethod
    def map_partitions(self, f: Callable[[list[tuple[K, V]]], Iterable[tuple[K, W]]]) -> "Table":
        """Apply ``f`` to each partition's list of pairs; it returns pairs whose keys stay
        in the same partition (keys must not change)."""

    @abstractmethod
    def apply_partitions(self, f: Callable[[list[tuple[K, V]]], R]) -> list[R]:
        """Run ``f`` on each partition's list of pairs and bring the results to the caller
        (one per partition, in partition order): the building block of partial sums."""

    @abstractmethod
    def map(self, f: Callable[[K, V], tuple[Any, W]]) -> "Table":
        """Re-key: ``f(k, v) -> (k2, v2)``; the result is re-partitioned by the new keys."""

    @abstractmethod
    def join(self, other: "Table", f: Callable[[V, W], Any]) -> "Table":
        """Inner join on key; ``f(left_value, right_value)`` makes the joined value."""

    @abstractmethod
    def union(self, other: "Table", f: Callable[[V, V], V] | None = None) -> "Table":
        """Keys of either table; where both have a key, ``f(left, right)`` (default: left)."""

    @abstractmethod
    def filter(self, f: Callable[[K, V], bool]) -> "Table":
        """Keep pairs for which ``f(key, value)`` is true."""

    @abstractmethod
    def reduce(self, f: Callable[[V, V], V]) -> V:
        """Fold all values with an associative, commutative ``f``; error on an empty table."""

    @abstractmethod
    def collect(self) -> Iterator[tuple[K, V]]:
        """All pairs, partition by partition."""

    @abstractmethod
    def count(self) -> int:
        """Number of pairs."""

    def keys(self) -> list[K]:
        """Every key, partition by partition: only the keys leave the workers."""
        return [k for part in self.apply_partitions(_keys_of) for k in part]

    @abstractmethod
    def sample(self, fraction: float, seed: int | None = None) -> "Table":
        """Each pair kept with probability ``fraction``; the same seed keeps the same keys."""

    @abstractmethod
    def first(self) -> tuple[K, V]:
        """Some pair (the first of the first non-empty partition); error if empty."""

    def iter_partitions(self) -> Iterator[list[tuple[K, V]]]:
        """Partitions one at a time, for streaming a table to storage or another party."""
        parts: list[list[tuple[Any, Any]]] = [[] for _ in range(self.partitions)]
        k: Any
        v: Any
        for k, v in self.collect():
            parts[partition_of(k, self.partitions)].append((k, v))
        yield from parts


class Session(ABC):
    """A party's handle on its compute engine; one per party runtime."""

    #: registry name, e.g. "local" or "spark"
    engine: str = ""

    @property
    @abstractmethod
    def default_partitions(self) -> int:
        """Partitions used when a caller does not say."""

    @abstractmethod
    def parallelize(self, pairs: Iterable[tuple[Any, Any]], partitions: int | None = None) -> Table:
        """A Table from (key, value) pairs, hash-partitioned by key."""

    def from_partitions(self, parts: Iterable[list[tuple[Any, Any]]], partitions: int) -> Table:
        """A Table from pairs already grouped by :func:`partition_of` (streamed input)."""
        return self.parallelize((kv for part in parts for kv in part), partitions)

    def map_batches(self, items: Sequence[V], fn: Callable[[list[V]], list[R]], rows_each: int = 1) -> list[R]:
        """``fn`` on the workers over batches of ``items`` (one per partition), returning
        one result per item; the results in input order. For work that is cheaper per
        batch than per item (one key setup, one vectorised call). ``rows_each``: how many
        table rows of work one item stands for, for a backend that runs small inputs in
        the driver (a few items that each carry a large block of rows belong on the workers)."""
        n, parts = len(items), self.default_partitions
        groups: list[list[tuple[int, V]]] = [[] for _ in range(parts)]
        for i, x in enumerate(items):  # contiguous runs, every partition busy once n >= parts
            groups[i * parts // n].append((i, x))  # (a key hash put items 0-3 of 2 partitions in one)
        out: list[Any] = [None] * n
        for part in self._apply_indexed(self._batches_table(groups), _indexed(fn), rows_each):
            for i, r in part:
                out[i] = r
        return out

    def _batches_table(self, groups: list[list[tuple[int, Any]]]) -> Table:
        """A table whose partition i holds ``groups[i]`` as given, not placed by key hash:
        map_batches's own, used only through apply_partitions. This default regroups by key
        (correct, not as balanced); a backend that can should keep the groups."""
        return self.from_partitions(groups, len(groups))

    def _apply_indexed(self, table: Table, fn: Callable[[list], list], rows_each: int) -> list:
        """``table.apply_partitions(fn)``; a backend may weigh the partitions by ``rows_each``."""
        return table.apply_partitions(fn)

    def map_list(self, items: Sequence[V], fn: Callable[[V], R], rows_each: int = 1) -> list[R]:
        """``[fn(x) for x in items]`` on the workers, in input order (``rows_each`` as in
        :meth:`map_batches`)."""
        return self.map_batches(items, _each(fn), rows_each) if len(items) else []

    @abstractmethod
    def stop(self) -> None:
        """Release workers."""

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _keys_of(part: list) -> list:
    return [k for k, _ in part]


def _indexed(fn: Callable[[list], list]) -> Callable[[list], list]:
    def f(part: list) -> list:
        results = fn([v for _, v in part])
        if len(results) != len(part):
            raise ValueError(f"a batch function gave {len(results)} results for {len(part)} items")
        return list(zip((i for i, _ in part), results))
    return f


def _each(fn: Callable[[Any], Any]) -> Callable[[list], list]:
    def f(batch: list) -> list:
        return [fn(x) for x in batch]
    return f
