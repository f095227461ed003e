"""What the job page shows of a component's results beyond the stored JSON: precision-recall,
lift, gain and confusion counts drawn from Evaluation's ``confusion_curve``, column
statistics of an output table, and the level and text filter of log lines.

Everything is computed from what ``flow tracking`` and ``flow job log`` give, so the board
and the CLI never disagree; the routes (:mod:`.routes_results`) check the party first.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Iterator, Literal, get_args

import numpy as np

from flow.core.errors import StoreError
from flow.core.ids import check_id
from flow.ops.local import LocalOps

#: log levels the pane filters by, lowest first
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LEVELS: tuple[str, ...] = get_args(Level)
_LEVEL = re.compile(r"^\[[^\]]*\] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ (" + "|".join(LEVELS) + ") ")


# evaluation -------------------------------------------------------------
def _confusion(curve: dict[str, list], i: int) -> dict[str, Any]:
    return {"threshold": curve["threshold"][i], **{k: int(curve[k][i]) for k in ("tp", "fp", "fn", "tn")}}


def confusion_near(curve: dict[str, list], threshold: float) -> dict[str, Any]:
    """The counts at the lowest logged threshold at or above ``threshold`` (the curve is
    thinned, so the threshold used is returned with them); the first point (no threshold,
    nothing called positive) when none is."""
    at = [i for i, t in enumerate(curve["threshold"]) if t is None or t >= threshold]
    return _confusion(curve, at[-1])


def evaluation_curves(metrics: dict[str, dict[str, Any]], threshold: float | None) -> dict[str, dict[str, Any]]:
    """Per metrics namespace with a ``confusion_curve``: PR, gain and lift over the share of
    rows called positive, and the confusion counts at ``threshold`` (default: the exact
    ``confusion_matrix`` Evaluation logged at its own threshold)."""
    out: dict[str, dict[str, Any]] = {}
    for namespace, values in metrics.items():
        curve = values.get("confusion_curve")
        if not isinstance(curve, dict):
            continue
        tp, fp = np.asarray(curve["tp"], float), np.asarray(curve["fp"], float)
        pos, total = tp[0] + float(curve["fn"][0]), tp[0] + fp[0] + float(curve["fn"][0]) + float(curve["tn"][0])
        called = tp + fp
        keep = called > 0  # no row called positive: precision and lift are undefined there
        precision = tp[keep] / called[keep]
        thresholds = [t for t, k in zip(curve["threshold"], keep) if k]
        fraction = (called[keep] / total).tolist()
        logged = values.get("confusion_matrix")
        if threshold is None and isinstance(logged, dict):
            confusion = dict(logged)
        else:
            confusion = confusion_near(curve, 0.5 if threshold is None else threshold)
        out[namespace] = {
            "pr": {"recall": (tp[keep] / max(pos, 1)).tolist(), "precision": precision.tolist(),
                   "threshold": thresholds},
            "gain": {"fraction": [0.0, *fraction], "gain": [0.0, *(tp[keep] / max(pos, 1)).tolist()]},
            "lift": {"fraction": fraction, "lift": (precision / (pos / total if pos else 1.0)).tolist()},
            "confusion": confusion, "positives": int(pos), "rows": int(total),
        }
    return out


# output data ------------------------------------------------------------
def _number(value: Any) -> float | None:
    """A value as a float; None when missing (None, empty, NaN) or not a number."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


class ColumnStats:
    """Count, mean, variance, min and max of one column, merged a partition at a time
    (Chan's pairwise update), so a table of any size is read once in constant memory."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf
        self.missing = self.text = 0

    def add(self, values: Iterable[Any]) -> None:
        numbers = []
        for v in values:
            if _missing(v):
                self.missing += 1
                continue
            x = _number(v)
            if x is None:
                self.text += 1
            else:
                numbers.append(x)
        if not numbers:
            return
        arr = np.asarray(numbers)
        n, mean, m2 = len(arr), float(arr.mean()), float(((arr - arr.mean()) ** 2).sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.low, self.high = min(self.low, float(arr.min())), max(self.high, float(arr.max()))

    def result(self, name: str) -> dict[str, Any]:
        numeric = self.n > 0 and self.text == 0
        return {"column": name, "count": self.n + self.text, "missing": self.missing,
                "mean": self.mean if numeric else None,
                "std": math.sqrt(self.m2 / self.n) if numeric else None,  # population std (numpy's default)
                "min": self.low if numeric else None, "max": self.high if numeric else None}


def _outputs(ops: LocalOps, job_id: str, role: str, party_id: str, component: str) -> list[dict[str, Any]]:
    """The task's output table refs, after the ids' and the task's checks ``flow tracking``
    makes (InvalidIdentifier, or StoreError for no such task)."""
    for kind, value in (("job_id", job_id), ("role", role), ("party_id", party_id), ("component", component)):
        check_id(kind, value)
    ops._check_task(job_id, role, party_id, component)
    return ops.store.outputs(job_id, role, party_id, component, "data")


def column_statistics(ops: LocalOps, job_id: str, role: str, party_id: str, component: str) -> list[dict[str, Any]]:
    """Per output table of the task: each column's statistics over all its rows (the id
    column is the rows' key and is left out)."""
    out = []
    for ref in _outputs(ops, job_id, role, party_id, component):
        storage = ops.storage(ref["ref"].get("engine"))  # the job's storage engine, as tracking reads it
        meta = storage.meta(ref["ref"]["namespace"], ref["ref"]["name"])
        stats = [ColumnStats() for _ in meta.columns]
        parts = ops.partitions(storage, meta)
        try:
            for part in parts:
                rows = [v for _, v in part]
                for j, s in enumerate(stats):
                    s.add(r[j] if j < len(r) else None for r in rows)
        finally:
            parts.close()  # the session ends here, not when the generator is collected
        out.append({"namespace": meta.namespace, "name": meta.name, "index": ref["index"], "count": meta.count,
                    "columns": [s.result(c) for s, c in zip(stats, meta.columns)]})
    return out


def output_table(ops: LocalOps, job_id: str, role: str, party_id: str, component: str,
                 index: int) -> tuple[str, str, str | None]:
    """The namespace, name and engine of the task's ``index``-th output table."""
    for ref in _outputs(ops, job_id, role, party_id, component):
        if ref["index"] == index:
            return ref["ref"]["namespace"], ref["ref"]["name"], ref["ref"].get("engine")
    raise StoreError(f"{component} on {role}:{party_id} of job {job_id} has no output table {index}")


# logs -------------------------------------------------------------------
def filter_logs(lines: Iterable[str], level: str | None, text: str | None) -> Iterator[str]:
    """Lines at ``level`` or above that contain ``text`` (case-insensitive); a line without a
    level of its own (a traceback's) belongs to the line before it."""
    floor = LEVELS.index(level) if level else 0
    needle = (text or "").lower()
    current = 0
    for line in lines:
        found = _LEVEL.match(line)
        if found:
            current = LEVELS.index(found.group(1))
        if current >= floor and needle in line.lower():
            yield line
