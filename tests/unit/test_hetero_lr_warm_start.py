"""HeteroLR warm start (a model on input.model with train_data): N iterations, then a warm
start up to max_iter N+M, is one run of N+M iterations; both are the plain descent."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.linear import warm_start
from components.linear.hetero_lr import HeteroLR
from components.linear.homo_lr import HomoLR
from components.linear.optimizer import InitParam
from federation.api import Party
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties

ARBITER = Party("arbiter", "10001")
N, M = 2, 2
ALPHA, LR, DECAY = 0.01, 0.15, 1.0


@pytest.fixture(scope="module")
def session():
    s = LocalSession(partitions=2, workers=1, inline_below=10 ** 6)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def data(session):
    rng = np.random.default_rng(7)
    n = 30
    xg, xh = rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
    y = (xg[:, 0] - xh[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(float)
    ids = [f"id{i:03d}" for i in range(n)]
    return (dataset(session, xg, ["g0", "g1"], y, ids), dataset(session, xh, ["h0", "h1", "h2"], None, ids),
            xg, xh, y)


def params(max_iter: int) -> dict:
    return {"max_iter": max_iter, "optimizer": "sgd", "penalty": "L2", "alpha": ALPHA, "learning_rate": LR,
            "decay": DECAY, "early_stop": "diff", "tol": 1e-12, "init_param": {"init_method": "zeros"},
            "encrypt_param": {"key_length": 512, "allow_short_key": True}}


def stored(model: dict) -> dict:
    """A model as the model store gives it back (JSON: lists, no arrays)."""
    return json.loads(json.dumps(model, default=lambda a: a.tolist()))


def train(tmp_path, session, data, max_iter: int, warm: dict | None = None) -> dict:
    """One federated HeteroLR run; ``warm``: each role's input model. Returns each role's model."""
    guest, host = data[0], data[1]
    models = {r: [] if warm is None else [warm[r]] for r in ("guest", "host", "arbiter")}
    p = params(max_iter)
    out = run_parties(tmp_path, HeteroLR, {
        GUEST: (session, p, Inputs(data={"train_data": guest}, model=models["guest"])),
        HOST: (session, p, Inputs(data={"train_data": host}, model=models["host"])),
        ARBITER: (session, p, Inputs(model=models["arbiter"]))}, name="hetero_lr_1")
    return {party.role: stored(res[0].model) for party, res in out.items()}


def plain_descent(xg, xh, y, iters: int):
    """The same descent centrally: Taylor loss, sgd, L2 (not on the intercept), decayed rate."""
    wg, b, wh = np.zeros(xg.shape[1]), 0.0, np.zeros(xh.shape[1])
    t, losses = 2 * y - 1, []
    for it in range(iters):
        s = xg @ wg + b + xh @ wh
        losses.append(float(np.mean(math.log(2) - 0.5 * t * s + 0.125 * s * s))
                      + 0.5 * ALPHA * float(wg @ wg + wh @ wh))
        fore = 0.25 * s - 0.5 * t
        lr = LR / math.sqrt(1 + DECAY * it)
        wg, b, wh = (wg - lr * (xg.T @ fore / len(y) + ALPHA * wg), b - lr * fore.mean(),
                     wh - lr * (xh.T @ fore / len(y) + ALPHA * wh))
    return wg, b, wh, losses


@pytest.fixture(scope="module")
def runs(tmp_path_factory, session, data):
    tmp = tmp_path_factory.mktemp("warm")
    first = train(tmp / "a", session, data, N)
    return {"first": first, "warm": train(tmp / "b", session, data, N + M, warm=first),
            "whole": train(tmp / "c", session, data, N + M)}


def test_warm_start_of_n_then_m_is_one_run_of_n_plus_m(runs, data):
    warm, whole = runs["warm"], runs["whole"]
    for role, key in (("guest", "weights"), ("guest", "intercept"), ("host", "weights")):
        np.testing.assert_allclose(warm[role][key], whole[role][key], atol=1e-6)
        assert not np.allclose(warm[role][key], runs["first"][role][key], atol=1e-3)  # it did train on
    assert warm["guest"]["iters"] == warm["host"]["iters"] == warm["arbiter"]["iters"] == N + M
    np.testing.assert_allclose(warm["guest"]["loss_history"], whole["guest"]["loss_history"], atol=1e-6)
    np.testing.assert_allclose(warm["guest"]["loss_history"][:N], runs["first"]["guest"]["loss_history"])


def test_both_are_the_plain_descent(runs, data):
    xg, xh, y = data[2], data[3], data[4]
    wg, b, wh, losses = plain_descent(xg, xh, y, N + M)
    warm = runs["warm"]
    np.testing.assert_allclose(warm["guest"]["weights"], wg, atol=1e-6)
    np.testing.assert_allclose(warm["guest"]["intercept"], b, atol=1e-6)
    np.testing.assert_allclose(warm["host"]["weights"], wh, atol=1e-6)
    np.testing.assert_allclose(warm["guest"]["loss_history"], losses, atol=1e-6)


def test_max_iter_already_reached_trains_no_more(tmp_path, session, data, runs):
    first = runs["first"]
    again = train(tmp_path, session, data, N, warm=first)
    np.testing.assert_allclose(again["guest"]["weights"], first["guest"]["weights"])
    np.testing.assert_allclose(again["host"]["weights"], first["host"]["weights"])
    assert again["guest"]["iters"] == N and again["guest"]["loss_history"] == first["guest"]["loss_history"]


def test_parts_of_different_models_are_refused(runs):
    """Each party reads its own part; one that stopped elsewhere than the guest's is refused."""
    ctx = SimpleNamespace(component="hetero_lr_1", role="host", local=HOST)
    mine = warm_start.stored(ctx, runs["warm"]["host"], "iters", None, 0)
    with pytest.raises(ComponentError, match="stopped at iteration"):
        warm_start.agree(ctx, mine, warm_start.stored(ctx, runs["first"]["guest"], "iters", None, 0))
    warm_start.agree(ctx, mine, [N + M])


