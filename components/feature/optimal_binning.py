"""Optimal binning (FATE's ``method: "optimal"``): merge fine initial bins greedily by a metric.

Each binned column starts from ``init_bin_nums`` quantile (or equal-width) bins. Adjacent
bins are then merged, two at a time, always the adjacent pair whose merge costs least by
``metric_method``, in FATE's stages:

1. with ``mixture``: pairs of bins that both lack one label, then pairs where either does,
   until every bin holds both labels (events and non-events);
2. pairs of bins that both hold fewer than ``ceil(min_bin_pct * n)`` samples, then pairs
   where either does, until no bin is that small;
3. any pair, until ``bin_num`` bins remain.

A merge never makes a bin larger than ``floor(max_bin_pct * n)`` samples; a stage ends when
its aim is met or no allowed pair is left. ``n`` is the column's count of non-missing
samples; the missing-value bin is never merged. Ties (to 1e-9 relative) go to the
leftmost pair.

Cost of merging bins ``l`` and ``r`` (lower merges first):

- ``iv``: the IV lost, ``iv(l) + iv(r) - iv(l+r)`` (per-bin IV as in
  :func:`components.feature.binning.woe_iv`, with the adjustment factor);
- ``gini``: the rise of the count-weighted Gini impurity, ``t·g(l+r) - t_l·g(l) - t_r·g(r)``;
- ``chi_square``: the chi-square statistic of the 2x2 table (l, r) x (event, non-event),
  as ChiMerge (similar bins merge first);
- ``ks``: the KS distance ``|cum_event_rate - cum_non_event_rate|`` at the boundary the
  merge removes (the boundaries that separate least go first).

The result is a subset of the initial bins' right edges (the last one, the maximum, always
stays): :func:`merge_bins` returns the indices of the kept initial split points. For a host,
the guest runs it on the per-bin event counts it decrypts (see binning.py) and sends back
only these indices; the host picks its own split points with them.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

METRICS = ("iv", "gini", "ks", "chi_square")
#: costs this close (relative) are a tie, whatever the order of the float operations
TIE = 1e-9


class OptimalBinningParam(BaseModel):
    """FATE's ``optimal_binning_param`` (defaults as FATE 1.x)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    metric_method: str = "iv"
    min_bin_pct: float = Field(0.05, ge=0, le=1)
    max_bin_pct: float = Field(1.0, gt=0, le=1)
    init_bin_nums: int = Field(1000, ge=2)
    mixture: bool = True
    init_bucket_method: str = "quantile"
    #: falls back to the component's ``adjustment_factor`` when not set
    adjustment_factor: float | None = Field(None, gt=0)

    @field_validator("metric_method")
    @classmethod
    def _metric(cls, value: str) -> str:
        name = value.lower().replace("-", "_")
        if name not in METRICS:
            raise PydanticCustomError("not_supported", "not supported: metric_method '{value}' (fedweave's optimal "
                                      "binning knows {known})", {"value": value, "known": ", ".join(METRICS)})
        return name

    @field_validator("init_bucket_method")
    @classmethod
    def _init_method(cls, value: str) -> str:
        if value.lower() not in ("quantile", "bucket"):
            raise PydanticCustomError("not_supported", "not supported: init_bucket_method '{value}' (quantile or "
                                      "bucket)", {"value": value})
        return value.lower()


# ---------------------------------------------------------------- merge costs, one per adjacent pair

def _bin_iv(e: np.ndarray, n: np.ndarray, total_e: float, total_n: float, factor: float) -> np.ndarray:
    adjust = (e == 0) | (n == 0)
    er = np.where(adjust, e + factor, e) / total_e
    nr = np.where(adjust, n + factor, n) / total_n
    return (er - nr) * np.log(er / nr)


def _gini_mass(e: np.ndarray, n: np.ndarray) -> np.ndarray:
    """t·g = t - (e² + n²)/t (0 for an empty bin)."""
    t = e + n
    return np.where(t > 0, t - (e * e + n * n) / np.where(t > 0, t, 1), 0.0)


