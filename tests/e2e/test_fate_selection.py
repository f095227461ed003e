"""FATE's hetero_feature_selection suite (../shared/fate-examples/dsl/hetero_feature_selection),
run unchanged once per session (``suite_run``): the columns each party keeps equal a plain
numpy computation, on the joined uploaded CSVs, of the same statistics (DataStatistics's
model and the ones selection computes itself) and IVs (one-vs-rest per class for the
multiclass task)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.fate_examples import SuiteRun, joined, task_params
from tests.unit.test_binning import central_stats, numpy_quantiles

pytestmark = pytest.mark.e2e

SUITE = "hetero_feature_selection"


@pytest.fixture(scope="module")
def run(suite_run) -> SuiteRun:
    return suite_run(SUITE)


def _left(run: SuiteRun, job_id: str, role: str, pid: str) -> list[str]:
    return run.flow.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid,
                       "-cpn", "hetero_feature_selection_0")["model"]["left_cols"]


def _statistics(x: np.ndarray) -> dict[str, np.ndarray]:
    mean, std = x.mean(0), x.std(0)
    centred = x - mean
    return {"stddev": std, "coefficient_of_variance": np.abs(std / np.where(np.abs(mean) < 1e-8, 1e-8, mean)),
            "kurtosis": np.where(std > 0, (centred ** 4).mean(0) / np.where(std > 0, std, 1) ** 4 - 3, 0.0)}


def _threshold(values: dict, threshold: float, take_high: bool = True) -> set:
    return {k for k, v in values.items() if (v >= threshold if take_high else v <= threshold)}


def _top_percentile(values: dict, pct: float) -> set:
    """Keep the values reaching the one at (0-based) rank floor(pct * n) from the top."""
    ranked = sorted(values.values(), reverse=True)
    cut = ranked[min(len(ranked) - 1, math.floor(pct * len(ranked) - 1e-9))]
    return {k for k, v in values.items() if v >= cut}


def test_multi_host_statistic_and_iv_filters_match_numpy(run: SuiteRun):
    """statistic_filter (kurtosis, cv, stddev), iv_filter (threshold then top_percentile over
    the guest's and both hosts' columns), then the cv threshold; two hosts share one table."""
    task = "hetero_feature_selection_multi_host"
    job_id, common = run.job(task), task_params(SUITE, task)
    data = joined("breast")
    gx, y, hx, gnames, hnames = data.gx, data.y, data.hx, data.gnames, data.hnames
    sp = common["hetero_feature_selection_0"]["statistic_param"]
    ip = common["hetero_feature_selection_0"]["iv_param"]
    bin_num = common["hetero_feature_binning_0"]["bin_num"]
    parties = {"guest": (gx, gnames), "10000": (hx, hnames), "9999": (hx, hnames)}
    kept: dict[tuple[str, int], float] = {}
    for party, (x, _) in parties.items():
        stats = _statistics(x)
        cols = set(range(x.shape[1]))
        for name, take_high, thr in zip(sp["metrics"], sp["take_high"], sp["threshold"]):
            cols &= _threshold(dict(enumerate(stats[name])), thr, take_high)
        kept.update({(party, j): central_stats(x[:, j], y, numpy_quantiles(x[:, j], bin_num))["iv"] for j in cols})
    left = _threshold(kept, ip["threshold"][0])
    left = _top_percentile({k: kept[k] for k in left}, ip["threshold"][1])
    for party, (x, names) in parties.items():
        cv = _statistics(x)["coefficient_of_variance"]
        cols = {j for p, j in left if p == party and cv[j] >= 0.3}
        role, pid = ("guest", "9999") if party == "guest" else ("host", party)
        assert _left(run, job_id, role, pid) == [names[j] for j in sorted(cols)], party
    assert 0 < len(left) < len(kept)  # the data is such that every kind of step removes columns


def test_multiclass_iv_merged_by_max_matches_one_vs_rest_ivs(run: SuiteRun):
    task = "hetero_feature_selection_multiclass"
    job_id, common = run.job(task), task_params(SUITE, task)
    data = joined("vehicle_scale")
    gx, y, hx, gnames, hnames = data.gx, data.y, data.hx, data.gnames, data.hnames
    binning = common["hetero_feature_binning_0"]
    ip = common["hetero_feature_selection_0"]["iv_param"]
    assert ip["mul_class_merge_type"] == "max" and len(np.unique(y)) > 2

    def max_iv(col: np.ndarray, j: int) -> float:
        points = np.unique(col) if j in binning["category_indexes"] else numpy_quantiles(col, binning["bin_num"])
        return max(central_stats(col, (y == k).astype(float), points)["iv"] for k in np.unique(y))

    for role, pid, x, names in (("guest", "9999", gx, gnames), ("host", "10000", hx, hnames)):
        expected = [names[j] for j in range(x.shape[1]) if max_iv(x[:, j], j) >= ip["threshold"]]
        assert _left(run, job_id, role, pid) == expected, role
        assert 0 < len(expected) < len(names)
