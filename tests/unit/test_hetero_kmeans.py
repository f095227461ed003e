"""HeteroKmeans against a plain numpy k-means on the joined features, and what the arbiter sees."""

from __future__ import annotations

import logging

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from components.base import Context, Inputs
from components.cluster.hetero_kmeans import HeteroKmeans, KmeansParams, initial_rows
from components.crypto.secure_agg import decode, encode
from federation.api import Party
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties

ARBITER = Party("arbiter", "10000")


def blobs(n: int = 90, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0, 0], [4, 4, 0, 1, 2], [0, 5, 5, -3, 1]], dtype=float)
    return np.vstack([c + rng.normal(scale=1.0, size=(n // 3, 5)) for c in centers])


def plain_kmeans(x: np.ndarray, start: list[int], max_iter: int, tol: float):
    """Lloyd's algorithm with FATE's rules: stop when the squared centroid shift < tol; the output
    is the assignment to the final centroids."""
    c = x[start].copy()
    wcss = []
    for _ in range(max_iter):
        d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        a = d.argmin(1)
        wcss.append(d.min(1).sum())
        new = np.array([x[a == j].mean(0) if np.any(a == j) else c[j] for j in range(len(c))])
        shift = ((new - c) ** 2).sum()
        c = new
        if shift < tol:
            break
    d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    wcss.append(d.min(1).sum())
    return d.argmin(1), c, wcss


class Recording(HeteroKmeans):
    """Keeps what the arbiter receives before summing."""

    received: list[list[np.ndarray]] = []

    @staticmethod
    def _sum(ctx, vectors, parties, size):
        Recording.received.append([np.asarray(v).copy() for v in vectors])
        return HeteroKmeans._sum(ctx, vectors, parties, size)


def _assignments(ds) -> np.ndarray:
    rows = sorted(ds.table.collect(), key=lambda kv: kv[0])
    return np.array([int(inst.features[0]) for _, inst in rows])


def _run(tmp_path, s, x, params, component=HeteroKmeans, models=None):
    y = (np.arange(len(x)) % 2).astype(float)
    g = dataset(s, x[:, :2], ["g0", "g1"], y, name="g")
    h = dataset(s, x[:, 2:], ["h0", "h1", "h2"], name="h")
    port = "test_data" if models else "train_data"
    models = models or {}
    jobs = {GUEST: (s, params, Inputs(data={port: g}, model=models.get(GUEST, []))),
            HOST: (s, params, Inputs(data={port: h}, model=models.get(HOST, []))),
            ARBITER: (s, params, Inputs(model=models.get(ARBITER, [])))}
    return run_parties(tmp_path, component, jobs, name="hetero_kmeans_0")


def test_same_start_gives_numpy_kmeans_and_the_arbiter_sees_only_masked_parts(tmp_path):
    x = blobs()
    params = {"k": 3, "max_iter": 10, "tol": 1e-6, "random_stat": 7}
    Recording.received = []
    with LocalSession(partitions=2, workers=1) as s:
        res = _run(tmp_path, s, x, params, component=Recording)
        start = initial_rows(len(x), 3, 7)
        assign, centroids, wcss = plain_kmeans(x, start, 10, 1e-6)
        guest_out, host_out = res[GUEST][0], res[HOST][0]
        np.testing.assert_array_equal(_assignments(guest_out.data[0]), assign)
        np.testing.assert_array_equal(_assignments(host_out.data[0]), assign)
        np.testing.assert_allclose(guest_out.model["centroids"], centroids[:, :2], atol=1e-9)
        np.testing.assert_allclose(host_out.model["centroids"], centroids[:, 2:], atol=1e-9)
        assert guest_out.data[0].meta.columns == ["y", "predicted_cluster_index"]
        labels = [inst.label for _, inst in sorted(guest_out.data[0].table.collect())]
        assert labels == list((np.arange(len(x)) % 2).astype(float))
        arb_out, tracker = res[ARBITER]
        np.testing.assert_allclose(tracker.metrics[("train", "within_cluster_sum_of_squares")], wcss, rtol=1e-6)
        assert arb_out.model["n_iter"] == len(wcss) - 1
        summary = sorted(arb_out.data[0].table.collect())
        assert [int(inst.features[0]) for _, inst in summary] == list(np.bincount(assign, minlength=3))

    # the first round: each party's part is masked; only the sum is the distances
    first = Recording.received[0]
    c0 = x[start]
    guest_part = ((x[:, None, :2] - c0[None, :, :2]) ** 2).sum(-1).ravel()
    host_part = ((x[:, None, 2:] - c0[None, :, 2:]) ** 2).sum(-1).ravel()
    for got, plain in zip(first, (guest_part, host_part)):
        assert got.dtype == np.uint64
        assert not np.allclose(decode(got), plain, atol=1.0)
        assert np.count_nonzero(got == encode(plain)) == 0
    total = decode(first[0] + first[1])
    np.testing.assert_allclose(total, guest_part + host_part, atol=1e-6)


def test_predict_with_the_trained_models_assigns_to_the_final_centroids(tmp_path):
    x = blobs(60, seed=5)
    params = {"k": 3, "max_iter": 3, "tol": 0.0, "random_stat": 1}
    with LocalSession(partitions=2, workers=1) as s:
        res = _run(tmp_path / "fit", s, x, params)
        models = {p: [res[p][0].model] for p in (GUEST, HOST, ARBITER)}
        shifted = x + 0.3
        pred = _run(tmp_path / "predict", s, shifted, params, models=models)
        c = np.hstack([np.asarray(res[GUEST][0].model["centroids"]), np.asarray(res[HOST][0].model["centroids"])])
        expected = ((shifted[:, None, :] - c[None, :, :]) ** 2).sum(-1).argmin(1)
        np.testing.assert_array_equal(_assignments(pred[GUEST][0].data[0]), expected)
        assert pred[GUEST][0].data[0].meta.extra["type"] == "predict"


class _GuestSays:
    """A federation where the guest's row message is canned; records what is sent."""

    def __init__(self, message):
        self.message, self.sent = message, []

    def get(self, name, tag, parties, timeout=None):
        return [self.message]

    def remote(self, obj, name, tag, parties):
        self.sent.append(name)


def test_a_host_with_other_ids_is_refused_before_anything_is_sent():
    x = blobs(30)
    with LocalSession(partitions=2, workers=1) as s:
        h = dataset(s, x[1:, 2:], ["h0", "h1", "h2"], ids=[f"id{i:05d}" for i in range(1, 30)], name="h")
        fed = _GuestSays({"n": 30, "ids": "0" * 64, "start": ["id00000", "id00001"]})
        ctx = Context(job_id="j", component="hetero_kmeans_0", local=HOST,
                      parties={"guest": [GUEST], "host": [HOST], "arbiter": [ARBITER]}, computing=s,
                      federation=fed, storage=None, tracker=None, logger=logging.getLogger("test"))
        with pytest.raises(ComponentError, match="host 10000 holds 29 ids, not the same ids as the guest"):
            HeteroKmeans().host(ctx, KmeansParams(k=2), Inputs(data={"train_data": h}))
        assert fed.sent == []


def test_params_follow_fate():
    p = KmeansParams.model_validate({"k": 2, "max_iter": 5, "tol": 0, "random_stat": 3, "need_run": True})
    assert (p.k, p.max_iter, p.tol, p.random_stat) == (2, 5, 0, 3)
    assert KmeansParams().k == 5 and KmeansParams().max_iter == 300 and KmeansParams().tol == 0.001
    for bad in ({"k": 1}, {"max_iter": 0}, {"tol": -1.0}, {"random_stat": -1}, {"k": "3"}, {"init": "x"}):
        with pytest.raises(pydantic.ValidationError):
            KmeansParams.model_validate(bad)


def test_two_hosts_split_the_features_three_ways(tmp_path):
    x = blobs(60, seed=9)
    host2 = Party("host", "10001")
    params = {"k": 3, "max_iter": 6, "tol": 1e-6, "random_stat": 2}
    with LocalSession(partitions=2, workers=1) as s:
        jobs = {GUEST: (s, params, Inputs(data={"train_data": dataset(s, x[:, :1], ["g0"], name="g")})),
                HOST: (s, params, Inputs(data={"train_data": dataset(s, x[:, 1:3], ["a", "b"], name="h1")})),
                host2: (s, params, Inputs(data={"train_data": dataset(s, x[:, 3:], ["c", "d"], name="h2")})),
                ARBITER: (s, params, Inputs())}
        res = run_parties(tmp_path, HeteroKmeans, jobs)
        assign, centroids, _ = plain_kmeans(x, initial_rows(len(x), 3, 2), 6, 1e-6)
        for party in (GUEST, HOST, host2):
            np.testing.assert_array_equal(_assignments(res[party][0].data[0]), assign)
        np.testing.assert_allclose(res[host2][0].model["centroids"], centroids[:, 3:], atol=1e-9)
