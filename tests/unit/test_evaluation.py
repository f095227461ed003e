"""Evaluation metrics (binary, multi, regression, curves) against scikit-learn on the same arrays."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn import metrics as skm

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Dataset, Inputs, Instance, instances_meta
from components.evaluation.evaluation import Evaluation, EvaluationParams
from components.evaluation.metrics import binary_metrics, ks_curve, multi_metrics, regression_metrics, thin
from federation.api import Party
from flow.core.errors import ComponentError


class Tracker:
    def __init__(self):
        self.metrics: dict[str, object] = {}

    def log_metric(self, namespace, name, value):
        assert namespace == "evaluation"
        self.metrics[name] = value

    def progress(self, done, total, message=""):
        pass


@pytest.fixture(scope="module")
def session():
    with LocalSession(partitions=3, workers=1) as s:
        yield s


def run_evaluation(session, label, columns: dict[str, np.ndarray], extra=None, **params) -> dict:
    from components.base import Context

    names = list(columns)
    rows = [(f"id{i}", Instance(np.array([columns[c][i] for c in names]), float(label[i])))
            for i in range(len(label))]
    meta = instances_meta(TableMeta(namespace="t", name="pred", extra=extra or {}), names, "label")
    tracker = Tracker()
    ctx = Context(job_id="j", component="evaluation_0", local=Party("guest", "9999"), parties={},
                  computing=session, federation=None, storage=None, tracker=tracker,
                  logger=logging.getLogger("test"))
    Evaluation().run(ctx, EvaluationParams(**params), Inputs(data={"data": Dataset(session.parallelize(rows), meta)}))
    return tracker.metrics


def test_binary_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    score = np.clip(0.3 * y + rng.normal(0.35, 0.25, 300), 0, 1).round(2)  # ties on purpose
    got = binary_metrics(y, score)
    pred = (score >= 0.5).astype(int)
    fpr, tpr, _ = skm.roc_curve(y, score)
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    assert got["ks"] == pytest.approx(np.max(tpr - fpr), abs=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1_score"] == pytest.approx(skm.f1_score(y, pred))
    ks = ks_curve(y, score)
    assert ks["ks"] == pytest.approx(got["ks"])
    assert max(t - f for t, f in zip(ks["tpr"], ks["fpr"])) == pytest.approx(got["ks"])


def test_multi_matches_sklearn_macro():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 200).astype(float)
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 5, 200)).astype(float)  # class 4 only predicted
    got = multi_metrics(y, pred)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    kw = dict(average="macro", zero_division=0)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, **kw))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, **kw))
    assert got["f1_score"] == pytest.approx(skm.f1_score(y, pred, **kw))


def test_regression_matches_sklearn():
    rng = np.random.default_rng(3)
    y = rng.normal(5, 2, 150)
    pred = y + rng.normal(0.3, 0.8, 150)
    got = regression_metrics(y, pred)
    assert got["mean_absolute_error"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["mean_squared_error"] == pytest.approx(skm.mean_squared_error(y, pred))
    assert got["root_mean_squared_error"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["median_absolute_error"] == pytest.approx(skm.median_absolute_error(y, pred))
    assert got["r2_score"] == pytest.approx(skm.r2_score(y, pred))
    assert got["explained_variance"] == pytest.approx(skm.explained_variance_score(y, pred))
    const = regression_metrics(np.ones(4), np.array([1.0, 1, 1, 2]))
    assert const["r2_score"] == 0.0 and np.isfinite(const["explained_variance"])


def test_thin_keeps_ends_and_bounds_size():
    curve = thin({"a": list(range(1001)), "b": list(range(1001))}, points=100)
    assert curve["a"][0] == 0 and curve["a"][-1] == 1000 and len(curve["a"]) <= 101
    assert curve["a"] == curve["b"]


def test_component_binary_with_curves_and_loss(session):
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 120)
    score = np.clip(0.4 * y + rng.random(120) * 0.6, 0, 1)
    m = run_evaluation(session, y, {"predict_result": (score >= 0.5) * 1.0, "predict_score": score},
                       extra={"loss_history": [0.69, 0.5, 0.4]})
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, score))
    fpr, tpr, _ = skm.roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(m["roc_curve"]["tpr"], tpr, atol=1e-12)  # 120 points: not thinned
    np.testing.assert_allclose(m["roc_curve"]["fpr"], fpr, atol=1e-12)
    assert m["ks_curve"]["ks"] == pytest.approx(m["ks"])
    assert m["loss_curve"] == {"iteration": [0, 1, 2], "loss": [0.69, 0.5, 0.4]}
    # metrics filters what is stored; "ks" selects the scalar and its curve
    m = run_evaluation(session, y, {"predict_score": score}, metrics=["auc", "ks"])
    assert set(m) == {"auc", "ks", "ks_curve"}


def test_component_pos_label(session):
    y = np.array([2, 2, 7, 7, 2, 7])
    score = np.array([0.9, 0.8, 0.1, 0.3, 0.6, 0.4])
    m = run_evaluation(session, y, {"predict_score": score}, pos_label=2)
    assert m["auc"] == pytest.approx(1.0)


def test_component_multi_and_regression(session):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 90).astype(float)
    pred = np.where(rng.random(90) < 0.7, y, (y + 1) % 3)
    m = run_evaluation(session, y, {"predict_result": pred, "predict_score": rng.random(90)}, eval_type="multi")
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1_score"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert "auc" not in m
    yr = rng.normal(size=90)
    pr = yr + rng.normal(scale=0.1, size=90)
    m = run_evaluation(session, yr, {"predict_result": pr, "predict_score": pr}, eval_type="regression")
    assert m["r2_score"] == pytest.approx(skm.r2_score(yr, pr))
    assert m["root_mean_squared_error"] == pytest.approx(np.sqrt(skm.mean_squared_error(yr, pr)))


def test_component_errors_name_component_and_field(session):
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ComponentError, match="evaluation_0: input pred has no predict_result"):
        run_evaluation(session, y, {"predict_score": y * 1.0}, eval_type="multi")
    with pytest.raises(ComponentError, match=r"metrics \['bogus'\] unknown for eval_type binary"):
        run_evaluation(session, y, {"predict_score": y * 1.0}, metrics=["auc", "bogus"])
    # a FATE metric not computed here is skipped, not refused
    assert set(run_evaluation(session, y, {"predict_score": y * 1.0}, metrics=["auc", "lift"])) == {"auc"}
