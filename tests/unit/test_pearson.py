"""HeteroPearson (Paillier cross products) against numpy's corrcoef on the joined data, VIF
against least-squares R², and the vif/correlation filters of HeteroFeatureSelection
against a plain re-computation of FATE's rules on the central correlations and IVs."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs, Outputs
from components.feature.binning import HeteroFeatureBinning
from components.feature.selection import HeteroFeatureSelection
from components.statistics.pearson import HeteroPearson, PearsonParams, vif_from_corr
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties

GNAMES, HNAMES = ["g0", "g1", "g2", "g3"], ["h0", "h1", "h2", "h3", "h4"]
KEY = {"fixpoint_bit_length": 512, "allow_short_key": True}


def make_data(n: int = 80, seed: int = 3):
    """Correlated columns across both parties (shared latent factors); host h4 is constant."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 2))
    y = (f[:, 0] + rng.normal(0, 0.7, n) > 0).astype(float)
    guest = np.c_[f[:, 0] + 0.2 * rng.normal(size=n), f[:, 0] + 0.3 * rng.normal(size=n), rng.normal(size=n),
                  f[:, 1] + 0.5 * rng.normal(size=n)]
    host = np.c_[f[:, 1] + 0.1 * rng.normal(size=n), -f[:, 0] + 0.4 * rng.normal(size=n), rng.exponential(size=n),
                 f[:, 1] + f[:, 0] + rng.normal(size=n), np.full(n, 2.5)]
    return guest, host, y


def pearson(tmp_path, guest_x, host_x, y, params, host_order=None, host_params=None):
    ids = [f"id{i:04d}" for i in range(len(guest_x))]
    order = host_order if host_order is not None else np.arange(len(host_x))
    with LocalSession(partitions=3, workers=1) as s:
        out = run_parties(tmp_path, HeteroPearson, {
            GUEST: (s, params, Inputs(data={"data": dataset(s, guest_x, GNAMES, y, ids=ids)})),
            HOST: (s, host_params or params, Inputs(data={"train_data": dataset(s, host_x[order], HNAMES,
                                                                 ids=[ids[i] for i in order])}))})
    return out[GUEST][0].model, out[HOST][0].model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    guest_x, host_x, y = make_data()
    shuffled = np.random.default_rng(1).permutation(len(host_x))  # the host's rows come in another order
    gm, hm = pearson(tmp_path_factory.mktemp("p"), guest_x, host_x, y, {"column_indexes": -1, **KEY}, shuffled)
    return guest_x, host_x, y, gm, hm