def _chi_square(el, nl, er, nr) -> np.ndarray:
    t = el + nl + er + nr
    out = np.zeros(len(el))
    for obs, row, col in ((el, el + nl, el + er), (nl, el + nl, nl + nr),
                          (er, er + nr, el + er), (nr, er + nr, nl + nr)):
        expected = np.where(t > 0, row * col / np.where(t > 0, t, 1), 0.0)
        out += np.where(expected > 0, (obs - expected) ** 2 / np.where(expected > 0, expected, 1), 0.0)
    return out


def pair_costs(event: np.ndarray, non_event: np.ndarray, metric: str, factor: float) -> np.ndarray:
    """Cost of merging bin i with bin i+1, for every i (length ``len(event) - 1``)."""
    el, er, nl, nr = event[:-1], event[1:], non_event[:-1], non_event[1:]
    total_e, total_n = float(event.sum()), float(non_event.sum())
    if metric == "iv":
        return (_bin_iv(el, nl, total_e, total_n, factor) + _bin_iv(er, nr, total_e, total_n, factor)
                - _bin_iv(el + er, nl + nr, total_e, total_n, factor))
    if metric == "gini":
        return _gini_mass(el + er, nl + nr) - _gini_mass(el, nl) - _gini_mass(er, nr)
    if metric == "chi_square":
        return _chi_square(el, nl, er, nr)
    if metric == "ks":
        return np.abs(np.cumsum(event)[:-1] / max(total_e, 1.0) - np.cumsum(non_event)[:-1] / max(total_n, 1.0))
    raise ValueError(f"unknown metric {metric}")


# ---------------------------------------------------------------- the greedy merge

def merge_bins(event, non_event, bin_num: int, param: OptimalBinningParam, adjustment_factor: float) -> list[int]:
    """Indices of the initial bins whose right edges stay split points (ascending, the last
    initial bin always among them), after the staged greedy merge described above."""
    ev, ne = np.asarray(event, dtype=float).copy(), np.asarray(non_event, dtype=float).copy()
    ends = list(range(len(ev)))
    if len(ev) <= 1:
        return ends
    factor = param.adjustment_factor or adjustment_factor
    n = float(ev.sum() + ne.sum())
    max_n, min_n = math.floor(param.max_bin_pct * n), math.ceil(param.min_bin_pct * n)
    stages: list[tuple[str | None, str]] = []
    if param.mixture:
        stages += [("mixture", "both"), ("mixture", "either")]
    stages += [("small", "both"), ("small", "either"), (None, "any")]
    for kind, rule in stages:
        while len(ev) > 1:
            bad = ((ev == 0) | (ne == 0) if kind == "mixture" else (ev + ne) < min_n if kind == "small"
                   else np.zeros(len(ev), dtype=bool))
            aim = int(bad.sum()) if kind else len(ev) - bin_num
            if aim <= 0:
                break
            allowed = (ev + ne)[:-1] + (ev + ne)[1:] <= max_n
            if rule == "both":
                allowed &= bad[:-1] & bad[1:]
            elif rule == "either":
                allowed &= bad[:-1] | bad[1:]
            if not allowed.any():
                break
            costs = np.where(allowed, pair_costs(ev, ne, param.metric_method, factor), np.inf)
            best = costs.min()  # ties (to rounding: 1e-9 relative) go to the leftmost pair
            i = int(np.flatnonzero(costs <= best + TIE * max(1.0, abs(best)))[0])
            ev[i] += ev[i + 1]
            ne[i] += ne[i + 1]
            ev, ne = np.delete(ev, i + 1), np.delete(ne, i + 1)
            del ends[i]
    return ends


def merge_counts(event, non_event, ends: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin counts of the merged bins (``ends`` from :func:`merge_bins`)."""
    starts = [0] + [e + 1 for e in ends[:-1]]
    ev, ne = np.asarray(event, dtype=float), np.asarray(non_event, dtype=float)
    return (np.array([ev[s:e + 1].sum() for s, e in zip(starts, ends)]),
            np.array([ne[s:e + 1].sum() for s, e in zip(starts, ends)]))
