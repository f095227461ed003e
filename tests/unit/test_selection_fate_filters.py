"""HeteroFeatureSelection's FATE filters: statistic filters over a DataStatistics model
(checked against numpy, and shown to read the model), anonymous names, the merge of
one-vs-rest IVs of a multiclass binning model (against IVs computed centrally per class),
and the SecureBoost feature-importance filter."""

from __future__ import annotations

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.feature.binning import HeteroFeatureBinning
from components.feature.selection import HeteroFeatureSelection
from components.statistics.data_statistics import DataStatistics
from flow.core.errors import ComponentError
from tests.unit.test_binning import central_stats
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties

GNAMES, HNAMES = ["g0", "g1", "g2", "g3"], ["h0", "h1", "h2", "h3"]
KEY = {"key_length": 512, "allow_short_key": True}


def _data(n: int = 150, seed: int = 11, classes: int = 2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(float)
    guest = np.c_[rng.normal(y, 1.0), rng.exponential(1.0, n) * 3, np.full(n, 1.5), rng.standard_t(3, n) + 0.3]
    host = np.c_[rng.normal(-y, 2.0), rng.random(n), rng.integers(0, 3, n) + y, rng.normal(0.1, 0.01, n)]
    return guest, host, y


def _run(tmp_path, component, guest_params, guest_x, y, host_params=None, host_x=None, iso=(None, None)):
    with LocalSession(partitions=2, workers=1) as s:
        jobs = {GUEST: (s, guest_params, Inputs(data={"data": dataset(s, guest_x, GNAMES, y)},
                                                isometric_model=[m for m in iso[0] or []]))}
        if host_params is not None:
            jobs[HOST] = (s, host_params, Inputs(data={"data": dataset(s, host_x, HNAMES)},
                                                 isometric_model=[m for m in iso[1] or []]))
        return {party: res for party, (res, _) in run_parties(tmp_path, component, jobs).items()}


def _stats_model(tmp_path, x, y, statistics=("95%", "coefficient_of_variance", "stddev", "kurtosis")):
    return _run(tmp_path, DataStatistics, {"statistics": list(statistics)}, x, y)[GUEST].model


def test_statistic_filters_over_a_statistics_model_match_numpy(tmp_path):
    x, _, y = _data()
    model = _stats_model(tmp_path / "s", x, y)
    params = {"filter_methods": ["unique_value", "coefficient_of_variation_value_thres", "outlier_cols"],
              "unique_param": {"eps": 1e-6}, "variance_coe_param": {"value_threshold": 0.6},
              "outlier_param": {"percentile": 0.95, "upper_threshold": 4.0}}
    out = _run(tmp_path / "a", HeteroFeatureSelection, params, x, y, iso=([model], None))[GUEST]
    std, mean = x.std(0), x.mean(0)
    p95 = np.quantile(x, 0.95, axis=0, method="inverted_cdf")
    keep = [j for j in range(4) if std[j] >= 1e-6 and std[j] / abs(mean[j]) >= 0.6 and p95[j] <= 4.0]
    assert out.data[0].meta.feature_columns == [GNAMES[j] for j in keep]
    assert len(keep) < 4  # the data is such that something is filtered
    # FATE's multi_host steps: each statistic in turn, ranking what the earlier ones kept
    params = {"filter_methods": ["statistic_filter"],
              "statistic_param": {"filter_type": "threshold", "metrics": ["kurtosis", "coefficient_of_variance", "std"],
                                  "take_high": [False, True, True], "threshold": [2, 0.3, 0.001]}}
    out = _run(tmp_path / "b", HeteroFeatureSelection, params, x, y, iso=([model], None))[GUEST]
    centred = x - mean
    kurt = np.where(std > 0, (centred ** 4).mean(0) / np.where(std > 0, std, 1) ** 4 - 3, 0)
    keep = [j for j in range(4) if kurt[j] <= 2 and std[j] / abs(mean[j]) >= 0.3 and std[j] >= 0.001]
    assert out.data[0].meta.feature_columns == [GNAMES[j] for j in keep]


def test_the_statistics_model_is_what_decides(tmp_path):
    """A model whose values differ from the data's decides; a statistic it lacks is computed here."""
    x, _, y = _data()
    model = _stats_model(tmp_path / "s", x, y, statistics=("stddev",))
    model["statistics_result"]["g0"]["stddev"] = 0.0  # as if g0 were constant
    params = {"filter_methods": ["unique_value", "coefficient_of_variation_value_thres"],
              "variance_coe_param": {"value_threshold": 0.0}}
    out = _run(tmp_path / "a", HeteroFeatureSelection, params, x, y, iso=([model], None))[GUEST]
    assert out.data[0].meta.feature_columns == ["g1", "g3"]  # g2 is constant in the data, g0 in the model
    assert out.model["filter_results"][0]["filtered_out"] == ["g0", "g2"]


def test_anonymous_names_on_the_host(tmp_path):
    x, hx, y = _data()
    guest = {"filter_methods": ["manually"]}
    host = {"use_anonymous": True, "select_names": ["host_10000_x0", "host_10000_x1", "host_10000_x3"],
            "select_col_indexes": [], "filter_methods": ["manually"],
            "manually_param": {"filter_out_names": ["host_10000_x3"]}}
    out = _run(tmp_path, HeteroFeatureSelection, guest, x, y, host, hx)
    assert out[HOST].data[0].meta.feature_columns == ["h0", "h1", "h2"]  # h2 is no candidate: kept
    assert out[HOST].model["select_cols"] == ["h0", "h1", "h3"]
    host["manually_param"] = {"left_col_names": ["host_10000_x1"]}
    out = _run(tmp_path / "b", HeteroFeatureSelection, guest, x, y, host, hx)
    assert out[HOST].data[0].meta.feature_columns == ["h1", "h2"]
    host["manually_param"] = {"filter_out_names": ["h3"]}
    with pytest.raises(ComponentError, match=r"manually_param.filter_out_names \['h3'\] are not anonymous names"):
        _run(tmp_path / "c", HeteroFeatureSelection, guest, x, y, host, hx)


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    x, hx, y = _data(180, seed=3, classes=3)
    params = {"bin_num": 4, "encrypt_param": KEY, "transform_param": {"transform_type": None}}
    out = _run(tmp_path_factory.mktemp("mc"), HeteroFeatureBinning, params, x, y, params, hx)
    gm, hm = out[GUEST].model, out[HOST].model
    ivs = {}  # central one-vs-rest IVs on the models' split points, by guest name / anonymous host name
    for cols, names, m, label in ((x, GNAMES, gm, None), (hx, HNAMES, hm, "host_10000_x")):
        for j, n in enumerate(names):
            sp = m["binning_result"][n]["split_points"]
            ivs[n if label is None else f"{label}{j}"] = [central_stats(cols[:, j], (y == k).astype(float), sp)["iv"]
                                                          for k in (0.0, 1.0, 2.0)]
    return x, hx, y, gm, hm, ivs


def test_multiclass_binning_gives_one_vs_rest_ivs(multiclass):
    _, _, _, gm, hm, ivs = multiclass
    assert gm["labels"] == [0.0, 1.0, 2.0]
    got = {**{n: gm["binning_result"][n]["multiclass_iv"] for n in GNAMES if n != "g2"},
           **gm["host_results"]["10000"]}
    for name, expected in ivs.items():
        if name == "g2":
            continue
        values = got[name] if name in GNAMES else got[name]["multiclass_iv"]
        assert values == pytest.approx(expected), name


@pytest.mark.parametrize("merge", ["max", "min", "average"])
def test_multiclass_iv_merge(tmp_path, multiclass, merge):
    x, hx, y, gm, hm, ivs = multiclass
    params = {"filter_methods": ["iv_filter"],
              "iv_param": {"filter_type": "top_k", "threshold": 3, "mul_class_merge_type": merge}}
    out = _run(tmp_path, HeteroFeatureSelection, params, x, y, params, hx, iso=([gm], [hm]))
    merged = {k: {"max": max, "min": min, "average": lambda v: sum(v) / len(v)}[merge](v) for k, v in ivs.items()}
    expected = set(sorted(merged, key=merged.get, reverse=True)[:3])
    kept = set(out[GUEST].data[0].meta.feature_columns) | {
        f"host_10000_x{HNAMES.index(c)}" for c in out[HOST].data[0].meta.feature_columns}
    assert kept == expected


def test_sbt_filter_reads_feature_importance(tmp_path):
    x, hx, y = _data()
    guest_tree = {"feature_importance": [{"party": "guest", "feature": "g1", "split": 3, "gain": 1.0},
                                         {"party": "guest", "feature": "g3", "split": 1, "gain": 0.2},
                                         {"party": "host:10000", "feature": None, "split": 4, "gain": 2.0}]}
    host_tree = {"feature_importance": [{"party": "host:10000", "feature": "h2", "split": 4}]}
    params = {"filter_methods": ["hetero_sbt_filter"],
              "sbt_param": {"metrics": "feature_importance", "filter_type": "threshold", "threshold": 0.03}}
    out = _run(tmp_path, HeteroFeatureSelection, params, x, y, params, hx, iso=([guest_tree], [host_tree]))
    assert out[GUEST].data[0].meta.feature_columns == ["g1", "g3"]
    assert out[HOST].data[0].meta.feature_columns == ["h2"]
    params["sbt_param"] = {"filter_type": "top_k", "threshold": 1}
    with pytest.raises(ComponentError, match=r"not supported: sbt_param filter_type \['top_k'\]"):
        _run(tmp_path / "b", HeteroFeatureSelection, params, x, y, params, hx, iso=([guest_tree], [host_tree]))


def test_params_refusals():
    model = HeteroFeatureSelection.params_model
    with pytest.raises(ValueError, match="not supported: filter_methods"):
        model(filter_methods=["no_such_filter"])
    with pytest.raises(ValueError, match="mul_class_merge_type"):
        model(iv_param={"mul_class_merge_type": "median"})
    with pytest.raises(ValueError, match="mul_class_merge_type has 1 entries for 2 metrics"):
        model(iv_param={"metrics": ["iv", "iv"], "mul_class_merge_type": ["max"]})
    model(iv_param={"metrics": ["iv", "iv", "iv"], "host_thresholds": [[0.15], None, None]})
