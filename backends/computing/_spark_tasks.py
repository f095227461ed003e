"""What Spark tasks run on the executors, and how their failures come back to the driver.

Each task runs the local backend's worker code (:mod:`backends.computing._local_ops`) on
one partition, so every operation gives what the local backend gives. A failing function
is encoded (type, message, worker traceback) into the task's exception text, which
survives Spark's wrapping; :func:`translate` peels it out again in the driver.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Iterator

from backends.computing._local_ops import _execute, _unique
from backends.computing.api import partition_of
from backends.computing.local import LocalSession
from flow.core.errors import ComputingError

_FAILURE = re.compile(r"<fedweave-failure:([A-Za-z0-9+/=]+):end>")

# ---------------------------------------------------------------- worker side (runs on executors)


def _run(op: str, blob: bytes | None, arg: Any, i: int, payload: Any) -> Any:
    ok, value = _execute(op, blob, i, arg, payload)
    if not ok:  # type, message, traceback: carried in the message through Spark's wrapping
        packed = base64.b64encode(json.dumps([i, *value]).encode()).decode()
        raise RuntimeError(f"<fedweave-failure:{packed}:end>")
    return value


def _narrow(op: str, blob, arg, i: int, it: Iterator) -> list:
    return _run(op, blob, arg, i, list(it))


def _one(op: str, blob, arg, i: int, it: Iterator) -> list:
    return [_run(op, blob, arg, i, list(it))]


def _paired(op: str, blob, arg, i: int, it: Iterator) -> list:
    return [kv for left_right in it for kv in _run(op, blob, arg, i, left_right)]  # one (left, right)


def _scatter(op: str, blob, arg, i: int, it: Iterator) -> Iterator:
    """Buckets of pairs keyed by their target partition, tagged with the source partition."""
    yield from ((j, (i, bucket)) for j, bucket in _run(op, blob, arg, i, list(it)).items())


def _flat_buckets(op: str, blob, arg, i: int, it: Iterator) -> Iterator:
    yield from (kv for bucket in _run(op, blob, arg, i, list(it)).values() for kv in bucket)


def _gather(it: Iterator) -> list:
    """The buckets a partition received, in source order, one pair per key (later wins):
    the local backend's merge, so even key collisions resolve alike."""
    groups = sorted((v for _, v in it), key=lambda src_bucket: src_bucket[0])
    return groups[0][1] if len(groups) == 1 else _unique([kv for _, b in groups for kv in b])


def _target(j: int) -> int:
    return j


def _stats(n: int, i: int, it: Iterator) -> Iterator[tuple[int, bool]]:
    """Rows of partition i and, when n > 0, whether a key sits outside it."""
    rows = misplaced = 0
    for k, _ in it:
        rows += 1
        misplaced += n > 0 and partition_of(k, n) != i
    yield rows, misplaced > 0


def _head(it: Iterator) -> list:
    return [next(iter(it))]


def _whole(it: Iterator) -> Iterator:
    return it


# ---------------------------------------------------------------- driver side


def _summary(text: str) -> str:
    """The last ``Type: message`` line of a Python traceback (a Python exception's line before
    a JVM class's: an executor's ``ModuleNotFoundError`` inside Spark's wrapping), else the
    first line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "Traceback" in text:
        python = [ln for ln in lines if re.match(r"^\w+(Error|Exception|Exit)\b", ln)]
        tail = python or [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", ln)]
        if tail:
            return tail[-1][:500]
    return (lines[0] if lines else "")[:500]


def translate(op: str, exc: BaseException) -> ComputingError:
    text = str(exc)
    found = _FAILURE.search(text)
    if found:
        i, type_name, message, worker_tb = json.loads(base64.b64decode(found.group(1)))
        try:
            LocalSession._unwrap(op, i, (False, (type_name, message, worker_tb)))
        except ComputingError as err:
            return err
    if "Python worker exited unexpectedly" in text:
        return ComputingError(f"{op}: a Spark Python worker died (crash, os._exit or out of memory)")
    return ComputingError(f"{op} failed on Spark: {_summary(text) or type(exc).__name__}")

