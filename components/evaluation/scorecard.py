"""Scorecard: a binary model's predicted probability of default -> a credit score (FATE's Scorecard).

As FATE 1.x computes it, with ``p`` the row's ``predict_score`` (probability of class 1, the
bad outcome) and the odds of good over bad ``(1 - p) / p``::

    score = offset + factor / ln(factor_base) * ln((1 - p) / p)

bounded to ``[lower_limit_value, upper_limit_ratio * offset]`` and rounded to 2 decimals.
``p`` within 1e-8 of 0 scores the upper bound, within 1e-8 of 1 the lower bound; a ``p``
outside [0, 1] (not a probability) scores -1 before the bounds, as FATE.

Output rows are FATE's ``label, predict_result, predict_score, credit_score``. It runs where
the predictions are: the guest of a vertical model (hosts hold none; FATE's confs set
``need_run`` false there). Multiclass predictions are refused: their ``predict_score`` is not
a probability of default.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params, instances_meta
from flow.core.errors import ComponentError

#: FATE's FLOAT_ZERO: a score this close to 0 or 1 is taken as exactly 0 or 1
FLOAT_ZERO = 1e-8
COLUMNS = ["predict_result", "predict_score", "credit_score"]


class ScorecardParams(Params):
    method: str = "credit"
    offset: float = 500
    factor: float = 20
    factor_base: float = 2
    upper_limit_ratio: float = 3
    lower_limit_value: float = 0

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.lower() != "credit":  # FATE lower-cases it
            raise PydanticCustomError("method", "not supported: Scorecard method '{m}' (FATE has only 'credit')",
                                      {"m": value})
        return "credit"

    @model_validator(mode="after")
    def _base(self) -> ScorecardParams:
        if self.factor_base <= 0 or self.factor_base == 1:
            raise PydanticCustomError("factor_base", "factor_base must be positive and not 1 (ln(factor_base) "
                                      "divides the factor), got {b}", {"b": self.factor_base})
        return self


def credit_score(p: float, offset: float, step: float, upper: float, lower: float) -> float:
    """One row's score; ``step`` is factor / ln(factor_base)."""
    if 0 <= p <= FLOAT_ZERO:
        score = upper
    elif 0 < p and abs(p - 1) <= FLOAT_ZERO:
        score = lower
    elif p > 1 or p < 0 or math.isnan(p):
        score = -1.0
    else:
        score = offset + step * math.log((1 - p) / p)
    return round(min(max(score, lower), upper), 2)


def scorer(at: int, result_at: int, offset: float, step: float, upper: float, lower: float):
    """Prediction Instance -> [predict_result, predict_score, credit_score]; picklable."""
    def f(inst: Instance) -> Instance:
        p = float(inst.features[at])
        row = [float(inst.features[result_at]), p, credit_score(p, offset, step, upper, lower)]
        return Instance(np.asarray(row), inst.label)
    return f


def out_of_range(at: int):
    def count(part: list) -> int:
        return sum(1 for _, inst in part if not 0 <= float(inst.features[at]) <= 1)
    return count


class Scorecard(Component):
    module = "Scorecard"
    params_model = ScorecardParams
    roles = ("guest", "host")
    input_data = ("data",)

    def _score(self, ctx: Context, p: ScorecardParams, inputs: Inputs) -> Outputs:
        where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
        if "data" not in inputs.data:
            raise ComponentError(f"{where}: no predictions to score (hosts of vertical models hold none: set "
                                 "need_run false for this party)")
        data = inputs.data["data"]
        cols = list(data.meta.feature_columns)
        if "predict_score" not in cols or "predict_result" not in cols:
            raise ComponentError(f"{where}: input {data.meta.name} has no predict_score/predict_result columns; "
                                 "Scorecard takes a binary model's prediction output")
        if any(c.startswith("predict_detail_") for c in cols):
            raise ComponentError(f"{where}: not supported: Scorecard of multiclass predictions (the score is "
                                 "the probability of class 1 of a binary model)")
        at, result_at = cols.index("predict_score"), cols.index("predict_result")
        step = p.factor / math.log(p.factor_base)
        upper, lower = p.upper_limit_ratio * p.offset, p.lower_limit_value
        bad = sum(data.table.apply_partitions(out_of_range(at)))
        if bad:
            ctx.logger.warning("%s: %d predict_score values are not probabilities in [0, 1]; they score -1 "
                               "before the bounds, as in FATE", where, bad)
        table = data.table.map_values(scorer(at, result_at, p.offset, step, upper, lower))
        label = data.meta.label_column or "label"
        meta = instances_meta(data.meta, COLUMNS, label if data.meta.label_column else None)
        formula = f"Score = {p.offset:g} + {p.factor:g} / ln({p.factor_base:g}) * ln(Odds)"
        ctx.tracker.log_metric("train", "scorecard_compute_formula", formula)
        ctx.logger.info("%s: %s, bounded to [%g, %g]", where, formula, lower, upper)
        return Outputs(data=[Dataset(table, meta)])

    guest = host = _score
