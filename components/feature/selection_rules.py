"""HeteroFeatureSelection's rules: ranking by threshold / top k / top percentile, the column
statistics of the statistic filters (a DataStatistics model's, else computed here), the
merge of multiclass IVs, and the SecureBoost feature-importance filter."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from components.base import Context, Dataset, Inputs
from components.feature.common import gather_matrix
from components.statistics.data_statistics import SUMMARY, canonical, compute, model_value, percentile_of
from flow.core.errors import ComponentError

# ---------------------------------------------------------------- ranking rules

def top_k(values: dict[Any, float], k: int, take_high: bool = True) -> set:
    """The k best keys (ties broken by key order, so every party agrees)."""
    order = sorted(values, key=lambda key: (-values[key] if take_high else values[key], str(key)))
    return set(order[:max(0, int(k))])


def top_percentile(values: dict[Any, float], pct: float, take_high: bool = True) -> set:
    """Keys whose value reaches the value at rank ``floor(pct * n)`` (1.0 keeps all)."""
    if not values:
        return set()
    ranked = sorted(values.values(), reverse=take_high)
    cut = ranked[min(len(ranked) - 1, max(0, math.floor(pct * len(ranked) - 1e-9)))]
    return {k for k, v in values.items() if (v >= cut if take_high else v <= cut)}


def by_threshold(values: dict[Any, float], threshold: float, take_high: bool = True) -> set:
    return {k for k, v in values.items() if (v >= threshold if take_high else v <= threshold)}


FILTER_TYPES: dict[str, Callable[[dict, float, bool], set]] = {
    "threshold": by_threshold, "top_k": top_k, "top_percentile": top_percentile}


def listify(value, n: int) -> list:
    return list(value) if isinstance(value, list) else [value] * n


def pick_step(value, step: int):
    """A host_* setting for filter step ``step``: one value for all steps, or one per step (as metrics)."""
    return value[step] if isinstance(value, list) else value


def common_filter(component: str, values: dict[Any, float], filter_type: str, threshold: float,
                  take_high: bool) -> set:
    if filter_type not in FILTER_TYPES:
        raise ComponentError(f"{component}: filter_type '{filter_type}' unknown (use {', '.join(FILTER_TYPES)})")
    return FILTER_TYPES[filter_type](values, threshold, take_high)


# ---------------------------------------------------------------- column statistics

def _top_value_ratio(col: np.ndarray) -> float:
    present = col[~np.isnan(col)]
    return float(np.unique(present, return_counts=True)[1].max() / len(col)) if len(present) else 1.0


def column_statistics(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per column, DataStatistics' summary (data_statistics.compute; ``std`` is ``stddev``)
    and the share of the most frequent value (``top_value_ratio``)."""
    stats = compute(x, ["mean", "variance", "stddev", "min", "max", "median", "coefficient_of_variance",
                        "skewness", "kurtosis", "missing_count", "missing_ratio"])
    stats["std"] = stats["stddev"]
    stats["top_value_ratio"] = np.array([_top_value_ratio(x[:, j]) for j in range(x.shape[1])])
    return stats


def _known_statistic(name: str) -> bool:
    return name == "top_value_ratio" or percentile_of(name) is not None or canonical(name) in SUMMARY


class ColumnMetrics:
    """A statistic of the candidate columns: from the DataStatistics model when it has it,
    else computed once from this party's data (the same formulas, so the same values)."""

    def __init__(self, component: str, data: Dataset, header: list[str], select: list[int], model: dict | None):
        self.component, self.data, self.header, self.model = component, data, header, model
        self.position = {c: i for i, c in enumerate(select)}
        self._x: np.ndarray | None = None
        self._local: dict[str, np.ndarray] = {}

    def __call__(self, name: str, cols: set[int] | list[int]) -> dict[int, float]:
        if not _known_statistic(name):
            raise ComponentError(f"{self.component}: statistic '{name}' unknown (use a DataStatistics name, "
                                 "e.g. stddev, kurtosis, coefficient_of_variance, median, '95%')")
        out: dict[int, float] = {}
        for c in cols:
            value = model_value(self.model, self.header[c], name) if self.model else None
            if value is None:
                value = float(self._computed(name)[self.position[c]])
            out[c] = value
        return out

    def _computed(self, name: str) -> np.ndarray:
        if name not in self._local:
            if self._x is None:
                if self.data.table.count() == 0:
                    raise ComponentError(f"{self.component}: input table {self.data.meta.name} is empty")
                self._x = gather_matrix(self.data.table, sorted(self.position))[1]
            x = self._x
            self._local[name] = (np.array([_top_value_ratio(x[:, j]) for j in range(x.shape[1])])
                                 if name == "top_value_ratio" else compute(x, [name])[name])
        return self._local[name]


