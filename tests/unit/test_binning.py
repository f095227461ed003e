"""HeteroFeatureBinning: split points vs numpy, WOE/IV of guest and host features vs a
centralised computation (numpy) on the same bins, transforms, stored-model transforms."""

from __future__ import annotations

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.feature.binning import HeteroFeatureBinning
from federation.api import Party
from flow.core.errors import ComponentError
from flow.models.format import dump_model, load_model_text
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

HOST2 = Party("host", "10001")


def make_data(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    guest = np.c_[rng.normal(y, 1.0), rng.integers(0, 4, n), rng.exponential(1 + y)]
    host = np.c_[rng.normal(-y, 2.0), rng.random(n), rng.integers(0, 3, n) + 3 * y, rng.normal(size=n)]
    host[rng.choice(n, 15, replace=False), 3] = np.nan  # missing values get their own bin
    return guest, host, y


def central_stats(values: np.ndarray, y: np.ndarray, split_points: list[float], af: float = 0.5) -> dict:
    """WOE/IV from scratch: np.digitize on the inner edges (right-closed bins), missing values last."""
    k = len(split_points)
    bins = np.where(np.isnan(values), k, np.digitize(values, split_points[:-1], right=True))
    n_bins = k + int((bins == k).any())
    ev = np.array([y[bins == b].sum() for b in range(n_bins)])
    ne = np.array([(bins == b).sum() for b in range(n_bins)]) - ev
    iv, woes = 0.0, []
    for e, n in zip(ev, ne):
        if e == 0 or n == 0:
            e, n = e + af, n + af
        er, nr = e / y.sum(), n / (len(y) - y.sum())
        woes.append(np.log(er / nr))
        iv += (er - nr) * woes[-1]
    return {"iv": iv, "woe": woes, "bin": bins, "event": ev}


def numpy_quantiles(values: np.ndarray, k: int) -> np.ndarray:
    v = values[~np.isnan(values)]
    return np.unique(np.quantile(v, np.arange(1, k + 1) / k, method="inverted_cdf"))


@pytest.fixture(scope="module")
def sessions():
    # inline_below=0: every table operation runs in the worker pool, so the shipped
    # functions and ciphertexts are pickled as in a real job
    with LocalSession(partitions=3, workers=1, inline_below=0) as g, \
            LocalSession(partitions=3, workers=1, inline_below=0) as h:
        yield g, h


def test_quantile_iv_of_guest_and_host_match_centralised(tmp_path, sessions):
    gs, hs = sessions
    guest_x, host_x, y = make_data()
    gnames, hnames = ["g0", "g1", "g2"], ["h0", "h1", "h2", "h3"]
    params = {"method": "quantile", "bin_num": 6, "encrypt_param": {"key_length": 512, "allow_short_key": True},
              "category_names": ["g1"]}
    out = run_parties(tmp_path, HeteroFeatureBinning, {
        GUEST: (gs, params, Inputs(data={"data": dataset(gs, guest_x, gnames, y)})),
        HOST: (hs, {**params, "category_names": None}, Inputs(data={"data": dataset(hs, host_x, hnames)})),
        HOST2: (hs, {"bin_num": 3}, Inputs(data={"data": dataset(hs, host_x[:, 2:3] * 2, ["z"])})),
    })
    (g_out, g_track), (h_out, _) = out[GUEST], out[HOST]
    gm, hm = g_out.model, h_out.model

    # split points: each party's own, equal to numpy's quantiles; the category column has one bin per value
    for j, name in [(0, "g0"), (2, "g2")]:
        np.testing.assert_array_equal(gm["binning_result"][name]["split_points"], numpy_quantiles(guest_x[:, j], 6))
    assert gm["binning_result"]["g1"]["split_points"] == [0.0, 1.0, 2.0, 3.0]
    for j, name in enumerate(hnames):
        np.testing.assert_array_equal(hm["binning_result"][name]["split_points"], numpy_quantiles(host_x[:, j], 6))
    counts = hm["binning_result"]["h1"]["count_array"]  # a continuous column: equal-frequency bins
    assert len(counts) == 6 and max(counts) - min(counts) <= 1

    # IV / WOE within 1e-6 of the centralised computation on the same bins
    for j, name in enumerate(gnames):
        ref = central_stats(guest_x[:, j], y, gm["binning_result"][name]["split_points"])
        assert abs(gm["binning_result"][name]["iv"] - ref["iv"]) < 1e-6
        np.testing.assert_allclose(gm["binning_result"][name]["woe_array"], ref["woe"], atol=1e-6)
    host_result = gm["host_results"]["10000"]
    assert sorted(host_result) == [f"host_10000_x{i}" for i in range(4)]  # anonymous names only
    for j, name in enumerate(hnames):
        ref = central_stats(host_x[:, j], y, hm["binning_result"][name]["split_points"])
        got = host_result[f"host_10000_x{j}"]
        assert abs(got["iv"] - ref["iv"]) < 1e-6, name
        np.testing.assert_allclose(got["event_count_array"], ref["event"])
        assert "split_points" not in got
    # a second host: its own bins, its own key in the guest's model
    z_points = out[HOST2][0].model["binning_result"]["z"]["split_points"]
    np.testing.assert_array_equal(z_points, numpy_quantiles(host_x[:, 2] * 2, 3))
    ref = central_stats(host_x[:, 2] * 2, y, z_points)
    assert abs(gm["host_results"]["10001"]["host_10001_x0"]["iv"] - ref["iv"]) < 1e-6
    assert host_result["host_10000_x3"]["has_missing_bin"] and len(host_result["host_10000_x3"]["woe_array"]) == 7
    assert g_track.metrics[("binning", "iv")]["host_10000_x2"] == host_result["host_10000_x2"]["iv"]
    # the host's model holds no label statistics
    assert not any(k in hm["binning_result"]["h0"] for k in ("iv", "woe_array", "event_count_array"))

    # default transform: bin numbers on both parties, the missing bin after the regular ones
    ids, gx, _ = rows_of(g_out.data[0])
    ref = central_stats(guest_x[:, 0], y, gm["binning_result"]["g0"]["split_points"])
    np.testing.assert_array_equal(gx[:, 0], ref["bin"][[int(i[2:]) for i in ids]])
    ids, hx, _ = rows_of(h_out.data[0])
    ref = central_stats(host_x[:, 3], y, hm["binning_result"]["h3"]["split_points"])
    np.testing.assert_array_equal(hx[:, 3], ref["bin"][[int(i[2:]) for i in ids]])


def test_bucket_woe_transform_and_stored_model(tmp_path):
    guest_x, host_x, y = make_data(150, seed=1)
    params = {"method": "bucket", "bin_num": 4, "bin_indexes": [0, 2], "local_only": True,
              "transform_param": {"transform_cols": [2], "transform_type": "woe"}}
    with LocalSession(partitions=2, workers=1) as s:
        out = run_parties(tmp_path, HeteroFeatureBinning, {
            GUEST: (s, params, Inputs(data={"data": dataset(s, guest_x, ["a", "b", "c"], y)})),
            HOST: (s, {"local_only": True, "transform_param": {"transform_type": None}},
                   Inputs(data={"data": dataset(s, host_x, ["h0", "h1", "h2", "h3"])})),
        })
        model = out[GUEST][0].model
        col = guest_x[:, 2]
        expected = np.linspace(col.min(), col.max(), 5)[1:]
        np.testing.assert_allclose(model["binning_result"]["c"]["split_points"], expected, rtol=1e-12)
        assert model["bin_cols"] == ["a", "c"] and model["host_results"] == {}
        ids, x, _ = rows_of(out[GUEST][0].data[0])
        ref = central_stats(col, y, model["binning_result"]["c"]["split_points"])
        order = [int(i[2:]) for i in ids]
        np.testing.assert_allclose(x[:, 2], np.asarray(ref["woe"])[ref["bin"]][order], atol=1e-9)
        np.testing.assert_array_equal(x[:, :2], guest_x[order, :2])  # untouched columns
        np.testing.assert_array_equal(rows_of(out[HOST][0].data[0])[1], host_x)  # transform_type null

        # a stored model (JSON round trip) transforms new rows the same way, without refitting
        new = np.array([[0.0, 1.0, col.max() + 5], [0.0, 1.0, col.min()]])
        stored = load_model_text(dump_model(model))
        res = run_parties(tmp_path / "again", HeteroFeatureBinning, {
            GUEST: (s, params, Inputs(data={"data": dataset(s, new, ["a", "b", "c"], np.array([0.0, 1.0]))},
                                      model=[stored]))})
        _, x2, _ = rows_of(res[GUEST][0].data[0])
        np.testing.assert_allclose(x2[:, 2], [ref["woe"][-1], ref["woe"][0]])


def test_bad_inputs_are_named(tmp_path):
    guest_x, host_x, y = make_data(40)
    with LocalSession(partitions=1, workers=1) as s:
        with pytest.raises(ComponentError, match="cpn_0: transform_param.transform_type 'woe' is for the guest only"):
            run_parties(tmp_path, HeteroFeatureBinning, {
                HOST: (s, {"transform_param": {"transform_type": "woe"}},
                       Inputs(data={"data": dataset(s, host_x, ["a", "b", "c", "d"])}))})
        with pytest.raises(ComponentError, match="binary labels"):
            run_parties(tmp_path / "b", HeteroFeatureBinning, {
                GUEST: (s, {}, Inputs(data={"data": dataset(s, guest_x, ["a", "b", "c"], y * 2 + 1)}))})
        with pytest.raises(ComponentError, match=r"bin_names \['zz'\] not among columns"):
            run_parties(tmp_path / "c", HeteroFeatureBinning, {
                GUEST: (s, {"bin_indexes": [], "bin_names": ["zz"]},
                        Inputs(data={"data": dataset(s, guest_x, ["a", "b", "c"], y)}))})
