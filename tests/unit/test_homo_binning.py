"""HomoFeatureBinning: the split points found from masked count sums equal the quantiles of
the pooled rows, and the arbiter sees only sums."""

from __future__ import annotations

import contextlib

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.crypto.secure_agg import add_words, decode
from components.feature.homo_binning import (
    HomoFeatureBinning,
    HomoFeatureBinningParams,
    QuantileSearch,
    from_keys,
    local_counts,
    order_keys,
)
from federation.api import Party
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

HOST2, ARBITER = Party("host", "10001"), Party("arbiter", "10002")
NAMES = ["a", "b", "c", "d"]


def pooled_quantiles(x: np.ndarray, bin_num: int) -> list[np.ndarray]:
    """The centralised answer: numpy's inverted_cdf quantiles of each pooled column."""
    q = np.arange(1, bin_num + 1) / bin_num
    out = []
    for col in x.T:
        v = col[np.isfinite(col)]
        out.append(np.unique(np.quantile(v, q, method="inverted_cdf")) if len(v) else np.zeros(0))
    return out


def shares(rng: np.random.Generator) -> list[np.ndarray]:
    """Three parties' rows of the same four columns, with other distributions per party:
    continuous, heavy ties, negative and -0.0 values, and missing values."""
    out = []
    for n, shift in ((57, 0.0), (41, 3.0), (23, -2.0)):
        x = np.c_[rng.normal(shift, 1 + shift ** 2, n), rng.integers(0, 4, n).astype(float),
                  -np.abs(rng.standard_cauchy(n)) * 1e6, rng.normal(size=n)]
        x[rng.random(n) < 0.2, 3] = np.nan
        x[:3, 1] = -0.0
        out.append(x)
    return out


def run_binning(tmp_path, xs: list[np.ndarray], params: dict, model=None):
    parties = [GUEST, HOST, HOST2]
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(LocalSession(partitions=2, workers=1)) for _ in parties]
        jobs = {p: (s, params, Inputs(data={"data": dataset(s, x, NAMES, name=p.party_id)},
                                      model=[model[p]] if model else []))
                for p, s, x in zip(parties, sessions, xs)}
        arb = stack.enter_context(LocalSession(partitions=1, workers=1))
        jobs[ARBITER] = (arb, params, Inputs(model=[model[ARBITER]] if model else []))
        results = run_parties(tmp_path, HomoFeatureBinning, jobs)
        data = {p: rows_of(results[p][0].data[0]) for p in parties}
    return results, data


def test_order_keys_keep_the_order_of_floats():
    v = np.array([-np.inf, -1e300, -2.5, -1e-300, -0.0, 0.0, 1e-300, 3.0, 1e308, np.inf])
    k = order_keys(v)
    assert np.all(np.diff(k.astype(object)) >= 0) and k[4] == k[5]
    assert np.array_equal(from_keys(k)[5:], v[5:]) and np.array_equal(from_keys(k)[:4], v[:4])


def test_search_finds_the_exact_quantiles_of_one_column():
    rng = np.random.default_rng(3)
    for values in (rng.normal(size=101), np.repeat([1.0, 2.0, 2.5], [5, 1, 30]), np.array([7.0])):
        keys = [np.sort(order_keys(values))]
        search = QuantileSearch(np.array([len(values)]), 10)
        while not search.done:
            q = search.queries()
            search.narrow(q, local_counts(keys, search.column, q).astype(np.int64))
        assert np.array_equal(search.split_points(1)[0], pooled_quantiles(values[:, None], 10)[0])


