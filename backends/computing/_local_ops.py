"""Worker side of the local computing backend (:mod:`backends.computing.local`).

Everything here runs in pool workers (or inline in the driver). It lives in its own
module, at module level, so that workers import it by name instead of receiving it
pickled, and so that importing it in a worker pulls in nothing of the driver side.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
import traceback
from typing import Any, Callable, Iterable

import cloudpickle

from backends.computing.api import partition_of

#: how often a worker checks that its driver is still alive
PARENT_POLL_S = 1.0

Pair = tuple[Any, Any]
Part = list[Pair]

_LAST_FN: tuple[bytes, Callable] | None = None


def _load(blob: bytes | None) -> Callable | None:
    """Unpickle the shipped function once per worker and operation, not per partition."""
    global _LAST_FN
    if blob is None:
        return None
    if _LAST_FN is None or _LAST_FN[0] != blob:
        _LAST_FN = (blob, cloudpickle.loads(blob))
    return _LAST_FN[1]


def _unique(pairs: Part) -> Part:
    """One pair per key, the later one winning."""
    merged = dict(pairs)
    return pairs if len(merged) == len(pairs) else list(merged.items())


def _scatter(pairs: Iterable[Pair], n: int) -> dict[int, Part]:
    buckets: dict[int, Part] = {}
    for kv in pairs:
        buckets.setdefault(partition_of(kv[0], n), []).append(kv)
    return {j: _unique(b) for j, b in buckets.items()}


def sample_keep(key: Any, fraction: float, seed: int) -> bool:
    """Whether ``sample`` keeps ``key``: a keyed hash, so the choice depends only on
    (key, seed), never on partitioning or order; other backends can reuse it."""
    data = key if isinstance(key, bytes) else str(key).encode()
    digest = hashlib.blake2b(str(seed).encode() + b"\0" + data, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < fraction


def _op_map_partitions(f: Callable, i: int, n: int, part: Part) -> dict[int, Part]:
    out = _unique(list(f(list(part))))
    if all(partition_of(k, n) == i for k, _ in out):
        return {i: out}
    return _scatter(out, n)  # keys changed after all: put them where they belong


def _op_reduce(f: Callable, i: int, arg: Any, part: Part) -> tuple[bool, Any]:
    if not part:
        return False, None
    return True, functools.reduce(f, (v for _, v in part))


def _op_join(f: Callable, i: int, arg: Any, pair: tuple[Part, Part]) -> Part:
    left, right = pair
    lookup = dict(right)
    return [(k, f(v, lookup[k])) for k, v in left if k in lookup]


def _op_union(f: Callable | None, i: int, arg: Any, pair: tuple[Part, Part]) -> Part:
    left, right = pair
    merged = dict(left)
    for k, v in right:
        merged[k] = v if k not in merged else (merged[k] if f is None else f(merged[k], v))
    return list(merged.items())


#: op name -> task(f, partition index, extra argument, payload)
_OPS: dict[str, Callable[[Any, int, Any, Any], Any]] = {
    "map_values": lambda f, i, arg, part: [(k, f(v)) for k, v in part],
    "map_partitions": _op_map_partitions,
    "apply_partitions": lambda f, i, arg, part: f(list(part)),
    "map": lambda f, i, n, part: _scatter((f(k, v) for k, v in part), n),
    "split": lambda f, i, n, part: _scatter(part, n),
    "filter": lambda f, i, arg, part: [(k, v) for k, v in part if f(k, v)],
    "reduce": _op_reduce,
    "join": _op_join,
    "union": _op_union,
    "sample": lambda f, i, arg, part: [(k, v) for k, v in part if sample_keep(k, *arg)],
}


def _combine(op: str, head: Any, rest: Any) -> Any:
    """One partition's result from those of two slices of its rows (a row-wise ``op``)."""
    if op == "map":  # buckets by target partition
        merged = {j: list(b) for j, b in head.items()}
        for j, b in rest.items():
            merged[j] = _unique(merged[j] + b) if j in merged else b
        return merged
    return head + rest


def _watch_parent(parent: int) -> None:
    """Pool initializer: a worker whose driver died (killed party, SIGKILL) exits instead of
    waiting forever on its queue. Polling, because PR_SET_PDEATHSIG follows the spawning
    *thread*, which in a threaded runtime may end long before the driver does."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="fedweave-parent-watch", daemon=True).start()


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _execute(op: str, fn: bytes | Callable | None, index: int, arg: Any, payload: Any) -> tuple[bool, Any]:
    """Run one partition's task; errors come back as data so every exception type
    (picklable or not) reaches the driver with its type, message and traceback."""
    try:
        f = _load(fn) if isinstance(fn, bytes) else fn
        return True, _OPS[op](f, index, arg, payload)
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, never swallowed
        return False, (_type_name(exc), str(exc), traceback.format_exc())
