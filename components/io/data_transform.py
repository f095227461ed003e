"""DataTransform: raw stored rows -> Instances (float features, optional label).

Dense input only. A value that is missing or not a number stops the task with the row
id and column, unless ``missing_fill`` asks for imputation (a value or the column mean).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params, instances_meta
from flow.core.errors import ComponentError

MISSING = {"", "na", "nan", "null", "none"}


class DataTransformParams(Params):
    input_format: Literal["dense"] = "dense"
    delimitor: str = ","
    data_type: str = "float64"
    with_label: bool = False
    label_name: str = "y"
    label_type: Literal["int", "float"] = "int"
    output_format: Literal["dense"] = "dense"
    missing_fill: bool = False
    missing_fill_method: Literal["designated", "mean"] | None = None
    default_value: float = 0.0
    missing_impute: list[Any] | None = None
    outlier_replace: bool = False
    with_match_id: bool = False
    exclusive_data_type: dict[str, Any] | None = None
    tag_with_value: bool = False


def _parse(value: Any) -> float | None:
    """A float, or None when the value counts as missing; raises ValueError if not numeric."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    text = str(value).strip()
    if text.lower() in MISSING:
        return None
    return float(text)


def _first_problem(label_idx: int | None, feat_idx: list[int], names: list[str], fill: bool):
    def check(part):
        for key, row in part:
            for i in ([label_idx] if label_idx is not None else []) + feat_idx:
                try:
                    v = _parse(row[i])
                except ValueError:
                    return (key, names[i], row[i], "is not a number")
                if v is None and (i == label_idx or not fill):
                    return (key, names[i], row[i], "is missing")
        return None
    return check


def _column_sums(feat_idx: list[int]):
    def sums(part):
        total, count = np.zeros(len(feat_idx)), np.zeros(len(feat_idx))
        for _, row in part:
            for j, i in enumerate(feat_idx):
                v = _parse(row[i])
                if v is not None:
                    total[j] += v
                    count[j] += 1
        return total, count
    return sums


def _to_instance(label_idx: int | None, feat_idx: list[int], fill_values: np.ndarray):
    def convert(row) -> Instance:
        feats = np.empty(len(feat_idx))
        for j, i in enumerate(feat_idx):
            v = _parse(row[i])
            feats[j] = fill_values[j] if v is None else v
        return Instance(feats, None if label_idx is None else _parse(row[label_idx]))
    return convert


class DataTransform(Component):
    module = "DataTransform"
    params_model = DataTransformParams
    roles = ("guest", "host")
    accepts_model = True
    output_model = True

    @staticmethod
    def _columns(ctx: Context, params: DataTransformParams, names: list[str], table: str
                 ) -> tuple[int | None, list[int]]:
        """(label index, feature indexes) as the params say (training)."""
        label_idx = None
        if params.with_label:
            if params.label_name not in names:
                raise ComponentError(f"{ctx.component}: label column '{params.label_name}' not in table "
                                     f"{table} (columns: {', '.join(names)})")
            label_idx = names.index(params.label_name)
        return label_idx, [i for i in range(len(names)) if i != label_idx]

    @staticmethod
    def _model_columns(ctx: Context, model: dict, names: list[str], table: str) -> tuple[int | None, list[int]]:
        """(label index, feature indexes) as a stored model says (predict): the model's features
        in its order; the label when the table has it (new rows may come without)."""
        missing = [c for c in model["header"] if c not in names]
        if missing:
            raise ComponentError(f"{ctx.component}: table {table} lacks the model's feature columns "
                                 f"{missing} (columns: {', '.join(names)})")
        label = model.get("label_name") if model.get("with_label") else None
        return (names.index(label) if label in names else None), [names.index(c) for c in model["header"]]

    def _transform(self, ctx: Context, params: DataTransformParams, inputs: Inputs) -> Outputs:
        source = inputs.require(ctx.component)
        meta = source.meta
        names = list(meta.columns)
        model = inputs.model[0] if inputs.model else None
        table_name = f"{meta.namespace}/{meta.name}"
        if model is None:
            label_idx, feat_idx = self._columns(ctx, params, names, table_name)
            fill, label_name = params.missing_fill, params.label_name
        else:
            label_idx, feat_idx = self._model_columns(ctx, model, names, table_name)
            fill, label_name = model.get("fill_values") is not None, model.get("label_name")
        features = [names[i] for i in feat_idx]
        problems = [p for p in source.table.apply_partitions(_first_problem(label_idx, feat_idx, names, fill)) if p]
        if problems:
            key, col, value, what = problems[0]
            raise ComponentError(f"{ctx.component}: table {meta.namespace}/{meta.name} row id={key} "
                                 f"column '{col}': value {value!r} {what}")
        fill_values = np.full(len(feat_idx), params.default_value)
        if model is not None and fill:
            fill_values = np.asarray(model["fill_values"], dtype=float)
        elif fill and params.missing_fill_method == "mean":
            parts = source.table.apply_partitions(_column_sums(feat_idx))
            total = sum(p[0] for p in parts)
            count = sum(p[1] for p in parts)
            fill_values = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        table = source.table.map_values(_to_instance(label_idx, feat_idx, fill_values))
        label = label_name if label_idx is not None else None
        out_meta = instances_meta(meta, features, label)
        ctx.logger.info("%d rows, %d features%s%s", meta.count, len(features), f", label '{label}'" if label else "",
                        " (stored model)" if model else "")
        if model is None:
            model = {"header": features, "with_label": params.with_label,
                     "label_name": params.label_name if params.with_label else None,
                     "fill_values": fill_values if fill else None}
        return Outputs(data=[Dataset(table, out_meta)], model=model)

    guest = host = _transform
