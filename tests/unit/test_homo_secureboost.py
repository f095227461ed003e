"""HomoSecureBoost: the trees grown from masked histogram sums equal a plain histogram
booster on the pooled rows with the pooled bins, and the arbiter sees only masked vectors."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.crypto.secure_agg import add_words, decode
from components.tree.homo_secureboost import HomoSecureBoost, HomoSecureBoostParams
from federation.api import Party
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

HOST2, ARBITER = Party("host", "10001"), Party("arbiter", "10002")
NAMES = ["a", "b", "c", "d"]
L2 = 0.1


def shares(rng: np.random.Generator, regression: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three parties' rows of the same columns, each drawn around another centre."""
    out = []
    for n, shift in ((60, 0.0), (45, 0.7), (30, -0.5)):
        x = np.c_[rng.normal(shift, 1, n), rng.integers(0, 3, n).astype(float), rng.normal(size=n),
                  rng.uniform(-2, 2, n)]
        signal = x[:, 0] + 0.8 * x[:, 1] - x[:, 3] ** 2 + rng.normal(0, 0.3, n)
        out.append((x, signal if regression else (signal > 0.5).astype(float)))
    return out


def central(x: np.ndarray, y: np.ndarray, bin_num: int, trees: int, depth: int, lr: float, regression: bool):
    """Plain boosting on the pooled rows: inverted-cdf quantile bins, XGBoost gain, level-wise growth.
    Returns (list of trees as {node: (depth, feature, threshold)} and leaf weights, final scores)."""
    q = np.arange(1, bin_num + 1) / bin_num
    sps = [np.unique(np.quantile(col, q, method="inverted_cdf")) for col in x.T]
    bins = np.stack([np.searchsorted(sp, col, side="left") for sp, col in zip(sps, x.T)], axis=1)
    if regression:
        score = np.full(len(y), y.mean())
    else:
        score = np.full(len(y), np.log(y.mean() / (1 - y.mean())))
    out = []
    for _ in range(trees):
        if regression:
            g, h = score - y, np.ones(len(y))
        else:
            pr = 1 / (1 + np.exp(-score))
            g, h = pr - y, pr * (1 - pr)
        splits: list[tuple[int, int, float]] = []
        weights: list[float] = []
        leaf_of = np.zeros(len(y), dtype=int)
        frontier = [np.arange(len(y))]
        ids = [0]
        next_id = 1
        for d in range(depth + 1):
            new_frontier, new_ids = [], []
            for nid, rows in zip(ids, frontier):
                G, H = g[rows].sum(), h[rows].sum()
                while len(weights) <= nid:
                    weights.append(0.0)
                weights[nid] = -G / (H + L2)
                leaf_of[rows] = nid
                if d == depth or len(rows) < 2:
                    continue
                best = (1e-3, None)
                for f in range(x.shape[1]):
                    for b in range(len(sps[f])):
                        go = bins[rows, f] <= b
                        if not go.any() or go.all() or not (bins[rows, f] == b).any():
                            continue
                        gl, hl = g[rows][go].sum(), h[rows][go].sum()
                        gain = gl ** 2 / (hl + L2) + (G - gl) ** 2 / (H - hl + L2) - G ** 2 / (H + L2)
                        if gain > best[0]:
                            best = (gain, (f, b, go))
                if best[1] is None:
                    continue
                f, b, go = best[1]
                splits.append((nid, f, float(sps[f][b])))
                new_frontier += [rows[go], rows[~go]]
                new_ids += [next_id, next_id + 1]
                next_id += 2
            frontier, ids = new_frontier, new_ids
        score = score + lr * np.asarray(weights)[leaf_of]
        out.append((splits, weights))
    return out, score


def run_boost(tmp_path, parts, params: dict):
    parties = [GUEST, HOST, HOST2]
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(LocalSession(partitions=2, workers=1)) for _ in parties]
        jobs = {p: (s, params, Inputs(data={"train_data": dataset(s, x, NAMES, y, name=p.party_id)}))
                for p, s, (x, y) in zip(parties, sessions, parts)}
        arb = stack.enter_context(LocalSession(partitions=1, workers=1))
        jobs[ARBITER] = (arb, params, Inputs())
        results = run_parties(tmp_path, HomoSecureBoost, jobs)
        data = {p: rows_of(results[p][0].data[0]) for p in parties}
    return results, data


