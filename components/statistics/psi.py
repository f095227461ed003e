"""PSI: the population stability index of each feature between train_data and validate_data.

(FATE's "PSI" module, not private set intersection, which is components/psi/.) Each party
works on its own columns alone; nothing crosses a party line.

Per feature, the expected (train) values are cut into at most ``max_bin_num`` quantile
bins (right-closed, duplicates merged, the last split point the maximum; a larger
validate value falls into the last bin) plus one bin for missing values. With ``e_b`` and
``a_b`` the shares of the train and validate rows in bin ``b`` (a share of 0 counted as
1e-6, as in FATE):

    PSI = Σ_b (a_b - e_b) · ln(a_b / e_b)

Split points are exact sample quantiles, so they meet any ``binning_error`` (FATE's bound
for its approximate quantile summary). A value equal to ``dense_missing_val`` counts as
missing, like NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Inputs, Outputs, Params
from components.feature.binning import bin_index, quantile_split_points
from components.feature.common import gather_matrix
from flow.core.errors import ComponentError

MODEL_NAME = "PSI"
#: the share counted for an empty bin (FATE's)
EMPTY_SHARE = 1e-6


class PSIParams(Params):
    max_bin_num: int = Field(20, gt=0)
    dense_missing_val: int | float | str | None = None
    binning_error: float = Field(1e-4, ge=0, le=1)

    @model_validator(mode="after")
    def _numeric_missing(self) -> PSIParams:
        if isinstance(self.dense_missing_val, str):
            raise PydanticCustomError("not_supported", "not supported: PSI dense_missing_val as a string (features "
                                      "are numbers after DataTransform; give a number, or null for NaN)")
        return self


def psi_per_bin(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Each bin's term from the two shares (empty shares floored at :data:`EMPTY_SHARE`)."""
    e = np.where(expected == 0, EMPTY_SHARE, expected)
    a = np.where(actual == 0, EMPTY_SHARE, actual)
    return (a - e) * np.log(a / e)


def intervals(name: str, split_points: np.ndarray) -> list[str]:
    """FATE's labels of the bins: ``s<name<=e`` (open ends unbounded), then ``missing``."""
    ends = [round(float(s), 6) for s in split_points]
    out = []
    for i in range(len(ends)):
        left = "" if i == 0 else f"{ends[i - 1]}<"
        right = "" if i == len(ends) - 1 else f"<={ends[i]}"
        out.append(f"{left}{name}{right}")
    return out + ["missing"]


def feature_psi(name: str, train: np.ndarray, validate: np.ndarray, max_bin_num: int) -> dict[str, Any]:
    """PSI of one column (NaN = missing) and its per-bin details."""
    sp = quantile_split_points(train, max_bin_num)
    slots = len(sp) + 1  # the regular bins, then the missing bin
    expected = np.bincount(bin_index(train, sp), minlength=slots) / len(train)
    actual = np.bincount(bin_index(validate, sp), minlength=slots) / len(validate)
    terms = psi_per_bin(expected, actual)
    return {"feature_name": name, "total_psi": float(terms.sum()), "split_points": sp.tolist(),
            "interval": intervals(name, sp), "psi": terms.tolist(), "expect_perc": expected.tolist(),
            "actual_perc": actual.tolist()}


class PSI(Component):
    module = MODEL_NAME
    params_model = PSIParams
    roles = ("guest", "host")
    input_data = ("train_data", "validate_data")
    output_model = True

    def guest(self, ctx: Context, p: PSIParams, inputs: Inputs) -> Outputs:
        train, validate = (inputs.require(ctx.component, port) for port in self.input_data)
        header = list(train.meta.feature_columns)
        other = list(validate.meta.feature_columns)
        if set(header) != set(other) or len(other) != len(set(other)):
            raise ComponentError(f"{ctx.component}: train_data {train.meta.name} and validate_data "
                                 f"{validate.meta.name} must have the same columns; differ in "
                                 f"{sorted(set(header) ^ set(other)) or 'duplicates'}")
        xs = []
        for ds, cols in ((train, list(range(len(header)))), (validate, [other.index(n) for n in header])):
            _, x, _ = gather_matrix(ds.table, cols)
            if not len(x):
                raise ComponentError(f"{ctx.component}: input table {ds.meta.name} is empty")
            if p.dense_missing_val is not None:
                x = np.where(x == float(p.dense_missing_val), np.nan, x)
            xs.append(x)
        empty = [n for j, n in enumerate(header) if np.isnan(xs[0][:, j]).all()]
        if empty:
            raise ComponentError(f"{ctx.component}: columns {empty} of train_data {train.meta.name} have no "
                                 "values; PSI needs a baseline in every column")
        features = [feature_psi(n, xs[0][:, j], xs[1][:, j], p.max_bin_num) for j, n in enumerate(header)]
        scores = {f["feature_name"]: f["total_psi"] for f in features}
        ctx.tracker.log_metric("psi", "psi_scores", scores)
        ctx.logger.info("PSI of %d features over %d/%d rows", len(header), len(xs[0]), len(xs[1]))
        return Outputs(model={"model_name": MODEL_NAME, "role": ctx.role, "header": header,
                              "max_bin_num": p.max_bin_num, "total_score": scores, "feature_psi": features})

    host = guest
