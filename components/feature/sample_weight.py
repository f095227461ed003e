"""SampleWeight: give every row a weight, by its class or from a column (FATE's SampleWeight).

As in FATE:

* ``class_weight`` ``"balanced"``: a row of class c weighs ``n / (k · n_c)`` (n rows, k
  classes, n_c rows of class c); a dict ``{"0": 1, "1": 2}`` gives the weight per label,
  1 for a label it does not name. It needs the labels, so it runs on the guest; a host
  sets ``need_run`` false (its data is handed on unchanged).
* ``sample_weight_name``: the weight is that column, which leaves the features; with
  ``normalize`` it is divided by the column's mean. It wins over ``class_weight``.
* neither: the data is handed on unchanged.

Output rows carry the weight (stored as a last column, ``weight``). Models that use it
declare ``uses_sample_weight`` (HeteroLR, HeteroLinR); any other component that receives
weighted data logs that it ignores them and marks its output unweighted
(``components.base.drop_sample_weights``). The model keeps the class weights that were
applied, so a predict job weights its rows the same way.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from components.base import (
    SAMPLE_WEIGHT,
    Component,
    Context,
    Dataset,
    Inputs,
    Instance,
    Outputs,
    Params,
    instances_meta,
)
from flow.core.errors import ComponentError


class SampleWeightParams(Params):
    class_weight: Literal["balanced"] | dict[str, float] | None = None
    sample_weight_name: str | None = None
    normalize: bool = False

    @model_validator(mode="after")
    def _labels_are_numbers(self) -> SampleWeightParams:
        for key in self.class_weight if isinstance(self.class_weight, dict) else ():
            try:
                float(key)
            except ValueError:
                raise PydanticCustomError("class_weight", "class_weight key '{key}' is not a label (labels "
                                          "are numbers)", {"key": key}) from None
        return self

    def notices(self) -> dict[str, str]:
        found = super().notices()
        if self.normalize and self.sample_weight_name is None:
            found["normalize"] = "FATE normalises only the weights of sample_weight_name; class weights are kept"
        if self.sample_weight_name is not None and self.class_weight is not None:
            found["class_weight"] = "not used: sample_weight_name is set, its column gives the weights (as FATE)"
        return found


def class_counts(part: list) -> dict[float, int]:
    counts: dict[float, int] = {}
    for _, inst in part:
        counts[inst.label] = counts.get(inst.label, 0) + 1
    return counts


def balanced_weights(counts: dict[float, int]) -> dict[float, float]:
    """n / (k · n_c) per class (sklearn's and FATE's "balanced")."""
    n, k = sum(counts.values()), len(counts)
    return {label: n / (k * c) for label, c in counts.items()}


def by_class(weights: dict[float, float]):
    """Instance -> the same row weighted by its class (1 for a class without a weight)."""
    def f(inst: Instance) -> Instance:
        return Instance(inst.features, inst.label, float(weights.get(float(inst.label), 1.0)))
    return f


def by_column(loc: int, base: float | None):
    """Instance -> the row without column ``loc``, weighted by it (divided by ``base``)."""
    def f(inst: Instance) -> Instance:
        w = float(inst.features[loc])
        return Instance(np.delete(inst.features, loc), inst.label, w / base if base else w)
    return f


def column_sum(loc: int):
    def f(part: list) -> float:
        return float(sum(inst.features[loc] for _, inst in part))
    return f


def negative(part: list) -> bool:
    return any(inst.weight is not None and inst.weight < 0 for _, inst in part)


class SampleWeight(Component):
    module = "SampleWeight"
    params_model = SampleWeightParams
    roles = ("guest", "host")
    input_data = ("data",)
    accepts_model = True
    output_model = True
    #: it sets the weights
    uses_sample_weight = True

    def guest(self, ctx: Context, p: SampleWeightParams, inputs: Inputs) -> Outputs:
        return self._weigh(ctx, p, inputs)

    def host(self, ctx: Context, p: SampleWeightParams, inputs: Inputs) -> Outputs:
        if p.sample_weight_name is None and p.class_weight is not None:
            raise ComponentError(f"{ctx.component} on host {ctx.local.party_id}: class_weight needs the labels, "
                                 "which only the guest holds; set need_run false for the host")
        return self._weigh(ctx, p, inputs)

    def _weigh(self, ctx: Context, p: SampleWeightParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        model = inputs.model[0] if inputs.model else None
        name = model.get("sample_weight_name") if model else p.sample_weight_name
        classes = model.get("class_weight") if model else p.class_weight
        header = list(data.meta.feature_columns)
        where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
        record: dict[str, Any] = {"sample_weight_name": name, "normalize": p.normalize, "class_weight": None}
        if name is not None:
            if name not in header:
                raise ComponentError(f"{where}: sample_weight_name '{name}' is not a column of the input "
                                     f"(columns: {header})")
            loc = header.index(name)
            base = None
            if p.normalize:
                total = sum(data.table.apply_partitions(column_sum(loc)))
                base = total / max(data.table.count(), 1)
            table, header = data.table.map_values(by_column(loc, base)), header[:loc] + header[loc + 1:]
        elif classes is not None:
            if data.meta.label_column is None:
                raise ComponentError(f"{where}: class_weight needs labels, but the input has none "
                                     "(set with_label in DataTransform)")
            if classes == "balanced":
                counts: dict[float, int] = {}
                for part in data.table.apply_partitions(class_counts):
                    for label, c in part.items():
                        counts[label] = counts.get(label, 0) + c
                weights = balanced_weights(counts)
            else:
                weights = {float(k): float(v) for k, v in classes.items()}
            record["class_weight"] = {_label_text(k): v for k, v in sorted(weights.items())}
            ctx.tracker.log_metric("sample_weight", "class_weight", record["class_weight"])
            table = data.table.map_values(by_class(weights))
        else:
            ctx.logger.info("neither class_weight nor sample_weight_name is set: the data is handed on unweighted")
            return Outputs(data=[data], model=record)
        if any(table.apply_partitions(negative)):
            ctx.logger.warning("%s: some sample weights are negative", where)
        column = next(c for c in ("weight", "sample_weight", "weight_") if c not in header + [data.meta.label_column])
        meta = instances_meta(data.meta, header, data.meta.label_column, **{SAMPLE_WEIGHT: column})
        return Outputs(data=[Dataset(table, meta)], model=record)


def _label_text(label: float) -> str:
    return str(int(label)) if float(label).is_integer() else str(label)
