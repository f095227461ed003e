"""PSI (population stability index) against a plain per-feature computation written from
the definition, and psi_filter of HeteroFeatureSelection on its model."""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.feature.selection import HeteroFeatureSelection
from components.statistics.psi import PSI, PSIParams
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties

NAMES = ["a", "b", "c"]


def make_data(seed: int = 2):
    rng = np.random.default_rng(seed)
    train = np.c_[rng.normal(size=150), rng.integers(0, 5, 150), rng.exponential(size=150)]
    validate = np.c_[rng.normal(0.6, 1.3, 90), rng.integers(0, 7, 90), rng.exponential(size=90)]
    train[rng.choice(150, 10, replace=False), 2] = np.nan
    validate[rng.choice(90, 3, replace=False), 0] = np.nan
    return train, validate


def plain_psi(train: np.ndarray, validate: np.ndarray, bins: int) -> float:
    """From the definition: split points are the train values at ranks ceil(q·n), q = i/bins
    (duplicates once); a value v is in the first bin whose split point is >= v (the last bin
    if none), a missing value in its own bin; empty shares count as 1e-6."""
    present = np.sort(train[~np.isnan(train)])
    points = sorted({present[max(math.ceil(i / bins * len(present)) - 1, 0)] for i in range(1, bins + 1)})

    def shares(values: np.ndarray) -> list[float]:
        counts = [0] * (len(points) + 1)
        for v in values:
            if np.isnan(v):
                counts[-1] += 1
            else:
                counts[next((i for i, s in enumerate(points) if v <= s), len(points) - 1)] += 1
        return [c / len(values) for c in counts]

    total = 0.0
    for e, a in zip(shares(train), shares(validate)):
        e, a = e or 1e-6, a or 1e-6
        total += (a - e) * math.log(a / e)
    return total


def run_psi(tmp_path, train, validate, params, validate_names=NAMES):
    with LocalSession(partitions=2, workers=1) as s:
        inputs = Inputs(data={"train_data": dataset(s, train, NAMES, name="train"),
                              "validate_data": dataset(s, validate, validate_names, name="validate")})
        return run_parties(tmp_path, PSI, {GUEST: (s, params, inputs)})[GUEST][0].model


@pytest.mark.parametrize("bins", [4, 20])
def test_psi_equals_the_plain_computation(tmp_path, bins):
    train, validate = make_data()
    model = run_psi(tmp_path, train, validate, {"max_bin_num": bins})
    for j, name in enumerate(NAMES):
        assert model["total_score"][name] == pytest.approx(plain_psi(train[:, j], validate[:, j], bins), abs=1e-12)
    detail = model["feature_psi"][0]
    assert detail["interval"][-1] == "missing" and len(detail["psi"]) == len(detail["split_points"]) + 1
    assert sum(detail["psi"]) == pytest.approx(detail["total_psi"])
    assert sum(detail["expect_perc"]) == pytest.approx(1.0) and sum(detail["actual_perc"]) == pytest.approx(1.0)
    assert model["total_score"]["a"] > 0.1  # the shifted column drifts
    same = run_psi(tmp_path / "same", train, train, {"max_bin_num": bins})
    assert all(v == 0.0 for v in same["total_score"].values())


def test_columns_matched_by_name_and_dense_missing_value(tmp_path):
    train, validate = make_data()
    model = run_psi(tmp_path, train, validate[:, [2, 0, 1]], {"max_bin_num": 5}, ["c", "a", "b"])
    assert model["total_score"]["a"] == pytest.approx(plain_psi(train[:, 0], validate[:, 0], 5), abs=1e-12)
    marked = np.where(np.isnan(train), -999.0, train)
    model = run_psi(tmp_path / "m", marked, validate, {"max_bin_num": 5, "dense_missing_val": -999})
    assert model["total_score"]["c"] == pytest.approx(plain_psi(train[:, 2], validate[:, 2], 5), abs=1e-12)
    with pytest.raises(ComponentError, match="same columns"):
        run_psi(tmp_path / "x", train, validate, {}, ["a", "b", "z"])
    with pytest.raises(pydantic.ValidationError, match="not supported: PSI dense_missing_val"):
        PSIParams(dense_missing_val="NA")


def test_psi_filter_keeps_low_psi_columns_and_at_least_one(tmp_path):
    train, validate = make_data()
    model = run_psi(tmp_path, train, validate, {"max_bin_num": 10})
    scores = model["total_score"]

    def kept(psi_param):
        params = {"filter_methods": ["psi_filter"], "psi_param": psi_param}
        with LocalSession(partitions=2, workers=1) as s:
            out = run_parties(tmp_path / str(len(list(tmp_path.iterdir()))), HeteroFeatureSelection, {
                HOST: (s, params, Inputs(data={"data": dataset(s, train, NAMES)}, isometric_model=[model]))})
        return out[HOST][0].data[0].meta.feature_columns

    threshold = sorted(scores.values())[1]
    assert kept({"metrics": "psi", "filter_type": "threshold", "take_high": False, "threshold": threshold}) == \
        [n for n in NAMES if scores[n] <= threshold]
    # FATE's multi_iso conf: a negative threshold passes nothing; the lowest PSI stays
    assert kept({"metrics": "psi", "filter_type": "threshold", "take_high": False, "threshold": -0.1}) == \
        [min(scores, key=scores.get)]
    assert kept({"metrics": "psi", "filter_type": "top_k", "threshold": 2, "take_high": True}) == \
        [n for n in NAMES if n in sorted(scores, key=scores.get)[-2:]]
