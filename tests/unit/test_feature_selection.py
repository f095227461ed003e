"""HeteroFeatureSelection: IV filters decided by the guest for host columns (checked against
IVs computed centrally on the same bins), statistic and manual filters against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.feature.binning import HeteroFeatureBinning
from components.feature.selection import HeteroFeatureSelection
from flow.core.errors import ComponentError
from tests.unit.test_binning import central_stats, make_data
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

GNAMES, HNAMES = ["g0", "g1", "g2"], ["h0", "h1", "h2", "h3"]


@pytest.fixture(scope="module")
def binned(tmp_path_factory):
    """Data, both parties' binning models and the centralised IV of every column (by anonymous name)."""
    guest_x, host_x, y = make_data(200, seed=7)
    params = {"bin_num": 5, "encrypt_param": {"key_length": 512, "allow_short_key": True},
              "transform_param": {"transform_type": None}}
    with LocalSession(partitions=2, workers=1) as s:
        out = run_parties(tmp_path_factory.mktemp("bin"), HeteroFeatureBinning, {
            GUEST: (s, params, Inputs(data={"data": dataset(s, guest_x, GNAMES, y)})),
            HOST: (s, params, Inputs(data={"data": dataset(s, host_x, HNAMES)}))})
    gm, hm = out[GUEST][0].model, out[HOST][0].model
    iv = {n: central_stats(guest_x[:, j], y, gm["binning_result"][n]["split_points"])["iv"]
          for j, n in enumerate(GNAMES)}
    iv.update({f"host_10000_x{j}": central_stats(host_x[:, j], y, hm["binning_result"][n]["split_points"])["iv"]
               for j, n in enumerate(HNAMES)})
    return guest_x, host_x, y, gm, hm, iv


def select(tmp_path, binned, guest_params, host_params=None):
    guest_x, host_x, y, gm, hm, _ = binned
    with LocalSession(partitions=2, workers=1) as s:
        jobs = {GUEST: (s, guest_params, Inputs(data={"data": dataset(s, guest_x, GNAMES, y)}, isometric_model=[gm]))}
        if host_params is not None:
            jobs[HOST] = (s, host_params, Inputs(data={"data": dataset(s, host_x, HNAMES)}, isometric_model=[hm]))
        out = run_parties(tmp_path, HeteroFeatureSelection, jobs)
        return {party: (res.model, rows_of(res.data[0]), res.data[0].meta.feature_columns)
                for party, (res, _) in out.items()}


def test_iv_top_k_keeps_the_k_highest_central_ivs_across_parties(tmp_path, binned):
    guest_x, host_x, _, _, _, iv = binned
    params = {"filter_methods": ["iv_top_k"], "iv_top_k_param": {"k": 3}}
    out = select(tmp_path, binned, params, params)
    expected = set(sorted(iv, key=iv.get, reverse=True)[:3])
    gmodel, (_, gx, _), gcols = out[GUEST]
    hmodel, (_, hx, _), hcols = out[HOST]
    host_kept = {f"host_10000_x{HNAMES.index(c)}" for c in hcols}
    assert set(gcols) | host_kept == expected
    assert set(gmodel["host_left_cols"]["10000"]) == host_kept
    # the output tables hold exactly the surviving columns, values unchanged
    np.testing.assert_array_equal(gx, guest_x[:, [GNAMES.index(c) for c in gcols]])
    np.testing.assert_array_equal(hx, host_x[:, [HNAMES.index(c) for c in hcols]])
    assert "host_left_cols" not in hmodel or hmodel["host_left_cols"] == {}


def test_iv_thresholds_per_host_and_unfederated_iv_filter(tmp_path, binned):
    iv = binned[5]
    params = {"filter_methods": ["iv_value_thres"],
              "iv_value_param": {"value_threshold": 0.05, "host_thresholds": [0.2]}}
    out = select(tmp_path, binned, params, params)
    assert set(out[GUEST][2]) == {n for n in GNAMES if iv[n] >= 0.05}
    assert {f"host_10000_x{HNAMES.index(c)}" for c in out[HOST][2]} == \
        {f"host_10000_x{j}" for j in range(4) if iv[f"host_10000_x{j}"] >= 0.2}
    params = {"filter_methods": ["iv_filter"], "iv_param": {"metrics": "iv", "filter_type": "top_k", "threshold": 1,
                                                            "select_federated": False, "host_top_k": 2}}
    out = select(tmp_path / "b", binned, params, params)
    assert out[GUEST][2] == [max(GNAMES, key=iv.get)]
    host_ivs = {c: iv[f"host_10000_x{j}"] for j, c in enumerate(HNAMES)}
    assert set(out[HOST][2]) == set(sorted(host_ivs, key=host_ivs.get)[-2:])