# ---------------------------------------------------------------- multiclass IV

class ClassIV(float):
    """A multiclass column's IV: as a float the average of its one-vs-rest IVs, which
    ``per_class`` keeps for the other merge types."""

    per_class: tuple[float, ...]

    def __new__(cls, values: list[float]) -> "ClassIV":
        obj = super().__new__(cls, float(np.mean(values)))
        obj.per_class = tuple(float(v) for v in values)
        return obj


def merged_iv(iv: float, how: str) -> float:
    per = getattr(iv, "per_class", None)
    if per is None:
        return float(iv)
    return {"average": float(np.mean(per)), "min": min(per), "max": max(per)}[how]


# ---------------------------------------------------------------- SecureBoost feature importance

def sbt_step(ctx: Context, sp: Any, inputs: Inputs, method: str, header: list[str], left: set[int]) -> set[int]:
    """Each party keeps its own columns by their importance in its part of the tree model
    (``feature_importance``: entries {"party", "feature", "importance"}, else the model's
    ``feature_importance_type`` key, else "split"; a column no split used has importance 0).
    Threshold steps give what a federated decision gives; ranking across parties (top_k,
    top_percentile with hosts and ``select_federated``) is refused."""
    tree = next((m for m in inputs.isometric_model if "feature_importance" in m), None)
    if tree is None:
        raise ComponentError(f"{ctx.component}: filter method '{method}' needs a SecureBoost model with "
                             "feature_importance as input.isometric_model")
    metrics = listify(sp.metrics, 1)
    if any(m != "feature_importance" for m in metrics):
        raise ComponentError(f"{ctx.component}: sbt_param.metrics {metrics}: only 'feature_importance' is known")
    n = len(metrics)
    ftypes = listify(sp.filter_type, n)
    if sp.select_federated and ctx.role_parties("host") and any(t != "threshold" for t in ftypes):
        raise ComponentError(f"{ctx.component}: not supported: sbt_param filter_type {ftypes} with "
                             "select_federated (ranking across parties); use threshold or select_federated false")
    own = {"guest"} if ctx.role == "guest" else {"host", f"host:{ctx.local.party_id}"}
    kind = str(tree.get("feature_importance_type", "split"))
    importance = {c: 0.0 for c in left}
    position = {name: c for c, name in enumerate(header)}
    for entry in tree["feature_importance"]:
        c = position.get(entry.get("feature"))
        if c in importance and entry.get("party", ctx.role) in own:
            importance[c] += float(entry.get("importance", entry.get(kind, entry.get("split", 0.0))))
    kept = set(left)
    for ftype, thr, take_high in zip(ftypes, listify(sp.threshold, n), listify(sp.take_high, n)):
        kept = common_filter(ctx.component, {c: importance[c] for c in kept}, ftype, thr, take_high)
    return kept


# ---------------------------------------------------------------- anonymous names

def anonymous_to_real(ctx: Context, p: Any, header: list[str]) -> Any:
    """With ``use_anonymous``: the params with this party's anonymous names made real ones."""
    if not p.use_anonymous:
        return p
    prefix = f"{ctx.role}_{ctx.local.party_id}_x"
    real = {f"{prefix}{i}": name for i, name in enumerate(header)}

    def names(values: list[str] | None, field: str) -> list[str] | None:
        bad = [v for v in values or [] if v not in real]
        if bad:
            raise ComponentError(f"{ctx.component}: {field} {bad} are not anonymous names of this party's "
                                 f"columns ({prefix}0 .. {prefix}{len(header) - 1}; use_anonymous is set)")
        return None if values is None else [real[v] for v in values]

    mp = p.manually_param
    manual = mp.model_copy(update={
        "filter_out_names": names(mp.filter_out_names, "manually_param.filter_out_names"),
        "left_col_names": names(mp.left_col_names, "manually_param.left_col_names")})
    return p.model_copy(update={"select_names": names(p.select_names, "select_names"),
                                "manually_param": manual, "use_anonymous": False})
