"""SampleWeight against plain numpy (balanced n/(k·n_c), dict, a weight column with
normalize), its storage round trip, the notice for a component that ignores weights, and
one weighted HeteroLR step against the plain weighted logistic (Taylor) gradient."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import SAMPLE_WEIGHT, Inputs, Outputs, drop_sample_weights, instance_to_row, row_to_instance
from components.feature.sample_weight import SampleWeight, SampleWeightParams
from components.linear.hetero_lr import HeteroLR
from components.linear.optimizer import InitParam, init_weights
from federation.api import Party
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

ARBITER = Party("arbiter", "10001")


@pytest.fixture
def session():
    s = LocalSession(partitions=3, workers=1, inline_below=10 ** 6)
    yield s
    s.stop()


def _guest(session, n: int = 60, k: int = 2):
    rng = np.random.default_rng(11)
    y = rng.integers(0, k, n).astype(float)
    x = rng.normal(size=(n, 3))
    x[:, 1] = rng.uniform(0.5, 3.0, n)  # a positive weight column
    return dataset(session, x, ["a", "w", "b"], y), x, y


def _weigh(tmp_path, session, params: dict, data):
    out = run_parties(tmp_path, SampleWeight, {GUEST: (session, params, Inputs(data={"data": data}))})
    return out[GUEST][0]


def _weights(ds) -> np.ndarray:
    return np.array([inst.weight for _, inst in sorted(ds.table.collect(), key=lambda kv: kv[0])])


@pytest.mark.parametrize("k", [2, 3])
def test_balanced_is_n_over_k_n_c(tmp_path, session, k):
    data, _, y = _guest(session, k=k)
    out = _weigh(tmp_path, session, {"class_weight": "balanced"}, data)
    counts = {c: np.sum(y == c) for c in np.unique(y)}
    np.testing.assert_allclose(_weights(out.data[0]), [len(y) / (k * counts[c]) for c in y])
    assert out.data[0].meta.extra[SAMPLE_WEIGHT] == "weight"
    assert out.model["class_weight"] == {str(int(c)): len(y) / (k * counts[c]) for c in counts}


def test_dict_and_column_weights(tmp_path, session):
    data, x, y = _guest(session)
    out = _weigh(tmp_path, session, {"class_weight": {"1": 2.5}}, data)
    np.testing.assert_allclose(_weights(out.data[0]), np.where(y == 1, 2.5, 1.0))  # unnamed class: 1
    col = _weigh(tmp_path / "c", session, {"sample_weight_name": "w", "normalize": True}, data).data[0]
    np.testing.assert_allclose(_weights(col), x[:, 1] / x[:, 1].mean())
    assert col.meta.feature_columns == ["a", "b"]
    np.testing.assert_allclose(rows_of(col)[1], x[:, [0, 2]])
    with pytest.raises(ComponentError, match="sample_weight_name 'nope' is not a column"):
        _weigh(tmp_path / "n", session, {"sample_weight_name": "nope"}, data)
    assert SampleWeightParams(normalize=True, class_weight="balanced").notices()["normalize"].startswith("FATE")
    with pytest.raises(ValueError, match="class_weight key 'yes' is not a label"):
        SampleWeightParams(class_weight={"yes": 1})


def test_weights_survive_storage_rows():
    inst = SimpleNamespace(features=np.array([1.0, 2.0]), label=1.0, weight=0.25)
    row = instance_to_row(True, True)(inst)
    back = row_to_instance(True, True)(row)
    assert row == (1.0, 1.0, 2.0, 0.25) and back.weight == 0.25 and back.features.tolist() == [1.0, 2.0]


def test_a_component_ignoring_weights_says_so(tmp_path, session, caplog):
    data, _, _ = _guest(session)
    weighted = _weigh(tmp_path, session, {"class_weight": "balanced"}, data).data[0]
    ctx = SimpleNamespace(component="scale_0", logger=logging.getLogger("unit.notice"))
    out = Outputs(data=[weighted])
    with caplog.at_level(logging.WARNING):
        drop_sample_weights(ctx, "FeatureScale", Inputs(data={"data": weighted}), out)
    assert "does not use sample weights" in caplog.text
    assert SAMPLE_WEIGHT not in out.data[0].meta.extra
    assert out.data[0].meta.extra["sample_weight_dropped_by"] == "scale_0"
    with pytest.raises(ComponentError, match="dropped by scale_0"):
        HeteroLR().guest(SimpleNamespace(component="lr", role_parties=lambda r: []),
                         HeteroLR.params_model(), Inputs(data={"train_data": out.data[0]}))


def test_weighted_hetero_lr_step_is_the_weighted_gradient(tmp_path, session):
    rng = np.random.default_rng(5)
    n = 40
    y = (rng.random(n) < 0.4).astype(float)
    xg, xh = rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
    ids = [f"id{i:03d}" for i in range(n)]
    guest = dataset(session, xg, ["g0", "g1"], y, ids)
    host = dataset(session, xh, ["h0", "h1", "h2"], None, ids)
    weighted = _weigh(tmp_path, session, {"class_weight": {"0": 0.5, "1": 3}}, guest).data[0]
    v = np.where(y == 1, 3.0, 0.5)
    lr = {"max_iter": 1, "optimizer": "sgd", "penalty": "none", "learning_rate": 0.5, "decay": 0.0,
          "init_param": {"init_method": "random_uniform", "random_seed": 3},
          "encrypt_param": {"key_length": 512, "allow_short_key": True}}
    out = run_parties(tmp_path / "lr", HeteroLR, {
        GUEST: (session, lr, Inputs(data={"train_data": weighted})),
        HOST: (session, lr, Inputs(data={"train_data": host})),
        ARBITER: (session, lr, Inputs())}, name="hetero_lr_0")
    init = InitParam(init_method="random_uniform", random_seed=3)
    wg, wh = init_weights(init, 3), init_weights(init, 3, seed_offset=1)
    s = xg @ wg[:2] + wg[2] + xh @ wh
    fore = v * (0.25 * s - 0.5 * (2 * y - 1))  # FATE's weighted fore gradient of the Taylor loss
    grad_g, grad_b, grad_h = xg.T @ fore / n, fore.sum() / n, xh.T @ fore / n
    gm, hm = out[GUEST][0].model, out[HOST][0].model
    np.testing.assert_allclose(gm["weights"], wg[:2] - 0.5 * grad_g, atol=1e-6)
    np.testing.assert_allclose(gm["intercept"], wg[2] - 0.5 * grad_b, atol=1e-6)
    np.testing.assert_allclose(hm["weights"], wh - 0.5 * grad_h, atol=1e-6)
    plain = 0.25 * s - 0.5 * (2 * y - 1)  # the weights matter: the unweighted step differs
    assert not np.allclose(hm["weights"], wh - 0.5 * xh.T @ plain / n, atol=1e-3)
    assert SAMPLE_WEIGHT not in out[GUEST][0].data[0].meta.extra  # predictions carry no weights
