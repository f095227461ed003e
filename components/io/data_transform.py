"""DataTransform: raw stored rows -> Instances (float features, optional label).

``input_format`` dense (columns), or FATE's ``sparse``/``svmlight`` (``index:value``
tokens -> a dense vector of max index + 1) and ``tag`` (one column per tag seen: 1.0, or
its value with ``tag_with_value``) over the raw lines FATE's upload stores (see
``components/io/formats.py``). ``output_format: sparse`` is accepted and stored dense:
the values are the same, so every downstream result is too (told as a notice).

A dense value that is not a number, or a missing label, stops the task with the row id
and column. A missing feature value is NaN, as in FATE (for use_missing, imputation or
binning downstream), unless ``missing_fill`` asks for imputation (a value or the column mean).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params, instances_meta
from components.io import formats
from flow.core.errors import ComponentError

MISSING = {"", "na", "nan", "null", "none"}


class DataTransformParams(Params):
    input_format: Literal["dense", "sparse", "tag", "svmlight"] = "dense"
    delimitor: str = ","
    data_type: str = "float64"
    with_label: bool = False
    label_name: str = "y"
    label_type: Literal["int", "float"] = "int"
    output_format: Literal["dense", "sparse"] = "dense"
    missing_fill: bool = False
    missing_fill_method: Literal["designated", "mean"] | None = None
    default_value: float = 0.0
    missing_impute: list[Any] | None = None
    outlier_replace: bool = False
    with_match_id: bool = False
    exclusive_data_type: dict[str, Any] | None = None
    tag_with_value: bool = False
    tag_value_delimitor: str = ":"
    match_id_name: str | None = None

    def notices(self) -> dict[str, str]:
        found = super().notices()
        if self.output_format == "sparse":
            found["output_format"] = ("sparse is stored as dense vectors (absent entries 0.0): the same "
                                      "values, so downstream results are identical")
        return found


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
                if v is None and i == label_idx:
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
        model = inputs.model[0] if inputs.model else None
        fmt = (model or {}).get("input_format") or (params.input_format if model is None else "dense")
        if fmt != "dense":
            return self._from_tokens(ctx, params, source, model, fmt)
        if source.meta.extra.get("kind") == "lines":  # a headerless dense file, stored as FATE does
            header = source.meta.extra.get("header")
            cells = source.table.map_values(formats.dense_cells(params.delimitor))
            names = header.split(params.delimitor) if header else [
                f"x{i}" for i in range(len(cells.first()[1]))]
            source = Dataset(cells, source.meta.model_copy(update={
                "columns": [n.strip() for n in names], "dtypes": ["string"] * len(names)}))
        meta = source.meta
        names = list(meta.columns)
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
        fill_values = np.full(len(feat_idx), params.default_value if fill else np.nan)
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

    def _from_tokens(self, ctx: Context, params: DataTransformParams, source: Dataset, model: dict | None,
                     fmt: str) -> Outputs:
        """sparse / svmlight / tag lines -> Instances; the feature space (max index, tag list)
        from this table when training, from the stored model when predicting."""
        meta, table_name = source.meta, f"{source.meta.namespace}/{source.meta.name}"
        delim = params.delimitor
        if model is not None:
            with_label, label_name = bool(model.get("with_label")), model.get("label_name")
            with_value, tag_delim = bool(model.get("tag_with_value")), model.get("tag_value_delimitor") or ":"
            header = list(model["header"])
        else:
            with_label, label_name = params.with_label, params.label_name
            with_value, tag_delim = params.tag_with_value, params.tag_value_delimitor
        whitespace = fmt == "svmlight"
        if model is None:
            if fmt == "tag":
                parts = source.table.apply_partitions(formats.tag_set(delim, with_label, with_value, tag_delim))
                header = sorted(set().union(*(p[0] for p in parts)))
            else:
                parts = source.table.apply_partitions(formats.max_index(delim, with_label, whitespace))
                header = [str(i) for i in range(max([p[0] for p in parts], default=-1) + 1)]
            problems = [p[1] for p in parts if p[1]]
            if problems:
                key, tok, what = problems[0]
                raise ComponentError(f"{ctx.component}: table {table_name} row id={key} ({fmt} input): "
                                     f"token {tok!r} {what}")
            if not header:
                raise ComponentError(f"{ctx.component}: table {table_name} has no features ({fmt} input)")
        if fmt == "tag":
            convert = formats.tag_instance(delim, with_label, with_value, tag_delim, header, params.label_type)
        else:
            convert = formats.sparse_instance(delim, with_label, whitespace, len(header), params.label_type)
        try:
            table = source.table.map_values(convert)
        except ValueError as exc:
            raise ComponentError(f"{ctx.component}: table {table_name} ({fmt} input): {exc}") from exc
        label = label_name if with_label else None
        out_meta = instances_meta(meta, header, label)
        ctx.logger.info("%d rows, %d features (%s input)%s", meta.count, len(header), fmt,
                        f", label '{label}'" if label else "")
        if model is None:
            model = {"header": header, "with_label": with_label, "label_name": label, "fill_values": None,
                     "input_format": fmt, "tag_with_value": with_value, "tag_value_delimitor": tag_delim}
        return Outputs(data=[Dataset(table, out_meta)], model=model)

    guest = host = _transform
