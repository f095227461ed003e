"""HeteroPoisson against a plain numpy gradient descent of the same Poisson loss (log
link, log exposure as offset) on the joined data; its predictions, a predict job and its
refusals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import SAMPLE_WEIGHT, Dataset, Inputs, Instance
from components.linear.family import POISSON
from components.linear.hetero_poisson import HeteroPoisson, HeteroPoissonParams
from components.linear.hetero_schedule import batch_ids_of
from components.linear.optimizer import InitParam, init_weights
from federation.api import Party
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

ARBITER = Party("arbiter", "10001")
KEY = {"key_length": 512, "allow_short_key": True}


@pytest.fixture
def session():
    s = LocalSession(partitions=3, workers=1, inline_below=10 ** 6)
    yield s
    s.stop()


def make_data(n: int = 80, seed: int = 7):
    rng = np.random.default_rng(seed)
    xg, xh = rng.normal(size=(n, 2)) * 0.5, rng.normal(size=(n, 2)) * 0.5
    exposure = rng.uniform(0.5, 3.0, n)
    exposure[3] = 0.0  # FATE's log(1e-7) offset
    eta = np.log(np.maximum(exposure, 1e-7)) + 0.2 + xg @ [0.4, -0.3] + xh @ [0.25, 0.1]
    y = rng.poisson(np.exp(eta)).astype(float)
    return xg, xh, exposure, y


def reference(xg, xh, offset, y, p: dict, batches: list[np.ndarray] | None = None):
    """Gradient descent (sgd, FATE's decay) on mean(mu - y·eta) + (alpha/2)|w|², eta = Xw + b + offset."""
    init = InitParam(**p["init_param"])
    wg, wh = init_weights(init, xg.shape[1] + 1), init_weights(init, xh.shape[1], seed_offset=1)
    x = np.hstack([xg, xh])
    w, b = np.r_[wg[:-1], wh], wg[-1]
    batches = batches or [np.arange(len(y))]
    losses = []
    for it in range(p["max_iter"]):
        lr = p["learning_rate"] / np.sqrt(1 + p["decay"] * it)
        total = 0.0
        for idx in batches:
            eta = x[idx] @ w + b + offset[idx]
            mu = np.exp(eta)
            total += float(np.mean(mu - y[idx] * eta) + 0.5 * p["alpha"] * w @ w)
            d = mu - y[idx]
            w, b = w - lr * (x[idx].T @ d / len(idx) + p["alpha"] * w), b - lr * float(d.mean())
        losses.append(total / len(batches))
    return w, b, losses


def parties(session, xg, xh, exposure, y, ids):
    guest = dataset(session, np.column_stack([xg[:, 0], exposure, xg[:, 1]]), ["g0", "exposure", "g1"], y, ids)
    host = dataset(session, xh, ["h0", "h1"], None, ids)
    return guest, host


def train(tmp_path, session, guest, host, p: dict):
    return run_parties(tmp_path, HeteroPoisson, {
        GUEST: (session, p, Inputs(data={"train_data": guest})),
        HOST: (session, p, Inputs(data={"train_data": host})),
        ARBITER: (session, p, Inputs())}, name="hetero_poisson_0")


PARAMS = {"max_iter": 6, "optimizer": "sgd", "penalty": "L2", "alpha": 0.01, "learning_rate": 0.3, "decay": 1.0,
          "tol": 1e-12, "exposure_colname": "exposure",
          "init_param": {"init_method": "random_uniform", "random_seed": 3}, "encrypt_param": KEY}


def test_federated_weights_and_loss_are_plain_gradient_descents(tmp_path, session):
    xg, xh, exposure, y = make_data()
    ids = [f"id{i:03d}" for i in range(len(y))]
    guest, host = parties(session, xg, xh, exposure, y, ids)
    out = train(tmp_path, session, guest, host, PARAMS)
    offset = np.log(np.maximum(exposure, 1e-7))
    w, b, losses = reference(xg, xh, offset, y, PARAMS)
    gm, hm = out[GUEST][0].model, out[HOST][0].model
    assert gm["header"] == ["g0", "g1"] and gm["exposure_colname"] == "exposure"
    np.testing.assert_allclose(np.r_[gm["weights"], hm["weights"]], w, atol=1e-3)
    assert abs(gm["intercept"] - b) < 1e-3
    np.testing.assert_allclose(gm["loss_history"], losses, atol=1e-4)
    assert gm["iters"] == PARAMS["max_iter"]
    # predictions: mu = exposure · exp(wx + b), for Evaluation regression
    _, pred, label = rows_of(out[GUEST][0].data[0])
    mu = np.exp(np.hstack([xg, xh]) @ np.r_[gm["weights"], hm["weights"]] + gm["intercept"] + offset)
    np.testing.assert_allclose(pred[:, 0], mu, rtol=1e-9)
    np.testing.assert_allclose(pred[:, 1], mu, rtol=1e-9)
    np.testing.assert_allclose(label, y)
    assert out[GUEST][0].data[0].meta.columns == ["label", "predict_result", "predict_score"]

    # a predict job on the stored models gives the same mu
    pred_job = run_parties(tmp_path / "predict", HeteroPoisson, {
        GUEST: (session, PARAMS, Inputs(data={"test_data": guest}, model=[gm])),
        HOST: (session, PARAMS, Inputs(data={"test_data": host}, model=[hm])),
        ARBITER: (session, PARAMS, Inputs(model=[{}]))}, name="hetero_poisson_0")
    np.testing.assert_allclose(rows_of(pred_job[GUEST][0].data[0])[1][:, 0], mu, rtol=1e-9)


def test_mini_batches_without_exposure(tmp_path, session):
    xg, xh, exposure, y = make_data(n=50, seed=2)
    ids = [f"id{i:03d}" for i in range(len(y))]
    guest = dataset(session, xg, ["g0", "g1"], y, ids)
    host = dataset(session, xh, ["h0", "h1"], None, ids)
    p = {**PARAMS, "exposure_colname": None, "batch_size": 20, "max_iter": 3, "penalty": "none", "alpha": 0.0}
    out = train(tmp_path, session, guest, host, p)
    params = HeteroPoissonParams(**p)
    batches = [np.array([ids.index(k) for k in batch]) for batch in batch_ids_of(params, ids)]
    assert len(batches) == 3
    w, b, losses = reference(xg, xh, np.zeros(len(y)), y, p, batches)
    gm, hm = out[GUEST][0].model, out[HOST][0].model
    np.testing.assert_allclose(np.r_[gm["weights"], hm["weights"]], w, atol=1e-3)
    assert abs(gm["intercept"] - b) < 1e-3
    np.testing.assert_allclose(gm["loss_history"], losses, atol=1e-4)


def guest_alone(hosts: int = 1):
    """A guest's context for what it refuses before it exchanges anything."""
    roles = {"host": [Party("host", str(10000 + i)) for i in range(hosts)], "arbiter": [ARBITER], "guest": [GUEST]}
    return SimpleNamespace(component="hetero_poisson_0", role_parties=lambda role: roles[role], federation=None,
                           role="guest")


def test_refusals(session):
    xg, xh, exposure, y = make_data(n=20)
    ids = [f"id{i:03d}" for i in range(len(y))]
    guest, _ = parties(session, xg, xh, exposure, y, ids)
    inputs = Inputs(data={"train_data": guest})
    with pytest.raises(ComponentError, match="exposure_colname 'expo' is not a column of the guest's train_data"):
        HeteroPoisson().guest(guest_alone(), HeteroPoissonParams(**{**PARAMS, "exposure_colname": "expo"}), inputs)
    negative = exposure.copy()
    negative[0] = -1.0
    bad, _ = parties(session, xg, xh, negative, y, ids)
    with pytest.raises(Exception, match="exposure -1.0 is negative"):
        HeteroPoisson().guest(guest_alone(), HeteroPoissonParams(**PARAMS), Inputs(data={"train_data": bad}))
    with pytest.raises(ComponentError, match="not supported: HeteroPoisson with 2 hosts"):
        HeteroPoisson().guest(guest_alone(2), HeteroPoissonParams(**PARAMS), inputs)
    with pytest.raises(ComponentError, match="not supported: HeteroPoisson warm start"):
        HeteroPoisson().guest(guest_alone(), HeteroPoissonParams(**PARAMS), Inputs(data={"train_data": guest},
                                                                                    model=[{}]))
    with pytest.raises(ValueError):
        HeteroPoissonParams(exposure_colname=3)
    assert HeteroPoissonParams().max_iter == 20 and HeteroPoissonParams().optimizer == "rmsprop"


def test_sample_weights_weight_the_gradient(tmp_path, session):
    """As HeteroLR: each row's D is multiplied by its weight v; the mean stays over n rows."""
    xg, xh, exposure, y = make_data(n=40, seed=4)
    ids = [f"id{i:03d}" for i in range(len(y))]
    guest, host = parties(session, xg, xh, exposure, y, ids)
    v = np.where(y > 1, 2.0, 0.5)
    weighted = guest.table.map_values(lambda inst: Instance(inst.features, inst.label, 2.0 if inst.label > 1 else 0.5))
    guest = Dataset(weighted, guest.meta.model_copy(update={"extra": {**guest.meta.extra, SAMPLE_WEIGHT: "w"}}))
    p = {**PARAMS, "max_iter": 1, "penalty": "none", "alpha": 0.0}
    out = train(tmp_path, session, guest, host, p)
    init = InitParam(**p["init_param"])
    wg, wh = init_weights(init, 3), init_weights(init, 2, seed_offset=1)
    eta = xg @ wg[:2] + wg[2] + xh @ wh + np.log(np.maximum(exposure, 1e-7))
    d = v * (np.exp(eta) - y)
    gm, hm = out[GUEST][0].model, out[HOST][0].model
    np.testing.assert_allclose(gm["weights"], wg[:2] - 0.3 * xg.T @ d / len(y), atol=1e-6)
    np.testing.assert_allclose(gm["intercept"], wg[2] - 0.3 * d.mean(), atol=1e-6)
    np.testing.assert_allclose(hm["weights"], wh - 0.3 * xh.T @ d / len(y), atol=1e-6)


def test_validate_data_is_scored_on_mu(tmp_path, session):
    xg, xh, exposure, y = make_data(n=40, seed=5)
    ids = [f"id{i:03d}" for i in range(len(y))]
    guest, host = parties(session, xg, xh, exposure, y, ids)
    p = {**PARAMS, "max_iter": 2, "validation_freqs": 1}
    out = run_parties(tmp_path, HeteroPoisson, {
        GUEST: (session, p, Inputs(data={"train_data": guest, "validate_data": guest})),
        HOST: (session, p, Inputs(data={"train_data": host, "validate_data": host})),
        ARBITER: (session, p, Inputs())}, name="hetero_poisson_0")
    outputs, tracker = out[GUEST]
    mu = rows_of(outputs.data[0])[1][:, 0]
    assert tracker.metrics[("validate", "root_mean_squared_error")] == pytest.approx(np.sqrt(np.mean((mu - y) ** 2)))
    assert tracker.metrics[("validate_iterations", "mean_absolute_error")]["iteration"] == [0, 1]


def test_poisson_family():
    for eta, y in [(-1.2, 0.0), (0.3, 2.0), (1.5, 5.0)]:
        eps = 1e-6  # d loss / d eta = mu - y, what the guest sends encrypted
        numeric = (POISSON.loss(eta + eps, y) - POISSON.loss(eta - eps, y)) / (2 * eps)
        assert numeric == pytest.approx(np.exp(eta) - y, abs=1e-6)
    assert POISSON.offset(0.0) == pytest.approx(np.log(1e-7)) and POISSON.offset(2.0) == pytest.approx(np.log(2.0))
    assert POISSON.output(np.log(3.0)) == pytest.approx((3.0, 3.0)) and not POISSON.classifier