def test_local_filters_match_numpy(tmp_path, binned):
    guest_x = binned[0].copy()
    guest_x[:, 1] = 3.0  # a constant column
    binned = (guest_x,) + binned[1:]
    std = guest_x.std(0)
    out = select(tmp_path, binned, {"filter_methods": ["unique_value"]})
    assert out[GUEST][2] == ["g0", "g2"]
    out = select(tmp_path / "b", binned, {
        "filter_methods": ["statistic_filter"], "select_col_indexes": [0, 2],
        "statistic_param": {"metrics": ["std"], "filter_type": "top_k", "threshold": 1}})
    best = "g0" if std[0] >= std[2] else "g2"  # g1 is not a candidate: always kept
    assert out[GUEST][2] == sorted(["g1", best], key=GNAMES.index)
    cv = std / np.abs(guest_x.mean(0))
    out = select(tmp_path / "c", binned, {"filter_methods": ["coefficient_of_variation_value_thres"],
                                          "variance_coe_param": {"value_threshold": float(np.median(cv))}})
    assert out[GUEST][2] == [n for j, n in enumerate(GNAMES) if cv[j] >= np.median(cv)]
    out = select(tmp_path / "d", binned, {"filter_methods": ["manually"],
                                          "manually_param": {"filter_out_names": ["g2"]}})
    assert out[GUEST][2] == ["g0", "g1"]
    out = select(tmp_path / "e", binned, {"filter_methods": ["manually", "unique_value"],
                                          "manually_param": {"left_col_names": ["g1", "g2"]}})
    assert out[GUEST][2] == ["g2"]
    assert [r["filtered_out"] for r in out[GUEST][0]["filter_results"]] == [["g0"], ["g1"]]


def test_stored_model_and_errors(tmp_path, binned):
    guest_x, _, y, gm, _, _ = binned
    model = select(tmp_path, binned, {"filter_methods": ["manually"],
                                      "manually_param": {"filter_out_indexes": [0]}})[GUEST][0]
    with LocalSession(partitions=1, workers=1) as s:
        res = run_parties(tmp_path / "m", HeteroFeatureSelection, {
            GUEST: (s, {}, Inputs(data={"data": dataset(s, guest_x[:5], GNAMES, y[:5])}, model=[model]))})
        assert res[GUEST][0].data[0].meta.feature_columns == ["g1", "g2"]
        with pytest.raises(ValueError, match=r"not supported: filter_methods \['no_such_filter'\]"):
            run_parties(tmp_path / "x", HeteroFeatureSelection, {
                GUEST: (s, {"filter_methods": ["no_such_filter"]},
                        Inputs(data={"data": dataset(s, guest_x, GNAMES, y)}))})
        with pytest.raises(ComponentError, match="needs a HeteroFeatureBinning model as input.isometric_model"):
            run_parties(tmp_path / "y", HeteroFeatureSelection, {
                GUEST: (s, {"filter_methods": ["iv_top_k"]}, Inputs(data={"data": dataset(s, guest_x, GNAMES, y)}))})


def test_column_statistics_match_scipy():
    from scipy import stats as st

    from components.feature.selection import column_statistics

    rng = np.random.default_rng(3)
    x = np.c_[rng.exponential(size=80), rng.integers(0, 2, 80), np.full(80, 4.0)]
    x[[1, 5, 9], 0] = np.nan
    got = column_statistics(x)
    col = x[~np.isnan(x[:, 0]), 0]
    assert got["skewness"][0] == pytest.approx(st.skew(col))
    assert got["kurtosis"][0] == pytest.approx(st.kurtosis(col))
    assert got["median"][0] == pytest.approx(np.median(col))
    assert got["variance"][0] == pytest.approx(col.var())
    assert got["missing_count"].tolist() == [3.0, 0.0, 0.0]
    assert got["top_value_ratio"][1] == pytest.approx(max(np.mean(x[:, 1] == 0), np.mean(x[:, 1] == 1)))
    assert got["skewness"][2] == 0.0 and got["kurtosis"][2] == 0.0 and got["top_value_ratio"][2] == 1.0


def test_percentage_value_and_stepwise_iv_filter(tmp_path, binned):
    iv = binned[5]
    guest_x = binned[0].copy()
    guest_x[:150, 2] = 0.0  # 75% one value
    out = select(tmp_path, (guest_x,) + binned[1:], {"filter_methods": ["percentage_value"],
                                                     "percentage_value_param": {"upper_pct": 0.7}})
    assert out[GUEST][2] == ["g0", "g1"]
    # threshold then top_k, over both parties together
    params = {"filter_methods": ["iv_filter"],
              "iv_param": {"metrics": ["iv", "iv"], "filter_type": ["threshold", "top_k"], "threshold": [0.1, 2]}}
    out = select(tmp_path / "b", binned, params, params)
    kept = set(out[GUEST][2]) | {f"host_10000_x{HNAMES.index(c)}" for c in out[HOST][2]}
    assert kept == set(sorted((k for k in iv if iv[k] >= 0.1), key=iv.get)[-2:])
    with pytest.raises(Exception, match="threshold has 1 entries for 2 metrics"):
        HeteroFeatureSelection.params_model(iv_param={"metrics": ["iv", "iv"], "threshold": [0.1]})
