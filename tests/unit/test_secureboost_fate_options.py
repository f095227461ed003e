"""FATE's SecureBoost options, guest and hosts talking through the wire codec (threads), each
checked against the same boosting computed centrally on the joined columns in plain numpy
(its own gain, leaf weights, quantiles and missing routing; nothing of components.tree's maths):

* use_missing / zero_as_missing: a missing value follows the better of "left" and "right"
  at every split (right on a tie), and the stored direction when predicting;
* complete_secure: the first round uses the guest's columns only;
* HeteroFastSecureBoost layered / mix: which columns each layer / tree may use;
* EINI_inference (with EINI_random_mask): the same scores as the plain walk;
* feature_importance "importance" as feature_importance_type says.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from components.tree.fast_secureboost import HeteroFastSecureBoost, HeteroFastSecureBoostParams
from flow.core.errors import ComponentError
from tests.unit.test_secureboost_protocol import predictions, run_parties

BASE = {"num_trees": 3, "learning_rate": 0.3, "bin_num": 8, "n_iter_no_change": False,
        "encrypt_param": {"key_length": 512, "allow_short_key": True},
        "tree_param": {"max_depth": 3, "criterion_param": [0.1]}}

#: (boosting round, depth) -> the joined columns a split there may use
Allowed = Callable[[int, int], np.ndarray]


def central_binary(x: np.ndarray, y: np.ndarray, rounds: int, depth_max: int, allowed: Allowed,
                   missing: np.ndarray | None, lr: float = 0.3, lam: float = 0.1, n_bins: int = 8,
                   importance: dict | None = None, regression: bool = False) -> np.ndarray:
    """Binary boosting (log loss; or squared error with ``regression``) on the joined columns;
    P(y=1) (the prediction) per row. Columns in joined order (the guest's first), at each node
    the first best of: per column, every quantile threshold with the missing values right, then
    every one with them left; a later candidate must gain strictly more (and more than 1e-3)."""
    n = len(y)
    miss = np.zeros(x.shape, dtype=bool) if missing is None else missing
    qs = np.arange(1, n_bins + 1) / n_bins
    thresholds = [np.unique(np.quantile(x[~miss[:, j], j], qs)) for j in range(x.shape[1])]
    rate = y.mean()
    f = np.full(n, rate if regression else np.log(rate / (1 - rate)))
    for r in range(rounds):
        p = f if regression else 1 / (1 + np.exp(-f))
        g, h = (f - y, np.ones(n)) if regression else (p - y, p * (1 - p))
        out = np.zeros(n)
        frontier = [np.arange(n)]
        for depth in range(depth_max + 1):
            nxt = []
            for rows in frontier:
                G, H = g[rows].sum(), h[rows].sum()
                out[rows] = -G / (H + lam)
                if depth == depth_max or len(rows) < 2:
                    continue
                best, where = 1e-3, None
                for j in allowed(r, depth):
                    m = miss[rows, j]
                    for to_left in (False, True):
                        if to_left and not m.any():
                            continue
                        for t in thresholds[j]:
                            go = (x[rows, j] <= t) & ~m
                            if to_left:
                                if go.sum() == (~m).sum():
                                    continue
                                go = go | m
                            if go.all() or not go.any():
                                continue
                            gl, hl = g[rows][go].sum(), h[rows][go].sum()
                            gain = gl ** 2 / (hl + lam) + (G - gl) ** 2 / (H - hl + lam) - G ** 2 / (H + lam)
                            if gain > best:
                                best, where = gain, go
                                at = j
                if where is not None:
                    if importance is not None:
                        importance.setdefault(at, [0, 0.0])
                        importance[at][0] += 1
                        importance[at][1] += best
                    nxt += [rows[where], rows[~where]]
            frontier = nxt
        f += lr * out
    return f if regression else 1 / (1 + np.exp(-f))


def scores(out, column: int = 1) -> np.ndarray:
    got = predictions(out["guest"])
    return np.array([got[k][column] for k in sorted(got)])


#: squared error: continuous gradients from the first tree on (with log loss, the first tree's
#: gradients take two values and splits of equal left counts tie, whatever the column)
REG = {"task_type": "regression", "objective_param": {"objective": "lse"}}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(120, 6))
    y = (1.2 * x[:, 0] - 1.5 * x[:, 4] + x[:, 2] * x[:, 5] + 0.3 * rng.normal(size=120) > 0).astype(float)
    holes = rng.random(x.shape) < 0.15  # missing completely at random, in both parties' columns
    xm = np.where(holes, np.nan, x)
    xm[y == 1, 1] = np.where(rng.random(int(y.sum())) < 0.6, np.nan, xm[y == 1, 1])  # informative missingness
    return xm, y


def every(cols: range) -> Allowed:
    return lambda r, d: np.asarray(list(cols))


def test_use_missing_equals_central_routing_and_predict_reproduces(data):
    x, y = data
    p = {**BASE, "use_missing": True}
    out, _ = run_parties(x[:, :3], x[:, 3:], y, p)
    ref = central_binary(x, y, 3, 3, every(range(6)), np.isnan(x))
    np.testing.assert_allclose(scores(out), ref, atol=1e-9)
    g_model, h_model = out["guest"].model, out["host"].model
    assert g_model["use_missing"] and h_model["use_missing"] and not g_model["zero_as_missing"]
    directions = {s["missing_left"] for m in (g_model, h_model) for s in m["splits"]}
    assert directions == {True, False}  # learned, not a fixed default
    again, _ = run_parties(x[:, :3], x[:, 3:], y, BASE, model=(g_model, h_model))  # predict conf without the flag
    np.testing.assert_allclose(scores(again), scores(out), atol=1e-12)


def test_zero_as_missing_routes_zeros_and_without_use_missing_nan_is_refused(data):
    x, y = data
    xz = np.where(np.isnan(x), 0.0, x)
    p = {**BASE, "num_trees": 2, "use_missing": True, "zero_as_missing": True}
    out, _ = run_parties(xz[:, :3], xz[:, 3:], y, p)
    np.testing.assert_allclose(scores(out), central_binary(xz, y, 2, 3, every(range(6)), xz == 0), atol=1e-9)
    assert out["host"].model["zero_as_missing"]
    with pytest.raises(ComponentError, match="missing feature values.*use_missing"):
        run_parties(x[:, :3], x[:, 3:], y, BASE)


def test_complete_secure_first_tree_is_the_guests_alone(data):
    x, y = data
    x = np.where(np.isnan(x), 0.5, x)
    y = 2 * x[:, 0] - x[:, 4] + x[:, 2] * x[:, 5]
    p = {**BASE, **REG, "complete_secure": True}
    out, _ = run_parties(x[:, :3], x[:, 3:], y, p)
    ref = central_binary(x, y, 3, 3, lambda r, d: np.arange(3) if r == 0 else np.arange(6), None, regression=True)
    np.testing.assert_allclose(scores(out, 0), ref, atol=1e-9)
    owners = [{n["party"] for n in t["nodes"]} - {None} for t in out["guest"].model["trees"]]
    assert owners[0] == {"guest"} and any("10000" in o for o in owners[1:])


def test_eini_predicts_the_walks_scores_two_hosts_missing_values(data):
    """Two hosts (the vectors pass host to host), missing values, a random mask: the scores of
    the plain walk, to float rounding; the complexity check refuses a small ensemble."""
    x, y = data
    p = {**BASE, "use_missing": True}
    hx = [x[:, 2:4], x[:, 4:]]
    out, _ = run_parties(x[:, :2], hx, y, p)
    models = (out["guest"].model, out["host0"].model, out["host1"].model)
    owners = {n["party"] for t in models[0]["trees"] for n in t["nodes"]} - {None}
    assert owners == {"guest", "10000", "10001"}
    plain, _ = run_parties(x[:, :2], hx, y, BASE, model=models)
    eini, _ = run_parties(x[:, :2], hx, y, {**BASE, "EINI_inference": True, "EINI_random_mask": True}, model=models)
    np.testing.assert_allclose(scores(eini), scores(plain), rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores(plain), central_binary(x, y, 3, 3, every(range(6)), np.isnan(x)), atol=1e-9)
    with pytest.raises(ComponentError, match="EINI_complexity_check"):
        run_parties(x[:, :2], hx, y, {**BASE, "EINI_inference": True, "EINI_complexity_check": True}, model=models)


def test_eini_multiclass_equals_walk(data):
    x, _ = data
    x = np.where(np.isnan(x), -0.1, x)
    y = np.digitize(x[:, 0] + x[:, 4], [-0.6, 0.6]).astype(float)
    p = {**BASE, "num_trees": 2}
    out, _ = run_parties(x[:, :3], x[:, 3:], y, p)
    models = (out["guest"].model, out["host"].model)
    plain = predictions(run_parties(x[:, :3], x[:, 3:], y, p, model=models)[0]["guest"])
    eini = predictions(run_parties(x[:, :3], x[:, 3:], y, {**p, "EINI_inference": True}, model=models)[0]["guest"])
    for k in plain:
        np.testing.assert_allclose(eini[k][1:], plain[k][1:], atol=1e-12)


def run_fast(monkeypatch, x, y, params):
    """run_parties with HeteroFastSecureBoost in HeteroSecureBoost's place."""
    import tests.unit.test_secureboost_protocol as proto

    monkeypatch.setattr(proto, "HeteroSecureBoost", HeteroFastSecureBoost)
    monkeypatch.setattr(proto, "HeteroSecureBoostParams", HeteroFastSecureBoostParams)
    return run_parties(x[:, :3], x[:, 3:], y, params)


def test_fast_layered_hosts_on_top_guest_below(data, monkeypatch):
    x, y = data
    x = np.where(np.isnan(x), 0.5, x)
    y = 2 * x[:, 0] - x[:, 4] + x[:, 2] * x[:, 5]
    p = {**BASE, **REG, "work_mode": "layered", "host_depth": 1, "guest_depth": 2}
    out, _ = run_fast(monkeypatch, x, y, p)
    ref = central_binary(x, y, 3, 3, lambda r, d: np.arange(3, 6) if d < 1 else np.arange(3), None, regression=True)
    np.testing.assert_allclose(scores(out, 0), ref, atol=1e-9)
    for t in out["guest"].model["trees"]:
        for n in t["nodes"]:
            if n["party"] is not None:
                assert (n["party"] == "10000") == (n["depth"] < 1)


def test_fast_mix_trees_take_turns_and_gain_importance(data, monkeypatch):
    x, y = data
    x = np.where(np.isnan(x), 0.5, x)
    y = 2 * x[:, 0] - x[:, 4] + x[:, 2] * x[:, 5]
    p = {**BASE, **REG, "num_trees": 4, "work_mode": "mix", "tree_num_per_party": 1,
         "tree_param": {**BASE["tree_param"], "feature_importance_type": "gain"}}
    out, _ = run_fast(monkeypatch, x, y, p)
    central: dict = {}
    ref = central_binary(x, y, 4, 3, lambda r, d: np.arange(3) if r % 2 == 0 else np.arange(3, 6), None,
                         importance=central, regression=True)
    np.testing.assert_allclose(scores(out, 0), ref, atol=1e-9)
    owners = [{n["party"] for n in t["nodes"]} - {None} for t in out["guest"].model["trees"]]
    assert owners == [{"guest"}, {"10000"}, {"guest"}, {"10000"}]
    model = out["guest"].model
    assert model["feature_importance_type"] == "gain"
    got = {(e["party"], e["feature"]): e["importance"] for e in model["feature_importance"]}
    want = {("guest", f"g_{c}"): central[c][1] for c in range(3) if c in central}
    want[("host:10000", None)] = sum(central[c][1] for c in range(3, 6) if c in central)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9)
    host = {e["feature"]: e["importance"] for e in out["host"].model["feature_importance"]}
    assert host == {f"h_{c - 3}": float(central[c][0]) for c in range(3, 6) if c in central}  # split counts


def test_eini_under_ou_equals_walk(data):
    """EINI's vectors under the guest's OU key (its method for training): the walk's scores."""
    x, y = data
    x = np.where(np.isnan(x), -0.1, x)
    ou = {**BASE, "encrypt_param": {"method": "ou", "key_length": 1024}}
    out, _ = run_parties(x[:, :3], x[:, 3:], y, ou)
    models = (out["guest"].model, out["host"].model)
    plain, _ = run_parties(x[:, :3], x[:, 3:], y, ou, model=models)
    eini, _ = run_parties(x[:, :3], x[:, 3:], y, {**ou, "EINI_inference": True, "EINI_random_mask": True},
                          model=models)
    np.testing.assert_allclose(scores(eini), scores(plain), rtol=0, atol=1e-12)