@pytest.mark.parametrize("regression", [False, True])
def test_federated_trees_equal_pooled_boosting_and_arbiter_sees_masked(tmp_path, monkeypatch, regression):
    parts = shares(np.random.default_rng(5), regression)
    seen: list[list[np.ndarray]] = []
    original = HomoSecureBoost._sum

    def record(self, ctx, parties, ups, tag):
        seen.append([np.asarray(u["data"]) for u in ups])
        return original(self, ctx, parties, ups, tag)
    monkeypatch.setattr(HomoSecureBoost, "_sum", record)
    params = {"num_trees": 3, "bin_num": 8, "learning_rate": 0.3, "n_iter_no_change": False,
              "tree_param": {"max_depth": 3}, "task_type": "regression" if regression else "classification"}
    results, data = run_boost(tmp_path, parts, params)
    x = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    want, score = central(x, y, 8, 3, 3, 0.3, regression)
    assert all(len(splits) >= 3 for splits, _ in want)  # real trees, not stumps
    models = [results[p][0].model for p in (GUEST, HOST, HOST2)]
    for model in models:
        assert model["trees"] == models[0]["trees"] and model["splits"] == models[0]["splits"]
        assert len(model["trees"]) == 3
        for tree, (splits, weights) in zip(model["trees"], want):
            nodes = tree["nodes"]
            got = [(n["id"], NAMES.index(model["splits"][n["split_id"]]["feature"]),
                    model["splits"][n["split_id"]]["threshold"]) for n in nodes if n["party"] is not None]
            assert got == splits
            assert np.allclose([n["weight"] for n in nodes], weights, atol=1e-5)
    # each party's predictions are the pooled booster's scores on its rows
    start = 0
    for party, (px, _) in zip((GUEST, HOST, HOST2), parts):
        _, pred, _ = data[party]
        mine = score[start:start + len(px)]
        start += len(px)
        expected = mine if regression else 1 / (1 + np.exp(-mine))
        assert np.allclose(pred[:, 1], expected, atol=1e-5)
    # the arbiter never sees a party's plain vector, only one whose sum is the pooled one
    first = seen[0]  # the class counts (or Σy, n)
    for words, (_, py) in zip(first, parts):
        plain = np.array([py.sum(), len(py)]) if regression else np.bincount(py.astype(int), minlength=2)
        assert not np.allclose(decode(words), plain)
    pooled = np.array([y.sum(), len(y)]) if regression else np.bincount(y.astype(int), minlength=2)
    assert np.allclose(decode(add_words(first)), pooled, atol=1e-5)
    # feature importance: split counts per feature on each party, under its own name
    counts: dict[str, int] = {}
    for splits, _ in want:
        for _, f, _ in splits:
            counts[NAMES[f]] = counts.get(NAMES[f], 0) + 1
    for party, model in zip(("guest", "host:10000", "host:10001"), models):
        assert {e["feature"]: e["split"] for e in model["feature_importance"]} == counts
        assert {e["party"] for e in model["feature_importance"]} == {party}


def test_predict_with_the_model_and_refusals(tmp_path):
    parts = shares(np.random.default_rng(2))
    params = {"num_trees": 2, "bin_num": 6, "tree_param": {"max_depth": 2}}
    results, data = run_boost(tmp_path / "train", parts, params)
    model = results[GUEST][0].model
    with LocalSession(partitions=1, workers=1) as s:
        ds = dataset(s, parts[0][0], NAMES, name="p")
        out = HomoSecureBoost()._predict(SimpleNamespace(component="hsbt", computing=s), ds, model)  # type: ignore
        assert np.allclose(rows_of(out.data[0])[1], data[GUEST][1])
    with pytest.raises(pydantic.ValidationError, match="not supported: HomoSecureBoost use_missing"):
        HomoSecureBoostParams(use_missing=True)
    bad = [(p[0], p[1]) for p in parts]
    bad[1] = (np.c_[bad[1][0], np.ones(len(bad[1][0]))], bad[1][1])
    with pytest.raises(ComponentError):
        parties = [GUEST, HOST, HOST2]
        with contextlib.ExitStack() as stack:
            sessions = [stack.enter_context(LocalSession(partitions=1, workers=1)) for _ in parties]
            jobs = {p: (s, params, Inputs(data={"train_data": dataset(
                s, x, NAMES + (["e"] if x.shape[1] == 5 else []), y, name=p.party_id)}))
                for p, s, (x, y) in zip(parties, sessions, bad)}
            jobs[ARBITER] = (stack.enter_context(LocalSession(partitions=1, workers=1)), params, Inputs())
            run_parties(tmp_path / "bad", HomoSecureBoost, jobs)
