"""HomoOneHotEncoder: with need_alignment every party encodes with the union of all parties'
categories (one header for a horizontal model); without it, each with its own."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.feature.homo_onehot import HomoOneHotEncoder, union_categories
from components.feature.onehot import value_name
from federation.api import Party
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

HOST2, ARBITER = Party("host", "10001"), Party("arbiter", "10002")
NAMES = ["a", "b", "c"]
PARTIES = (GUEST, HOST, HOST2)


def shares() -> list[np.ndarray]:
    """Same columns, different values per party: a, c categorical, b continuous."""
    rng = np.random.default_rng(7)
    return [np.c_[rng.choice(vals, 20), rng.normal(size=20), rng.choice(cvals, 20)]
            for vals, cvals in (([0.0, 1.0], [10.0, 0.5]), ([1.0, 2.0, 3.0], [10.0]), ([5.0], [np.nan, 0.5, 7.0]))]


def run(tmp_path, xs, params: dict | list[dict], model=None):
    plist = params if isinstance(params, list) else [params] * 4
    with contextlib.ExitStack() as stack:
        jobs = {}
        for i, (party, x) in enumerate(zip(PARTIES, xs)):
            s = stack.enter_context(LocalSession(partitions=2, workers=1))
            jobs[party] = (s, plist[i], Inputs(data={"data": dataset(s, x, NAMES, name=party.party_id)},
                                               model=[model[party]] if model else []))
        jobs[ARBITER] = (stack.enter_context(LocalSession(partitions=1, workers=1)), plist[3],
                         Inputs(model=[model[ARBITER]] if model else []))
        results = run_parties(tmp_path, HomoOneHotEncoder, jobs)
        return results, {p: (results[p][0].data[0].meta.feature_columns, rows_of(results[p][0].data[0])[1])
                         for p in PARTIES}


def plain_encoding(x: np.ndarray, cols: list[int], cats: dict[int, list[float]]) -> np.ndarray:
    """The centralised expectation: each chosen column replaced by its 0/1 columns."""
    out = []
    for j in range(x.shape[1]):
        out.append(np.stack([x[:, j] == c for c in cats[j]], axis=1).astype(float) if j in cols else x[:, [j]])
    return np.hstack(out)


def test_alignment_encodes_every_party_with_the_union_of_categories(tmp_path):
    xs = shares()
    results, data = run(tmp_path, xs, {"transform_col_indexes": [0, 2]})
    union = {j: sorted({v for x in xs for v in x[:, j].tolist() if not np.isnan(v)}) for j in (0, 2)}
    header = ["a_" + value_name(v) for v in union[0]] + ["b"] + ["c_" + value_name(v) for v in union[2]]
    for party, x in zip(PARTIES, xs):
        got_header, got = data[party]
        assert got_header == header
        ids_sorted = np.argsort([f"id{i:05d}" for i in range(len(x))])
        assert np.array_equal(got, plain_encoding(x[ids_sorted], [0, 2], union))
        assert results[party][0].model["categories"] == {"a": union[0], "c": union[2]}
    assert results[ARBITER][0].model["transform_cols"] == ["a", "c"]


def test_without_alignment_each_party_encodes_its_own_categories(tmp_path):
    xs = shares()
    _, data = run(tmp_path, xs, {"transform_col_names": ["a"], "transform_col_indexes": [],
                                 "need_alignment": False})
    for party, x in zip(PARTIES, xs):
        own = sorted(set(x[:, 0].tolist()))
        assert data[party][0] == ["a_" + value_name(v) for v in own] + ["b", "c"]


def test_predict_applies_the_aligned_categories(tmp_path):
    xs = shares()
    fit, _ = run(tmp_path / "fit", xs, {"transform_col_indexes": [0]})
    models = {p: fit[p][0].model for p in fit}
    new = [x[::-1] for x in xs[::-1]]  # other parties' rows: unseen values are all zeros
    _, data = run(tmp_path / "predict", new, {}, model=models)
    union = {0: models[GUEST]["categories"]["a"]}
    for party, x in zip(PARTIES, new):
        ids_sorted = np.argsort([f"id{i:05d}" for i in range(len(x))])
        assert data[party][0] == models[party]["new_header"]
        assert np.array_equal(data[party][1], plain_encoding(x[ids_sorted], [0], union), equal_nan=True)


def test_parties_that_disagree_on_alignment_are_told(tmp_path):
    xs = shares()
    aligned, alone = {"transform_col_indexes": [0]}, {"transform_col_indexes": [0], "need_alignment": False}
    with pytest.raises(ComponentError, match="need_alignment differs between parties"):
        run(tmp_path, xs, [aligned, alone, aligned, aligned])


def test_union_keeps_columns_one_party_lacks():
    assert union_categories([{"a": [2.0, 1.0]}, {"a": [3.0], "b": [0.0]}]) == {"a": [1.0, 2.0, 3.0], "b": [0.0]}
