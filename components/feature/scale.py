"""FeatureScale: min-max or standard scaling, fitted by each party on its own columns."""

from __future__ import annotations

from typing import Literal

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params
from flow.core.errors import ComponentError


class FeatureScaleParams(Params):
    method: Literal["min_max_scale", "standard_scale"] = "standard_scale"
    mode: Literal["normal", "cap"] = "normal"
    scale_col_indexes: int | list[int] = -1
    scale_names: list[str] | None = None
    feat_upper: float | list[float] | None = None
    feat_lower: float | list[float] | None = None
    with_mean: bool = True
    with_std: bool = True


def _moments(part):
    if not part:
        return None
    x = np.stack([inst.features for _, inst in part])
    return len(x), x.sum(0), (x * x).sum(0), x.min(0), x.max(0)


def _apply(shift: np.ndarray, scale: np.ndarray, cols: np.ndarray, lower, upper):
    def transform(inst: Instance) -> Instance:
        f = inst.features.copy()
        v = f[cols]
        if lower is not None:
            v = np.clip(v, lower, upper)
        f[cols] = (v - shift) / scale
        return Instance(f, inst.label)
    return transform


class FeatureScale(Component):
    module = "FeatureScale"
    params_model = FeatureScaleParams
    roles = ("guest", "host")
    accepts_model = True
    output_model = True

    def _scale(self, ctx: Context, params: FeatureScaleParams, inputs: Inputs) -> Outputs:
        source = inputs.require(ctx.component)
        header = source.meta.feature_columns
        if inputs.model:  # a predict job: the stored shift and scale
            return self._with_model(ctx, inputs.model[0], source)
        cols = self._columns(ctx, params, header)
        stats = [s for s in source.table.apply_partitions(_moments) if s is not None]
        if not stats:
            raise ComponentError(f"{ctx.component}: input table is empty")
        n = sum(s[0] for s in stats)
        total, sq = sum(s[1] for s in stats), sum(s[2] for s in stats)
        lo, hi = np.min([s[3] for s in stats], 0), np.max([s[4] for s in stats], 0)
        lower = upper = None
        if params.method == "min_max_scale":
            if params.mode == "cap" and params.feat_lower is not None:
                lower = np.broadcast_to(np.asarray(params.feat_lower, float), cols.shape)
                upper = np.broadcast_to(np.asarray(params.feat_upper if params.feat_upper is not None else hi[cols],
                                                   float), cols.shape)
                lo_c, hi_c = lower, upper
            else:
                lo_c, hi_c = lo[cols], hi[cols]
            shift, scale = lo_c, hi_c - lo_c
        else:
            mean = total / n
            std = np.sqrt(np.maximum(sq / n - mean * mean, 0.0))
            shift = mean[cols] if params.with_mean else np.zeros(len(cols))
            scale = std[cols] if params.with_std else np.ones(len(cols))
        scale = np.where(scale > 0, scale, 1.0)  # constant columns are only shifted
        table = source.table.map_values(_apply(shift, scale, cols, lower, upper))
        ctx.logger.info("%s on %d of %d columns over %d rows", params.method, len(cols), len(header), n)
        model = {"method": params.method, "header": header, "columns": [header[i] for i in cols],
                 "shift": shift, "scale": scale, "lower": lower, "upper": upper}
        return Outputs(data=[Dataset(table, source.meta)], model=model)

    @staticmethod
    def _with_model(ctx: Context, model: dict, source: Dataset) -> Outputs:
        header = list(source.meta.feature_columns)
        if header != list(model["header"]):
            raise ComponentError(f"{ctx.component}: input columns {header} differ from the model's "
                                 f"{list(model['header'])}")
        cols = np.asarray([header.index(c) for c in model["columns"]], dtype=int)
        lower, upper = model.get("lower"), model.get("upper")
        table = source.table.map_values(_apply(np.asarray(model["shift"], dtype=float),
                                               np.asarray(model["scale"], dtype=float), cols, lower, upper))
        ctx.logger.info("%s with the stored model on %d of %d columns", model["method"], len(cols), len(header))
        return Outputs(data=[Dataset(table, source.meta)], model=model)

    @staticmethod
    def _columns(ctx: Context, params: FeatureScaleParams, header: list[str]) -> np.ndarray:
        if params.scale_names:
            missing = [c for c in params.scale_names if c not in header]
            if missing:
                raise ComponentError(f"{ctx.component}: scale_names {missing} not among columns {header}")
            return np.asarray([header.index(c) for c in params.scale_names])
        idx = params.scale_col_indexes
        if idx == -1:
            return np.arange(len(header))
        idx = [idx] if isinstance(idx, int) else idx
        bad = [i for i in idx if not 0 <= i < len(header)]
        if bad:
            raise ComponentError(f"{ctx.component}: scale_col_indexes {bad} out of range 0..{len(header) - 1}")
        return np.asarray(idx)

    guest = host = _scale
