"""DataStatistics: every statistic FATE names, per party on its own columns, checked against
numpy (and scipy's skew/kurtosis for the bias switch) on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from backends.computing.local import LocalSession
from components.base import Inputs
from components.statistics.data_statistics import SUMMARY, DataStatistics, DataStatisticsParams, expand, model_value
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties

NAMES = ["a", "b", "c", "d"]


def _data(n: int = 90, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.c_[rng.exponential(2.0, n), rng.normal(-1.0, 3.0, n), rng.integers(0, 3, n).astype(float), np.full(n, 2.5)]
    x[[0, 4, 9, 33], 0] = np.nan
    x[[7, 8], 1] = -999.0  # an abnormal value
    return x


def _rank_value(col: np.ndarray, q: float) -> float:
    """The sample at rank ceil(q n), written out without numpy's quantile."""
    v = sorted(col)
    return float(v[max(1, math.ceil(q * len(v))) - 1])


def _central(col: np.ndarray, rows: int) -> dict[str, float]:
    """Statistics of the present values of one column, from their definitions."""
    v = col[~np.isnan(col)]
    n = len(v)
    mean = v.sum() / n
    m2 = ((v - mean) ** 2).sum() / n
    std = math.sqrt(m2)
    return {
        "count": n, "sum": v.sum(), "mean": mean, "variance": m2, "stddev": std, "min": v.min(), "max": v.max(),
        "median": _rank_value(v, 0.5), "95%": _rank_value(v, 0.95), "10%": _rank_value(v, 0.1),
        "missing_count": rows - n, "missing_ratio": (rows - n) / rows,
        "skewness": st.skew(v) if m2 > 0 else 0.0, "kurtosis": st.kurtosis(v) if m2 > 0 else 0.0,
        "coefficient_of_variance": abs(std / (mean if abs(mean) >= 1e-8 else 1e-8)),
    }


def _run(tmp_path, params: dict, x: np.ndarray, host_x: np.ndarray | None = None):
    with LocalSession(partitions=3, workers=1) as s:
        jobs = {GUEST: (s, params, Inputs(data={"data": dataset(s, x, NAMES, np.zeros(len(x)))}))}
        if host_x is not None:
            jobs[HOST] = (s, params, Inputs(data={"data": dataset(s, host_x, ["h0", "h1"])}))
        return run_parties(tmp_path, DataStatistics, jobs)


def test_summary_and_percentiles_match_numpy(tmp_path):
    x = _data()
    host_x = np.random.default_rng(1).normal(size=(90, 2))
    out = _run(tmp_path, {"statistics": ["summary", "95%", "10%"], "abnormal_list": [-999, "NA"]}, x, host_x)
    (res, tracker) = out[GUEST]
    model = res.model
    assert model["statistics"] == [*SUMMARY, "95%", "10%"]
    clean = np.where(x == -999.0, np.nan, x)
    for j, col in enumerate(NAMES):
        expected = _central(clean[:, j], len(x))
        for name in model["statistics"]:
            assert model_value(model, col, name) == pytest.approx(expected[name], rel=1e-9, abs=1e-12), (col, name)
            assert tracker.metrics[("statistics", name)][col] == model["statistics_result"][col][name]
    # the host described its own columns only
    hmodel = out[HOST][0].model
    assert hmodel["columns"] == ["h0", "h1"]
    assert model_value(hmodel, "h1", "stddev") == pytest.approx(host_x[:, 1].std())
    # the data goes through unchanged
    assert res.data[0].table.count() == len(x)


def test_column_choice_bias_and_names(tmp_path):
    x = _data()
    out = _run(tmp_path, {"statistics": ["skewness", "kurtosis", "95%", "stddev"], "column_indexes": [1],
                          "column_names": ["c"], "bias": False}, x)
    model = out[GUEST][0].model
    assert model["columns"] == ["b", "c"]
    for col, j in (("b", 1), ("c", 2)):
        assert model_value(model, col, "skewness") == pytest.approx(st.skew(x[:, j], bias=False))
        assert model_value(model, col, "kurtosis") == pytest.approx(st.kurtosis(x[:, j], bias=False))
        # a filter's spelling of the same statistic finds it
        assert model_value(model, col, "95.0%") == model_value(model, col, "95%")
        assert model_value(model, col, "std") == pytest.approx(x[:, j].std())
    assert model_value(model, "a", "stddev") is None  # not described


def test_bad_params_are_refused():
    assert expand("describe") == ["count", "mean", "stddev", "min", "max"]
    with pytest.raises(ValueError, match=r"statistics \['modes'\] unknown"):
        DataStatisticsParams(statistics=["mean", "modes"])
    with pytest.raises(ValueError, match="statistics"):
        DataStatisticsParams(statistics=["120%"])
    with pytest.raises(ValueError, match="quantile_error"):
        DataStatisticsParams(quantile_error=1.5)