def test_split_points_equal_pooled_quantiles_and_the_arbiter_sees_sums(tmp_path, monkeypatch):
    xs = shares(np.random.default_rng(11))
    seen: list[list[np.ndarray]] = []
    check = HomoFeatureBinning._check

    def record(ctx, parties, updates, names):
        seen.append([np.asarray(u) for u in updates])
        check(ctx, parties, updates, names)
    monkeypatch.setattr(HomoFeatureBinning, "_check", staticmethod(record))
    results, data = run_binning(tmp_path, xs, {"bin_num": 7})
    # round 0: the arbiter gets masked words whose sum (only) is the pooled count per column
    counts = [np.isfinite(x).sum(axis=0) for x in xs]
    for words, n in zip(seen[0], counts):
        assert not np.array_equal(decode(words, 0), n)
    assert np.array_equal(decode(add_words(seen[0]), 0), sum(counts))
    expected = pooled_quantiles(np.vstack(xs), 7)
    models = [results[p][0].model for p in (GUEST, HOST, HOST2)]
    for model in models:
        assert model["bin_cols"] == NAMES
        for name, sp in zip(NAMES, expected):
            assert np.array_equal(model["binning_result"][name]["split_points"], sp), name
    # the transform is the bin index of each value under the common split points (missing: after the bins)
    for party, x in zip((GUEST, HOST, HOST2), xs):
        _, got, _ = data[party]
        for j, sp in enumerate(expected):
            want = np.where(np.isnan(x[:, j]), len(sp), np.minimum(np.searchsorted(sp, x[:, j]), len(sp) - 1))
            assert np.array_equal(got[:, j], want)
    arbiter_model = results[ARBITER][0].model
    assert arbiter_model["bin_cols"] == NAMES and "binning_result" not in arbiter_model
    assert 0 < arbiter_model["search_rounds"] <= 16


def test_predict_applies_the_stored_split_points(tmp_path):
    xs = shares(np.random.default_rng(5))
    fit, _ = run_binning(tmp_path / "fit", xs, {"bin_num": 4, "bin_indexes": [], "bin_names": ["a", "d"]})
    models = {p: fit[p][0].model for p in fit}
    new = [x[::-1] * 1.5 for x in xs]
    results, data = run_binning(tmp_path / "predict", new, {"bin_num": 4}, model=models)
    sp = models[GUEST]["binning_result"]["a"]["split_points"]
    assert models[GUEST]["bin_cols"] == ["a", "d"]
    _, got, _ = data[HOST]
    assert np.array_equal(got[:, 0], np.minimum(np.searchsorted(sp, new[1][:, 0]), len(sp) - 1))
    assert np.array_equal(got[:, 1], new[1][:, 1])  # not binned


def test_params_follow_fate_and_refuse_what_is_not_done():
    HomoFeatureBinningParams(method="recursive_query", error=0.01, sample_bins=50, max_iter=10)
    with pytest.raises(pydantic.ValidationError):
        HomoFeatureBinningParams(method="quantile")  # FATE's homo binning: virtual_summary / recursive_query
    with pytest.raises(pydantic.ValidationError, match="not supported: HomoFeatureBinning category"):
        HomoFeatureBinningParams(category_indexes=[0])
    with pytest.raises(pydantic.ValidationError, match="not supported: HomoFeatureBinning transform_param"):
        HomoFeatureBinningParams(transform_param={"transform_type": "woe"})
    assert "error" in HomoFeatureBinningParams(error=0.01).notices()


def test_parties_binning_other_columns_are_told(tmp_path):
    xs = shares(np.random.default_rng(2))
    parties = [GUEST, HOST, HOST2]
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(LocalSession(partitions=2, workers=1)) for _ in parties]
        jobs = {p: (s, {"bin_indexes": [0, 1] if p == HOST2 else [0, 2]},
                    Inputs(data={"data": dataset(s, x, NAMES, name=p.party_id)}))
                for p, s, x in zip(parties, sessions, xs)}
        jobs[ARBITER] = (stack.enter_context(LocalSession(partitions=1, workers=1)), {}, Inputs())
        with pytest.raises(ComponentError, match=r"host:10001 bins columns \['a', 'b'\]"):
            run_parties(tmp_path, HomoFeatureBinning, jobs)
