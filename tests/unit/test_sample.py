"""FederatedSample against plain counting: FATE's sizes per label, the hosts' rows are the
guest's rows (same ids, or the same original rows under the new ids of an upsample)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.feature.sample import FederatedSample, FederatedSampleParams
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties


@pytest.fixture
def session():
    s = LocalSession(partitions=3, workers=1, inline_below=10 ** 6)
    yield s
    s.stop()


def _data(session, n: int = 200):
    rng = np.random.default_rng(3)
    y = (rng.random(n) < 0.3).astype(float)
    ids = [f"id{i:04d}" for i in range(n)]
    number = np.arange(n, dtype=float)[:, None]  # each row's original number, on both parties
    guest = dataset(session, np.hstack([number, rng.random((n, 1))]), ["g_no", "g1"], y, ids)
    host = dataset(session, np.hstack([number, rng.random((n, 2))]), ["h_no", "h1", "h2"], None, ids)
    return guest, host, y


def _run(tmp_path, session, params: dict):
    guest, host, y = _data(session)
    out = run_parties(tmp_path, FederatedSample, {GUEST: (session, params, Inputs(data={"data": guest})),
                                                   HOST: (session, params, Inputs(data={"data": host}))})
    return (dict(out[GUEST][0].data[0].table.collect()), dict(out[HOST][0].data[0].table.collect()), y,
            out[GUEST][1].metrics)


def _same_rows(g: dict, h: dict) -> None:
    assert set(g) == set(h)
    for k in g:  # the host's row under each id is the guest's original row
        assert g[k].features[0] == h[k].features[0]


@pytest.mark.parametrize("method,fractions", [("downsample", [[0, 0.5], [1, 0.25]]),
                                              ("upsample", [[0, 1.5], [1, 2.0]])])
def test_stratified_counts_per_label(tmp_path, session, method, fractions):
    g, h, y, metrics = _run(tmp_path, session, {"mode": "stratified", "method": method, "fractions": fractions,
                                                "random_state": 7})
    n_c = Counter(y.tolist())
    expected = {float(label): max(1, int(f * n_c[float(label)])) for label, f in fractions}
    assert Counter(inst.label for inst in g.values()) == expected
    assert metrics[("stratified", "sample_count")] == {str(int(k)): v for k, v in expected.items()}
    _same_rows(g, h)
    originals = Counter(int(inst.features[0]) for inst in g.values())
    if method == "downsample":  # original ids kept, each row at most once
        assert all(k == f"id{int(inst.features[0]):04d}" for k, inst in g.items())
        assert max(originals.values()) == 1
    else:  # new ids 0..m-1, rows repeated
        assert sorted(g, key=int) == [str(i) for i in range(sum(expected.values()))]
        assert max(originals.values()) > 1
        for inst in g.values():
            assert inst.label == y[int(inst.features[0])]


def test_random_counts_and_reproducible(tmp_path, session):
    g, h, _, metrics = _run(tmp_path, session, {"fractions": 0.37, "random_state": 5})
    assert len(g) == max(1, int(0.37 * 200)) and metrics[("random", "sample_count")] == {"count": len(g)}
    _same_rows(g, h)
    again, _, _, _ = _run(tmp_path / "again", session, {"fractions": 0.37, "random_state": 5})
    assert sorted(again) == sorted(g)
    up, hu, _, _ = _run(tmp_path / "up", session, {"method": "upsample", "fractions": 1.7, "random_state": 5})
    assert len(up) == int(1.7 * 200)
    _same_rows(up, hu)


def test_homo_samples_each_party_alone(tmp_path, session):
    guest, _, y = _data(session)
    out = run_parties(tmp_path, FederatedSample, {GUEST: (session, {"fractions": 0.5, "task_type": "homo"},
                                                           Inputs(data={"data": guest}))})
    assert out[GUEST][0].data[0].table.count() == 100


def test_params_follow_fate():
    assert FederatedSampleParams(mode="Stratified", method="UPSAMPLE", fractions=[[0, 2]]).rates() == {0.0: 2.0}
    for bad, text in [({"fractions": 1.5}, "downsample fractions must lie in"),
                      ({"method": "upsample", "fractions": 0}, "upsample fractions must be above 0"),
                      ({"mode": "stratified", "fractions": [[0, 0.5, 1]]}, "pairs"),
                      ({"mode": "stratified", "fractions": [[0, 0.5], [0, 0.2]]}, "names a label twice"),
                      ({"mode": "exact_by_weight", "fractions": 1}, "not supported: FederatedSample mode"),
                      ({}, "fractions is required")]:
        with pytest.raises(ValueError, match=text):
            FederatedSampleParams(**bad)


def test_stratified_refuses_a_label_without_fraction(tmp_path, session):
    guest, _, _ = _data(session)
    with pytest.raises(ComponentError, match=r"labels \[1.0\] have no fraction"):
        run_parties(tmp_path, FederatedSample, {GUEST: (session, {"mode": "stratified", "fractions": [[0, 0.5]]},
                                                         Inputs(data={"data": guest}))})
