"""FATE's hetero_feature_selection_pearson task, run unchanged once per session
(``suite_run``): HeteroPearson's correlations and VIFs against numpy on the joined CSVs, and
the selection's vif_filter then correlation_filter against FATE's rules applied to those
central values."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fate_examples import joined, task_params

pytestmark = pytest.mark.e2e

SUITE = "hetero_feature_selection"
TASK = "hetero_feature_selection_pearson"


def test_pearson_task_matches_numpy_on_the_joined_data(suite_run):
    run = suite_run(SUITE)
    job_id = run.job(TASK)
    data = joined("breast")
    gx, hx = data.gx, data.hx
    g = gx.shape[1]
    corr = np.corrcoef(np.c_[gx, hx], rowvar=False)

    pearson = run.flow.models(job_id, "hetero_pearson_0")
    gm, hm = pearson["guest"], pearson["host"]
    assert gm["names"] == data.gnames and hm["names"] == data.hnames
    np.testing.assert_allclose(np.array(gm["local_corr"], float), corr[:g, :g], atol=1e-9)
    np.testing.assert_allclose(np.array(hm["local_corr"], float), corr[g:, g:], atol=1e-9)
    (cross,) = gm["cross"]
    np.testing.assert_allclose(np.array(cross["corr"], float), corr[:g, g:], atol=1e-6)
    gvif, hvif = np.diag(np.linalg.inv(corr[:g, :g])), np.diag(np.linalg.inv(corr[g:, g:]))
    np.testing.assert_allclose(gm["local_vif"], gvif, rtol=1e-5)
    np.testing.assert_allclose(hm["local_vif"], hvif, rtol=1e-5)

    # the conf: vif_filter (threshold 5), then correlation_filter (iv, 0.5, guest's columns only)
    sel = task_params(SUITE, TASK)["hetero_feature_selection_0"]
    vif_max, corr_max = sel["vif_param"]["threshold"], sel["correlation_param"]["threshold"]
    iv = {n: r["iv"] for n, r in run.flow.models(job_id, "hetero_binning_0")["guest"]["binning_result"].items()}
    left = [j for j in range(g) if gvif[j] <= vif_max]
    for j in sorted(left, key=lambda j: -iv[data.gnames[j]]):
        if j in left:
            left = [k for k in left if k == j or abs(corr[j, k]) <= corr_max]
    selection = run.flow.models(job_id, "hetero_feature_selection_0")
    assert selection["guest"]["left_cols"] == [data.gnames[j] for j in sorted(left)]
    assert selection["host"]["left_cols"] == [n for n, v in zip(data.hnames, hvif) if v <= vif_max]
    assert 0 < len(selection["guest"]["left_cols"]) < g
