"""LabelTransform: replace the guest's labels by designated values (FATE's LabelTransform).

As in FATE 1.x:

* ``label_encoder`` ``{old: new}`` gives the new value of each label; without it the labels
  seen are sorted and encoded as 0, 1, 2, ... A label the encoder does not name stops the
  task, naming it. ``label_list`` only tells FATE the types of the encoder's (JSON string)
  keys; labels here are numbers, so a key is read as a number either way, and the list must
  have as many entries as the encoder has keys.
* On data it encodes the labels (sample weights kept). On a model's prediction output it
  encodes the true label, ``predict_result`` and the ``predict_detail_<class>`` columns' classes.
* With ``input.model`` (an earlier LabelTransform's model: a second one after a model in a
  training DSL, or any of them in a predict job) the stored encoder is applied: forwards on
  data, inverted on prediction output, so predictions come back in the original labels.

Only the guest holds labels: on a host the data is handed on unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params, detail_columns
from flow.core.errors import ComponentError

DETAIL = "predict_detail_"


class LabelTransformParams(Params):
    label_encoder: dict[str, Any] | None = None
    label_list: list[Any] | None = None

    @model_validator(mode="after")
    def _numbers(self) -> LabelTransformParams:
        for key, value in (self.label_encoder or {}).items():
            for what, v in (("key", key), ("value", value)):
                if isinstance(v, bool) or _number(v) is None:
                    raise PydanticCustomError("label_encoder", "not supported: LabelTransform label_encoder {w} "
                                              "{v} (labels are numbers: DataTransform label_type int/float)",
                                              {"w": what, "v": repr(v)})
        for v in self.label_list or ():
            if isinstance(v, bool) or _number(v) is None:
                raise PydanticCustomError("label_list", "not supported: LabelTransform label_list value {v} "
                                          "(labels are numbers)", {"v": repr(v)})
        if self.label_list is not None and self.label_encoder and len(self.label_list) != len(self.label_encoder):
            raise PydanticCustomError("label_list", "label_list length should match label_encoder key count "
                                      "({n} keys, {m} labels)", {"n": len(self.label_encoder),
                                                                  "m": len(self.label_list)})
        return self


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def label_text(label: float) -> str:
    return str(int(label)) if float(label).is_integer() else str(label)


def _map(encoder: dict[float, float], value: float | None) -> float | None:
    return None if value is None else encoder[float(value)]


def encode_labels(encoder: dict[float, float]):
    """Instance -> the same row with its label encoded; picklable."""
    def f(inst: Instance) -> Instance:
        return Instance(inst.features, _map(encoder, inst.label), inst.weight)
    return f


def encode_predictions(encoder: dict[float, float], result_at: int):
    """Prediction Instance -> true label and predict_result encoded (the detail columns keep
    their place; their names are renamed in the meta)."""
    def f(inst: Instance) -> Instance:
        feats = np.array(inst.features, dtype=float)
        feats[result_at] = _map(encoder, feats[result_at])
        return Instance(feats, _map(encoder, inst.label), inst.weight)
    return f


def labels_seen(part: list) -> set[float]:
    return {float(inst.label) for _, inst in part if inst.label is not None}


def results_seen(result_at: int):
    def f(part: list) -> set[float]:
        return {float(inst.features[result_at]) for _, inst in part} | labels_seen(part)
    return f


class LabelTransform(Component):
    module = "LabelTransform"
    params_model = LabelTransformParams
    roles = ("guest", "host")
    input_data = ("data",)
    accepts_model = True
    output_model = True
    #: it keeps each row's weight
    uses_sample_weight = True

    def host(self, ctx: Context, p: LabelTransformParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        ctx.logger.info("a host holds no labels: its data is handed on unchanged")
        return Outputs(data=[data], model=inputs.model[0] if inputs.model else {"label_encoder": None})

    def guest(self, ctx: Context, p: LabelTransformParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        where = f"{ctx.component} on guest {ctx.local.party_id}"
        cols = list(data.meta.feature_columns)
        predictions = "predict_result" in cols and "predict_score" in cols  # a model's prediction output
        if data.meta.label_column is None and not predictions:
            raise ComponentError(f"{where}: the input has no labels (set with_label in DataTransform)")
        result_at = cols.index("predict_result") if predictions else -1
        if inputs.model:
            encoder = self._stored(ctx, inputs.model[0])
            applied = {v: k for k, v in encoder.items()} if predictions else encoder  # FATE: later key wins
        else:
            if p.label_encoder is not None:
                encoder = {float(k): float(v) for k, v in p.label_encoder.items()}
            else:
                seen = data.table.apply_partitions(results_seen(result_at) if predictions else labels_seen)
                labels = sorted(set().union(*seen))
                encoder = {label: float(i) for i, label in enumerate(labels)}
            applied = encoder
        pairs = {label_text(k): label_text(v) for k, v in applied.items()}
        ctx.tracker.log_metric("train", "label_encoder", pairs)
        ctx.logger.info("%s: %s labels %s", where, "decoding predicted" if predictions and inputs.model
                        else "encoding", pairs)
        if inputs.model or p.label_encoder is not None:  # FATE stops on a label its encoder does not name
            seen = set().union(*data.table.apply_partitions(results_seen(result_at) if predictions else labels_seen))
            unknown = sorted(seen - set(applied))
            if unknown:
                raise ComponentError(f"{where}: {'predicted ' if predictions else ''}label(s) "
                                     f"{[label_text(v) for v in unknown]} not found in the label encoder {pairs}")
        fn = encode_predictions(applied, result_at) if predictions else encode_labels(applied)
        table = data.table.map_values(fn)
        meta = data.meta
        if predictions:
            meta = meta.model_copy(update={"columns": self._renamed(where, meta.columns, applied)})
        model = {"label_encoder": {label_text(k): label_text(v) for k, v in encoder.items()},
                 "pairs": [[k, v] for k, v in encoder.items()]}
        return Outputs(data=[Dataset(table, meta)], model=model)

    @staticmethod
    def _renamed(where: str, columns: list[str], applied: dict[float, float]) -> list[str]:
        """``predict_detail_<class>`` columns renamed to the encoded class."""
        by_name = {detail_columns([k])[0]: detail_columns([v])[0] for k, v in applied.items()}
        out = []
        for c in columns:
            if c.startswith(DETAIL):
                if c not in by_name:
                    raise ComponentError(f"{where}: class of column {c} not found in the label encoder")
                c = by_name[c]
            out.append(c)
        return out

    @staticmethod
    def _stored(ctx: Context, model: dict[str, Any]) -> dict[float, float]:
        pairs = model.get("pairs")
        if not pairs:
            raise ComponentError(f"{ctx.component}: input model holds no label encoder; is it a guest "
                                 "LabelTransform's model?")
        return {float(k): float(v) for k, v in pairs}