def nan_corrcoef(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(x, rowvar=False)


def test_correlations_equal_corrcoef_of_the_joined_data(models):
    guest_x, host_x, _, gm, hm = models
    joined = nan_corrcoef(np.c_[guest_x, host_x])
    g, h = len(GNAMES), len(HNAMES)
    np.testing.assert_allclose(np.array(gm["local_corr"], dtype=float), joined[:g, :g], atol=1e-9)
    (cross,) = gm["cross"]
    assert cross["party_id"] == "10000" and cross["names"] == [f"host_10000_x{j}" for j in range(h)]
    corr = np.array(cross["corr"], dtype=float)
    np.testing.assert_allclose(corr[:, :4], joined[:g, g:g + 4], atol=1e-7)
    assert np.isnan(corr[:, 4]).all()  # the constant column has no correlation
    host_local = np.array(hm["local_corr"], dtype=float)
    np.testing.assert_allclose(host_local[:4, :4], joined[g:g + 4, g:g + 4], atol=1e-9)
    assert np.isnan(host_local[4]).all() and np.isnan(host_local[:, 4]).all()
    assert "cross" not in hm  # the cross matrix stays with the guest


def _vif_by_regression(x: np.ndarray) -> np.ndarray:
    """1 / (1 - R²) of each column regressed (least squares, with intercept) on the others."""
    out = []
    for j in range(x.shape[1]):
        a = np.c_[np.ones(len(x)), np.delete(x, j, axis=1)]
        coef, *_ = np.linalg.lstsq(a, x[:, j], rcond=None)
        resid = x[:, j] - a @ coef
        out.append(1.0 / (((resid ** 2).sum()) / ((x[:, j] - x[:, j].mean()) ** 2).sum()))
    return np.array(out)


def test_local_vif_is_one_over_one_minus_r_squared(models):
    guest_x, host_x, _, gm, hm = models
    np.testing.assert_allclose(gm["local_vif"], _vif_by_regression(guest_x), rtol=1e-6)
    host_vif = np.array(hm["local_vif"], dtype=float)
    np.testing.assert_allclose(host_vif[:4], _vif_by_regression(host_x[:, :4]), rtol=1e-6)
    assert np.isnan(host_vif[4])
    # an exactly collinear pair: the pseudo-determinants of FATE's rule stay finite
    x = np.random.default_rng(0).normal(size=(50, 3))
    x = np.c_[x, x[:, 0] + x[:, 1]]
    vif = vif_from_corr(np.corrcoef(x, rowvar=False))
    assert np.isfinite(vif).all() and vif.shape == (4,)


def test_column_selection_and_no_cross_parties(tmp_path):
    guest_x, host_x, y = make_data(40, seed=5)
    gm, hm = pearson(tmp_path, guest_x, host_x, y, {"column_names": ["g0", "g2"], "column_indexes": [3],
                                                    "cross_parties": False, "calc_local_vif": False, **KEY},
                    host_params={"column_indexes": -1, "cross_parties": False, **KEY})
    assert gm["names"] == ["g0", "g2", "g3"] and "cross" not in gm and gm["local_vif"] is None
    np.testing.assert_allclose(np.array(gm["local_corr"], dtype=float),
                               np.corrcoef(guest_x[:, [0, 2, 3]], rowvar=False), atol=1e-9)


class _GuestSendsOnly(HeteroPearson):
    """The guest's first message and nothing more, so a host's refusal ends the test at once."""

    def guest(self, ctx, p, inputs):
        keys, _, z, _, model = self._local(ctx, p, inputs)
        self._send_encrypted(ctx, p, keys, z, ctx.role_parties("host"))
        return Outputs(model=model)


def test_host_refuses_other_rows_and_too_few_rows(tmp_path):
    guest_x, host_x, y = make_data(30)
    with LocalSession(partitions=2, workers=1) as s, pytest.raises(ComponentError, match="Intersection"):
        run_parties(tmp_path / "a", _GuestSendsOnly, {
            GUEST: (s, {"column_indexes": -1, **KEY}, Inputs(data={"data": dataset(s, guest_x, GNAMES, y)})),
            HOST: (s, {"column_indexes": -1, **KEY}, Inputs(data={"data": dataset(s, host_x[:-1], HNAMES)}))})
    with LocalSession(partitions=2, workers=1) as s, pytest.raises(ComponentError, match="reveal"):
        run_parties(tmp_path / "b", _GuestSendsOnly, {
            GUEST: (s, {"column_indexes": -1, **KEY}, Inputs(data={"data": dataset(s, guest_x[:4], GNAMES, y[:4])})),
            HOST: (s, {"column_indexes": -1, **KEY}, Inputs(data={"data": dataset(s, host_x[:4], HNAMES)}))})


@pytest.mark.parametrize("params, message", [
    ({"column_indexes": -1, "fixpoint_bit_length": 512}, "allow_short_key"),
    ({"column_indexes": 2}, "must be -1"),
    ({"column_indexes": -1, "column_names": ["a"]}, "ambiguous"),
    ({}, "at least one column"),
    ({"column_indexes": -1, "need_run": False}, "need_run"),
])
def test_params_refused_as_fate_does(params, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        PearsonParams(**params)
    assert PearsonParams(column_indexes=-1, use_mix_rand=True).notices() == {
        "use_mix_rand": "accepted for FATE compatibility, not acted on"}


# ---------------------------------------------------------------- the selection filters

@pytest.fixture(scope="module")
def iso(tmp_path_factory, models):
    guest_x, host_x, y, gm, hm = models
    params = {"bin_num": 4, "encrypt_param": {"key_length": 512, "allow_short_key": True},
              "transform_param": {"transform_type": None}}
    with LocalSession(partitions=2, workers=1) as s:
        out = run_parties(tmp_path_factory.mktemp("bin"), HeteroFeatureBinning, {
            GUEST: (s, params, Inputs(data={"data": dataset(s, guest_x, GNAMES, y)})),
            HOST: (s, params, Inputs(data={"data": dataset(s, host_x, HNAMES)}))})
    return {GUEST: [gm, out[GUEST][0].model], HOST: [hm, out[HOST][0].model]}


def select(tmp_path, models, iso, guest_params, host_params):
    guest_x, host_x, y, _, _ = models
    with LocalSession(partitions=2, workers=1) as s:
        out = run_parties(tmp_path, HeteroFeatureSelection, {
            GUEST: (s, guest_params, Inputs(data={"data": dataset(s, guest_x, GNAMES, y)}, isometric_model=iso[GUEST])),
            HOST: (s, host_params, Inputs(data={"data": dataset(s, host_x, HNAMES)}, isometric_model=iso[HOST]))})
    return out[GUEST][0].model, out[GUEST][0].data[0].meta.feature_columns, out[HOST][0].data[0].meta.feature_columns


def test_vif_filter_keeps_columns_at_or_below_the_threshold_per_party(tmp_path, models, iso):
    guest_x, host_x = models[0], models[1]
    params = {"filter_methods": ["vif_filter"], "vif_param": {"threshold": 5}}
    _, gcols, hcols = select(tmp_path, models, iso, params, params)
    gvif, hvif = _vif_by_regression(guest_x), _vif_by_regression(host_x[:, :4])
    assert gcols == [n for n, v in zip(GNAMES, gvif) if v <= 5]
    assert hcols == [n for n, v in zip(HNAMES, hvif) if v <= 5]  # h4 (constant, VIF NaN) goes
    assert len(gcols) < len(GNAMES)
    params = {"filter_methods": ["vif_filter"], "vif_param": {"threshold": 0.5}}  # nothing passes: keep the best
    _, gcols, hcols = select(tmp_path / "b", models, iso, params, params)
    assert gcols == [GNAMES[int(np.argmin(gvif))]] and hcols == [HNAMES[int(np.argmin(hvif))]]


def _walk(cands, ivs, corr, threshold):
    """FATE's correlation rule, spelled out: by IV high to low, a kept column drops the others
    correlated beyond the threshold."""
    kept = list(cands)
    for a in sorted(cands, key=lambda c: -ivs[c]):
        if a in kept:
            kept = [b for b in kept if b == a or not abs(corr.get((a, b), np.nan)) > threshold]
    return set(kept)


@pytest.mark.parametrize("federated", [False, True])
def test_correlation_filter_drops_the_lower_iv_of_each_correlated_pair(tmp_path, models, iso, federated):
    guest_x, host_x = models[0], models[1]
    gbin = iso[GUEST][1]
    ivs = {("g", n): gbin["binning_result"][n]["iv"] for n in GNAMES}
    cands = [("g", n) for n in GNAMES]
    joined = nan_corrcoef(np.c_[guest_x, host_x])
    names = cands + [("h", n) for n in HNAMES]
    corr = {(a, b): joined[i, j] for i, a in enumerate(names) for j, b in enumerate(names)
            if a[0] == "g" or b[0] == "g"}
    if federated:
        ivs.update({("h", n): gbin["host_results"]["10000"][f"host_10000_x{j}"]["iv"] for j, n in enumerate(HNAMES)})
        cands += [("h", n) for n in HNAMES]
    expected = _walk(cands, ivs, corr, 0.5)
    params = {"filter_methods": ["correlation_filter"],
              "correlation_param": {"sort_metric": "iv", "threshold": 0.5, "select_federated": federated}}
    model, gcols, hcols = select(tmp_path, models, iso, params, params)
    assert set(gcols) == {n for p, n in expected if p == "g"} and len(gcols) < len(GNAMES)
    if federated:
        assert set(hcols) == {n for p, n in expected if p == "h"} and len(hcols) < len(HNAMES)
        assert model["host_left_cols"]["10000"] == sorted(f"host_10000_x{HNAMES.index(n)}" for n in hcols)
    else:
        assert hcols == HNAMES


def test_correlation_filter_needs_its_models(tmp_path, models, iso):
    params = {"filter_methods": ["correlation_filter"], "correlation_param": {"select_federated": False}}
    guest_x, _, y, gm, _ = models
    with LocalSession(partitions=2, workers=1) as s, pytest.raises(ComponentError, match="HeteroFeatureBinning"):
        run_parties(tmp_path, HeteroFeatureSelection, {GUEST: (s, params, Inputs(
            data={"data": dataset(s, guest_x, GNAMES, y)}, isometric_model=[gm]))})
    with pytest.raises(pydantic.ValidationError):
        HeteroFeatureSelection.params_model(correlation_param={"sort_metric": "gain"})
