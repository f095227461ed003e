"""FATE's own optimal-binning example (hetero_feature_binning/hetero_binning_optim_gini),
checked on the job of the session's suite run (``suite_run``): the guest's and the host's
split points and IVs equal a centralised run of the same staged greedy merge on the joined
rows."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fate_examples import joined, task_params
from tests.unit.test_binning import central_stats, numpy_quantiles
from tests.unit.test_optimal_binning import reference_optimal_points

pytestmark = pytest.mark.e2e

SUITE = "hetero_feature_binning"
TASK = "hetero_binning_optim_gini"


def test_fate_optimal_gini_binning_matches_the_central_merge(suite_run):
    run = suite_run(SUITE)
    models = run.flow.models(run.job(TASK), "hetero_feature_binning_0")
    gm, hm = models["guest"], models["host"]
    binning = task_params(SUITE, TASK)["hetero_feature_binning_0"]
    opt = binning["optimal_binning_param"]
    assert opt["metric_method"] == "gini" and binning["method"] == "optimal"
    data = joined("breast")
    y = data.y

    def reference(values: np.ndarray) -> np.ndarray:
        init = numpy_quantiles(values, opt["init_bin_nums"])
        return reference_optimal_points(values, y, init, binning["bin_num"], opt["metric_method"], opt["mixture"],
                                        opt["min_bin_pct"], opt["max_bin_pct"])

    for j, name in enumerate(data.gnames):
        res, ref = gm["binning_result"][name], reference(data.gx[:, j])
        np.testing.assert_allclose(res["split_points"], ref, err_msg=name)
        assert len(ref) <= binning["bin_num"]
        assert abs(res["iv"] - central_stats(data.gx[:, j], y, ref)["iv"]) < 1e-6, name
    for j, name in enumerate(data.hnames):
        ref = reference(data.hx[:, j])
        np.testing.assert_allclose(hm["binning_result"][name]["split_points"], ref, err_msg=name)
        got = gm["host_results"]["10000"][f"host_10000_x{j}"]
        assert abs(got["iv"] - central_stats(data.hx[:, j], y, ref)["iv"]) < 1e-6, name
        assert "iv" not in hm["binning_result"][name]  # nothing of the labels goes back to the host


def test_fate_quantile_binning_matches_numpy_quantiles_and_central_iv(suite_run):
    """hetero_binning_quantile_binning as shipped: every column's split points are the
    inverted-cdf quantiles of that party's CSV column, and the guest's and the host's IVs
    (the host's computed on encrypted labels) equal WOE/IV computed from scratch."""
    run = suite_run(SUITE)
    task = "hetero_binning_quantile_binning"
    models = run.flow.models(run.job(task), "hetero_feature_binning_0")
    gm, hm = models["guest"], models["host"]
    binning = task_params(SUITE, task)["hetero_feature_binning_0"]
    assert binning["method"] == "quantile"
    data = joined("breast")
    y = data.y
    for j, name in enumerate(data.gnames):
        ref = numpy_quantiles(data.gx[:, j], binning["bin_num"])
        res = gm["binning_result"][name]
        np.testing.assert_allclose(res["split_points"], ref, err_msg=name)
        assert abs(res["iv"] - central_stats(data.gx[:, j], y, list(ref))["iv"]) < 1e-6, name
    for j, name in enumerate(data.hnames):
        ref = numpy_quantiles(data.hx[:, j], binning["bin_num"])
        np.testing.assert_allclose(hm["binning_result"][name]["split_points"], ref, err_msg=name)
        got = gm["host_results"]["10000"][f"host_10000_x{j}"]
        assert abs(got["iv"] - central_stats(data.hx[:, j], y, list(ref))["iv"]) < 1e-6, name