def test_a_model_of_other_columns_is_refused(data, runs):
    ctx = SimpleNamespace(component="hetero_lr_1", role="guest", local=GUEST)
    inputs = Inputs(data={"train_data": data[0]}, model=[runs["first"]["guest"]])
    with pytest.raises(ComponentError, match="differ from the input model"):
        warm_start.starts(ctx, InitParam(), inputs, ["g0", "x"], None, 3, 0, True)
    with pytest.raises(ComponentError, match="classes"):
        warm_start.starts(ctx, InitParam(), inputs, ["g0", "g1"], 3, 3, 0, True, np.array([0.0, 1.0, 2.0]))


def test_homo_lr_refuses_warm_start(data):
    ctx = SimpleNamespace(component="homo_lr_1", role="guest", local=GUEST)
    with pytest.raises(ComponentError, match=r"not supported: warm start \(input.model with train_data\) for HomoLR"):
        HomoLR()._party(ctx, HomoLR.params_model(), Inputs(data={"train_data": data[0]}, model=[{}]))


def test_missing_or_infinite_features_are_refused_in_one_line(session):
    """DataTransform keeps an empty cell as NaN (FATE's way); HeteroLR says so instead of failing
    inside Paillier's encoder."""
    from components.linear.hetero_rows import check_finite

    x = np.array([[1.0, 2.0], [np.nan, 0.5], [0.1, 0.2]])
    ids = ["a", "b", "c"]
    ok = dataset(session, np.nan_to_num(x), ["g0", "g1"], np.array([0.0, 1.0, 0.0]), ids)
    assert check_finite("hetero_lr_0", ok) is ok
    for bad_value in (np.nan, np.inf):
        x[1, 0] = bad_value
        bad = dataset(session, x, ["g0", "g1"], np.array([0.0, 1.0, 0.0]), ids)
        with pytest.raises(ComponentError, match=r"^hetero_lr_0: its data has missing \(NaN\) or infinite feature"):
            check_finite("hetero_lr_0", bad)
