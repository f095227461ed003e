"""DataStatistics: each party describes its own columns; nothing crosses between parties.

The statistics are FATE's names (``statistics``; ``"summary"`` stands for all the named
ones, ``"describe"`` for count, mean, stddev, min and max; ``"95%"`` is a percentile).
Over the present values of a column (NaN and the values of ``abnormal_list`` are missing):

- ``count`` present values, ``sum``, ``mean``, ``min``, ``max``;
- ``variance`` the population one (second central moment), ``stddev`` its square root;
- ``skewness`` m3 / m2^1.5 and ``kurtosis`` the excess m4 / m2^2 - 3 (0 for a constant
  column); with ``bias: false`` both get the usual sample corrections (as scipy's
  ``bias=False``);
- ``coefficient_of_variance`` |stddev / mean|, a mean nearer 0 than 1e-8 taken as 1e-8;
- ``median`` and ``"q%"`` the sample value at rank ceil(q * count) (FATE's quantile
  summary answers with a sample value; here the answer is exact, within any
  ``quantile_error``);
- ``missing_count`` and ``missing_ratio`` over all rows.

The model holds, per column, every asked statistic (``statistics_result``); the same
values go to the tracker under ``statistics``. HeteroFeatureSelection reads this model
as ``isometric_model`` for its statistic filters.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Sequence

import numpy as np
from pydantic import Field, field_validator

from components.base import Component, Context, Dataset, Inputs, Outputs, Params
from components.feature.common import gather_matrix, pick_columns
from flow.core.errors import ComponentError

#: what ``statistics: "summary"`` computes
SUMMARY = ("count", "sum", "mean", "stddev", "variance", "min", "max", "median", "missing_count",
           "missing_ratio", "skewness", "kurtosis", "coefficient_of_variance")
#: what ``statistics: "describe"`` computes
DESCRIBE = ("count", "mean", "stddev", "min", "max")
#: names other modules use for the same statistic
ALIASES = {"std": "stddev", "standard_deviation": "stddev", "var": "variance"}
FLOAT_ZERO = 1e-8
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


def percentile_of(name: str) -> float | None:
    """``"95%"`` -> 0.95; None when ``name`` is not a percentile (or lies outside 0..100%)."""
    match = _PERCENT.match(name.strip())
    if not match:
        return None
    q = float(match.group(1)) / 100
    return q if 0.0 <= q <= 1.0 else None


def canonical(name: str) -> str:
    """One spelling per statistic (``std`` -> ``stddev``, ``95.0%`` -> ``95%``), to match
    a filter's metric with a statistics model's entry."""
    q = percentile_of(name)
    if q is not None:
        return f"{q * 100:g}%"
    return ALIASES.get(name, name)


def expand(statistics: str | Sequence[str]) -> list[str]:
    """The statistic names a ``statistics`` setting stands for, in order, without repeats."""
    names: list[str] = []
    for name in [statistics] if isinstance(statistics, str) else statistics:
        group = {"summary": SUMMARY, "describe": DESCRIBE}.get(name, (name,))
        names.extend(n for n in group if n not in names)
    return names


def sample_quantile(values: np.ndarray, q: float) -> float:
    """The sample value at rank ceil(q * n) of the present values (the smallest for q = 0)."""
    v = np.sort(values[~np.isnan(values)])
    if not len(v):
        return math.nan
    return float(v[min(len(v), max(1, math.ceil(q * len(v) - 1e-12))) - 1])


def compute(x: np.ndarray, names: Sequence[str], bias: bool = True) -> dict[str, np.ndarray]:
    """Each named statistic of every column of ``x`` (rows x columns, NaN = missing)."""
    rows = len(x)
    n = (~np.isnan(x)).sum(0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column gives NaN, not a warning
        mean = np.nansum(x, 0) / n
        centred = x - mean
        m2, m3, m4 = (np.nanmean(centred ** k, 0) for k in (2, 3, 4))
        flat = ~(m2 > 0)
        safe = np.where(flat, 1.0, m2)
        skew = np.where(flat, 0.0, m3 / safe ** 1.5)
        kurt = np.where(flat, 0.0, m4 / safe ** 2 - 3.0)
        if not bias:
            skew = np.where(n > 2, skew * np.sqrt(n * (n - 1)) / (n - 2), skew)
            kurt = np.where(n > 3, ((n + 1) * kurt + 6) * (n - 1) / ((n - 2) * (n - 3)), kurt)
        std = np.sqrt(m2)
        base = {
            "count": n, "sum": np.nansum(x, 0), "mean": mean, "variance": m2, "stddev": std,
            "min": np.nanmin(x, 0) if rows else np.full(x.shape[1], np.nan),
            "max": np.nanmax(x, 0) if rows else np.full(x.shape[1], np.nan),
            "skewness": skew, "kurtosis": kurt,
            "coefficient_of_variance": np.abs(std / np.where(np.abs(mean) < FLOAT_ZERO, FLOAT_ZERO, mean)),
            "missing_count": rows - n, "missing_ratio": (rows - n) / max(rows, 1),
        }
    out: dict[str, np.ndarray] = {}
    for name in names:
        key = canonical(name)
        q = 0.5 if key == "median" else percentile_of(key)
        if q is not None:
            out[name] = np.array([sample_quantile(x[:, j], q) for j in range(x.shape[1])])
        elif key in base:
            out[name] = np.asarray(base[key], dtype=float)
        else:
            raise ComponentError(f"statistic '{name}' unknown (use {', '.join(SUMMARY)} or a percentile like '95%')")
    return out


def _plain(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


class DataStatisticsParams(Params):
    statistics: str | list[str] = "summary"
    column_names: list[str] | None = None
    column_indexes: int | list[int] = -1
    abnormal_list: list[str | int | float] | None = None
    quantile_error: float = Field(1e-4, ge=0, lt=1)
    bias: bool = True

    @field_validator("statistics")
    @classmethod
    def _known(cls, value: str | list[str]) -> str | list[str]:
        bad = [n for n in expand(value)
               if canonical(n) not in SUMMARY and canonical(n) != "median" and percentile_of(n) is None]
        if bad:
            raise ValueError(f"statistics {bad} unknown (use summary, describe, {', '.join(SUMMARY)} "
                             "or a percentile like '95%')")
        return value


def _abnormal(values: list[str | int | float] | None) -> np.ndarray:
    """The numeric entries of ``abnormal_list`` (others, like "NA", are already missing)."""
    found = []
    for v in values or []:
        try:
            found.append(float(v))
        except ValueError:
            continue
    return np.asarray([v for v in found if not math.isnan(v)], dtype=float)


class DataStatistics(Component):
    module = "DataStatistics"
    params_model = DataStatisticsParams
    roles = ("guest", "host")
    output_model = True

    def guest(self, ctx: Context, p: DataStatisticsParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        header = data.meta.feature_columns
        cols = pick_columns(ctx.component, header, p.column_indexes, p.column_names, "column_indexes", "column_names")
        _, x, _ = gather_matrix(data.table, cols)
        if not len(x):
            raise ComponentError(f"{ctx.component}: input table {data.meta.name} is empty")
        abnormal = _abnormal(p.abnormal_list)
        if len(abnormal):
            x = np.where(np.isin(x, abnormal), np.nan, x)
        names = expand(p.statistics)
        stats = compute(x, names, p.bias)
        columns = [header[c] for c in cols]
        result = {col: {name: _plain(stats[name][j]) for name in names} for j, col in enumerate(columns)}
        for name in names:
            ctx.tracker.log_metric("statistics", name, {col: result[col][name] for col in columns})
        ctx.logger.info("%d statistics of %d columns over %d rows", len(names), len(columns), len(x))
        model = {"role": ctx.role, "header": header, "columns": columns, "statistics": names, "rows": len(x),
                 "bias": p.bias, "abnormal_list": list(p.abnormal_list or []), "statistics_result": result}
        return Outputs(data=[Dataset(data.table, data.meta)], model=model)

    host = guest


def model_value(model: dict, column: str, name: str) -> float | None:
    """A statistic of a DataStatistics model (None where it was not computed or is not finite);
    a filter's spelling of the name (``std``, ``95.0%``) matches the model's."""
    entry = model.get("statistics_result", {}).get(column)
    if not entry:
        return None
    key = canonical(name)
    for stored, value in entry.items():
        if canonical(stored) == key:
            return None if value is None else float(value)
    return None
