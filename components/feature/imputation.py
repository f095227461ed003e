"""FeatureImputation: replace missing values per column, each party on its own columns.

A value is missing when it is NaN or one of ``missing_impute``. The fill value of a
column is its min, max, mean or median over the present values (``missing_fill_method``,
per column in ``col_missing_fill_method``), or ``default_value`` ("designated", or no
method): one number, a list (one per column) or a dict by column name. The model keeps
the fill value and the missing count of every column, so a predict job fills the same.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params
from components.feature.common import gather_matrix
from flow.core.errors import ComponentError

Method = Literal["min", "max", "mean", "median", "designated"]


class FeatureImputationParams(Params):
    default_value: float | list[float] | dict[str, float] = 0
    missing_fill_method: Method | None = None
    col_missing_fill_method: dict[str, Method] | None = None
    missing_impute: list[Any] | None = None


#: method -> fill value of a column's present values (masked array)
FILLERS: dict[str, Callable[[np.ndarray], float]] = {
    "min": np.min, "max": np.max, "mean": np.mean, "median": np.median,
}


def missing_values(items: list[Any] | None) -> np.ndarray:
    """The numeric entries of ``missing_impute`` (others, e.g. "NA", are NaN by the time data gets here)."""
    out = []
    for v in items or []:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            continue
    return np.asarray([v for v in out if not np.isnan(v)], dtype=float)


def missing_mask(x: np.ndarray, extra: np.ndarray) -> np.ndarray:
    return np.isnan(x) | np.isin(x, extra)


def _fill(fill: np.ndarray, extra: np.ndarray):
    def f(inst: Instance) -> Instance:
        feats = inst.features
        mask = missing_mask(feats, extra)
        if not mask.any():
            return inst
        return Instance(np.where(mask, fill, feats), inst.label)
    return f


class FeatureImputation(Component):
    module = "FeatureImputation"
    params_model = FeatureImputationParams
    roles = ("guest", "host")
    accepts_model = True
    output_model = True

    def _run(self, ctx: Context, p: FeatureImputationParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        header = data.meta.feature_columns
        if inputs.model:  # transform with a stored model (predict)
            model: dict[str, Any] = dict(inputs.model[0])
            missing = [c for c in header if c not in model["fill_values"]]
            if missing:
                raise ComponentError(f"{ctx.component}: the model has no fill value for columns {missing}")
            fill = np.array([model["fill_values"][c] for c in header], dtype=float)
            extra = np.asarray(model["missing_impute"], dtype=float)
        else:
            extra = missing_values(p.missing_impute)
            fill, counts = self._fit(ctx, p, data, header, extra)
            model = {"header": header, "missing_fill_method": p.missing_fill_method,
                     "col_missing_fill_method": p.col_missing_fill_method or {},
                     "missing_impute": extra.tolist(), "fill_values": dict(zip(header, fill.tolist())),
                     "missing_count": dict(zip(header, counts.tolist()))}
            ctx.tracker.log_metric("imputation", "missing_count", model["missing_count"])
        table = data.table.map_values(_fill(fill, extra))
        return Outputs(data=[Dataset(table, data.meta)], model=model)

    guest = host = _run

    @staticmethod
    def _fit(ctx: Context, p: FeatureImputationParams, data: Dataset, header: list[str],
             extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_col = dict(p.col_missing_fill_method or {})
        unknown = [c for c in per_col if c not in header]
        if unknown:
            raise ComponentError(f"{ctx.component}: col_missing_fill_method names columns {unknown} "
                                 f"not among {header}")
        default = FeatureImputation._defaults(ctx, p.default_value, header)
        _, x, _ = gather_matrix(data.table)
        if not len(x):
            raise ComponentError(f"{ctx.component}: input table {data.meta.name} is empty")
        mask = missing_mask(x, extra)
        fill = default.copy()
        for j, name in enumerate(header):
            method = per_col.get(name, p.missing_fill_method)
            present = x[~mask[:, j], j]
            if method in FILLERS:
                if len(present):
                    fill[j] = float(FILLERS[method](present))
                else:
                    ctx.logger.warning("column %s has no present value; filled with default_value", name)
        return fill, mask.sum(0)

    @staticmethod
    def _defaults(ctx: Context, value, header: list[str]) -> np.ndarray:
        if isinstance(value, dict):
            unknown = [c for c in value if c not in header]
            if unknown:
                raise ComponentError(f"{ctx.component}: default_value names columns {unknown} not among {header}")
            return np.array([float(value.get(c, 0.0)) for c in header])
        if isinstance(value, list):
            if len(value) != len(header):
                raise ComponentError(f"{ctx.component}: default_value has {len(value)} values for "
                                     f"{len(header)} columns")
            return np.asarray(value, dtype=float)
        return np.full(len(header), float(value))
