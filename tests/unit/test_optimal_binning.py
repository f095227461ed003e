"""Optimal binning: the staged greedy merge against a from-scratch reference, on one party
and across guest and host (the host's bins chosen by the guest from encrypted counts)."""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.feature.binning import FeatureBinningParams, HeteroFeatureBinning
from components.feature.optimal_binning import OptimalBinningParam, merge_bins
from tests.unit.test_binning import central_stats, numpy_quantiles
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

# ---------------------------------------------------------------- the reference, plain Python

def _iv1(e: float, n: float, te: float, tn: float, af: float) -> float:
    if e == 0 or n == 0:
        e, n = e + af, n + af
    return (e / te - n / tn) * math.log((e / te) / (n / tn))


def _gini_mass(e: float, n: float) -> float:
    t = e + n
    return 0.0 if t == 0 else t * (1 - (e / t) ** 2 - (n / t) ** 2)


def _cost(bins: list[list[float]], i: int, metric: str, te: float, tn: float, af: float) -> float:
    (el, nl), (er, nr) = bins[i], bins[i + 1]
    if metric == "iv":
        return _iv1(el, nl, te, tn, af) + _iv1(er, nr, te, tn, af) - _iv1(el + er, nl + nr, te, tn, af)
    if metric == "gini":
        return _gini_mass(el + er, nl + nr) - _gini_mass(el, nl) - _gini_mass(er, nr)
    if metric == "chi_square":
        table, total, chi = [[el, nl], [er, nr]], el + nl + er + nr, 0.0
        for r in range(2):
            for c in range(2):
                exp = sum(table[r]) * (table[0][c] + table[1][c]) / total if total else 0.0
                chi += (table[r][c] - exp) ** 2 / exp if exp > 0 else 0.0
        return chi
    ce = sum(b[0] for b in bins[:i + 1])  # ks: the boundary after bin i
    cn = sum(b[1] for b in bins[:i + 1])
    return abs(ce / max(te, 1) - cn / max(tn, 1))


def reference_merge(event, non_event, bin_num: int, metric: str, mixture: bool, min_pct: float,
                    max_pct: float, af: float = 0.5) -> list[int]:
    """Kept initial bins (right edges) after FATE's staged greedy merge, from scratch."""
    bins = [[float(e), float(n)] for e, n in zip(event, non_event)]
    ends = list(range(len(bins)))
    te, tn = sum(b[0] for b in bins), sum(b[1] for b in bins)
    total = te + tn
    max_n, min_n = math.floor(max_pct * total), math.ceil(min_pct * total)

    def unmixed(b):
        return b[0] == 0 or b[1] == 0

    def small(b):
        return b[0] + b[1] < min_n

    stages = ([(unmixed, all), (unmixed, any)] if mixture else []) + [(small, all), (small, any), (None, None)]
    for bad, rule in stages:
        while len(bins) > 1:
            aim = sum(bad(b) for b in bins) if bad else len(bins) - bin_num
            if aim <= 0:
                break
            costs = {}
            for i in range(len(bins) - 1):
                if sum(bins[i]) + sum(bins[i + 1]) > max_n:
                    continue
                if bad and not rule([bad(bins[i]), bad(bins[i + 1])]):
                    continue
                costs[i] = _cost(bins, i, metric, te, tn, af)
            if not costs:
                break
            low = min(costs.values())  # near-equal costs (1e-9 relative) are a tie: the leftmost wins
            i = min(k for k, c in costs.items() if c <= low + 1e-9 * max(1.0, abs(low)))
            bins[i] = [bins[i][0] + bins[i + 1][0], bins[i][1] + bins[i + 1][1]]
            del bins[i + 1], ends[i]
    return ends


def reference_optimal_points(values: np.ndarray, y: np.ndarray, init_points: np.ndarray, bin_num: int,
                             metric: str, mixture: bool, min_pct: float, max_pct: float) -> np.ndarray:
    """Optimal split points of one column on the joined data (missing values aside)."""
    ok = ~np.isnan(values)
    bins = np.digitize(values[ok], init_points[:-1], right=True)
    ev = [float(y[ok][bins == b].sum()) for b in range(len(init_points))]
    ne = [float((bins == b).sum()) - e for b, e in enumerate(ev)]
    return init_points[reference_merge(ev, ne, bin_num, metric, mixture, min_pct, max_pct)]


# ---------------------------------------------------------------- the merge itself

@pytest.mark.parametrize("metric", ["iv", "gini", "ks", "chi_square"])
@pytest.mark.parametrize("mixture,min_pct,max_pct", [(True, 0.05, 0.8), (False, 0.0, 1.0), (True, 0.1, 0.3)])
def test_merge_matches_the_reference(metric, mixture, min_pct, max_pct):
    rng = np.random.default_rng(7)
    for trial in range(6):
        k = int(rng.integers(2, 60))
        total = rng.integers(0, 30, size=k).astype(float)
        event = np.floor(total * rng.beta(0.6, 0.6, size=k))
        param = OptimalBinningParam(metric_method=metric, mixture=mixture, min_bin_pct=min_pct, max_bin_pct=max_pct)
        bin_num = int(rng.integers(2, 8))
        got = merge_bins(event, total - event, bin_num, param, 0.5)
        assert got == reference_merge(event, total - event, bin_num, metric, mixture, min_pct, max_pct), trial
        assert got[-1] == k - 1 and got == sorted(got)


def test_the_final_stage_stops_at_bin_num_and_max_pct_is_never_broken():
    event, non_event = np.array([5, 0, 3, 4, 0, 9, 1, 1.0]), np.array([0, 6, 3, 2, 7, 1, 8, 1.0])
    ends = merge_bins(event, non_event, 3, OptimalBinningParam(mixture=True, max_bin_pct=1.0), 0.5)
    assert len(ends) == 3
    ends = merge_bins(event, non_event, 2, OptimalBinningParam(mixture=False, max_bin_pct=0.3), 0.5)
    sizes = np.add.reduceat(event + non_event, [0] + [e + 1 for e in ends[:-1]])
    assert sizes.max() <= math.floor(0.3 * (event + non_event).sum()) or len(ends) == len(event)


def test_params_fate_spellings_and_refusals():
    p = FeatureBinningParams.model_validate({"method": "optimal", "optimal_binning_param": {
        "metric_method": "chi-square", "init_bucket_method": "bucket", "init_bin_nums": 100, "mixture": True,
        "min_bin_pct": 0.05, "max_bin_pct": 0.8}})
    assert p.optimal_binning_param.metric_method == "chi_square"
    for bad in ({"method": "optimal", "optimal_binning_param": {"metric_method": "entropy"}},
                {"method": "optimal", "skip_static": True}):
        with pytest.raises(pydantic.ValidationError) as exc:
            FeatureBinningParams.model_validate(bad)
        assert exc.value.errors()[0]["msg"].startswith("not supported: ")


# ---------------------------------------------------------------- guest and host

def test_guest_and_host_optimal_points_match_the_central_merge(tmp_path):
    rng = np.random.default_rng(3)
    n = 300
    gx, hx = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    y = (gx[:, 0] + hx[:, 0] + 0.7 * rng.normal(size=n) > 0).astype(float)
    hx[rng.choice(n, 9, replace=False), 1] = np.nan  # a missing bin on the host, never merged
    opt = {"metric_method": "gini", "init_bin_nums": 40, "mixture": True, "min_bin_pct": 0.05, "max_bin_pct": 0.8}
    params = {"method": "optimal", "bin_num": 5, "optimal_binning_param": opt,
              "encrypt_param": {"key_length": 512, "allow_short_key": True}}
    with LocalSession(partitions=2, workers=1) as gs, LocalSession(partitions=2, workers=1) as hs:
        out = run_parties(tmp_path, HeteroFeatureBinning, {
            GUEST: (gs, params, Inputs(data={"data": dataset(gs, gx, ["g0", "g1"], y)})),
            HOST: (hs, params, Inputs(data={"data": dataset(hs, hx, ["h0", "h1"])})),
        })
        gm, hm = out[GUEST][0].model, out[HOST][0].model
        for values, name, result in [(gx[:, 0], "g0", gm["binning_result"]["g0"]),
                                     (gx[:, 1], "g1", gm["binning_result"]["g1"]),
                                     (hx[:, 0], "h0", gm["host_results"]["10000"]["host_10000_x0"]),
                                     (hx[:, 1], "h1", gm["host_results"]["10000"]["host_10000_x1"])]:
            own = (gm if name[0] == "g" else hm)["binning_result"][name]
            ref = reference_optimal_points(values, y, numpy_quantiles(values, 40), 5, "gini", True, 0.05, 0.8)
            np.testing.assert_array_equal(own["split_points"], ref, err_msg=name)
            assert len(ref) <= 5
            assert abs(result["iv"] - central_stats(values, y, ref)["iv"]) < 1e-6, name
        assert not any(k in hm["binning_result"]["h0"] for k in ("iv", "woe_array", "event_count_array"))
        ids, hout, _ = rows_of(out[HOST][0].data[0])  # the host's transform uses the merged points
        ref = central_stats(hx[:, 0], y, hm["binning_result"]["h0"]["split_points"])
        np.testing.assert_array_equal(hout[:, 0], ref["bin"][[int(i[2:]) for i in ids]])
