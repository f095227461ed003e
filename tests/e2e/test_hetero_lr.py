"""examples/hetero_lr end to end, checked against centralised computations on the same data."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLES, joined, load_example, with_lr_params, write_job

pytestmark = pytest.mark.e2e


def joined_breast() -> tuple[list[str], np.ndarray, np.ndarray]:
    """ids, X = [guest features | host features] standardised, y; ordered by id."""
    ids, x, y, _, _ = joined("breast_hetero", standardise=True)
    return ids, x, y


def taylor_gd(x: np.ndarray, y: np.ndarray, p: dict) -> tuple[np.ndarray, float, list[float]]:
    """Full-batch gradient descent on the Taylor-approximated logistic loss, as HeteroLR runs it."""
    ys, l1 = 2 * y - 1, p.get("penalty", "L2").upper() == "L1"
    w, b, losses = np.zeros(x.shape[1]), 0.0, []
    for it in range(p["max_iter"]):
        wx = x @ w + b
        penalty = p["alpha"] * np.abs(w).sum() if l1 else 0.5 * p["alpha"] * w @ w
        losses.append(float(np.mean(math.log(2) - 0.5 * ys * wx + 0.125 * wx * wx) + penalty))
        d = 0.25 * wx - 0.5 * ys
        lr = p["learning_rate"] / math.sqrt(1 + it)
        if l1:  # a gradient step, then every weight shrunk towards zero by lr * alpha
            w = w - lr * (x.T @ d / len(y))
            w = np.sign(w) * np.maximum(np.abs(w) - lr * p["alpha"], 0.0)
        else:
            w = w - lr * (x.T @ d / len(y) + p["alpha"] * w)
        b = b - lr * float(d.mean())
        if len(losses) > 1 and abs(losses[-2] - losses[-1]) < p["tol"]:
            break
    return w, b, losses


def test_hetero_lr_matches_centralised(breast, tmp_path: Path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    conf, dsl = load_example("hetero_lr")
    params = conf["component_parameters"]["common"]["hetero_lr_0"]
    c, d = write_job(tmp_path, conf, dsl)
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    job_id = job["job_id"]
    statuses = {(t["component"], t["role"]) for t in job["tasks"] if t["status"] == "success"}
    assert ("hetero_lr_0", "arbiter") in statuses and ("intersection_0", "host") in statuses
    # the supervisor logs each party's end with its peak memory and CPU (bench/ reads it)
    log = (breast.home / "jobs" / job["job_id"] / "supervisor.log").read_text()
    assert ", forked from " in log.splitlines()[0], log  # from `flow job submit`'s own process
    ended = re.findall(r"^(\w+:\d+): exit 0, peak RSS (\d+) MiB, CPU ([\d.]+) s$", log, re.M)
    assert sorted(p for p, _, _ in ended) == ["arbiter:10000", "guest:9999", "host:10000"], log
    assert all(int(mib) > 20 for _, mib, _ in ended), log  # a Python with numpy loaded, at least

    ids, x, y = joined_breast()
    # weights: the same Taylor gradient descent computed centrally
    w_ref, b_ref, loss_ref = taylor_gd(x, y, params)
    guest = breast.ok("tracking", "output-model", "-j", job_id, "-r", "guest", "-p", "9999",
                      "-cpn", "hetero_lr_0")["model"]
    host = breast.ok("tracking", "output-model", "-j", job_id, "-r", "host", "-p", "10000",
                     "-cpn", "hetero_lr_0")["model"]
    assert guest["iters"] == len(loss_ref)
    np.testing.assert_allclose(guest["weights"], w_ref[:10], atol=1e-3)
    np.testing.assert_allclose(host["weights"], w_ref[10:], atol=1e-3)
    assert abs(guest["intercept"] - b_ref) < 1e-3
    np.testing.assert_allclose(guest["loss_history"], loss_ref, atol=1e-4)
    assert "weights" not in breast.ok("tracking", "output-model", "-j", job_id, "-r", "arbiter", "-p", "10000",
                                      "-cpn", "hetero_lr_0")["model"]

    # AUC: within 0.01 of scikit-learn's L2 logistic regression on the joined data
    metrics = breast.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999",
                        "-cpn", "evaluation_0")["evaluation"]
    central = LogisticRegression(C=1.0 / (params["alpha"] * len(y)), max_iter=5000).fit(x, y)
    auc_ref = roc_auc_score(y, central.predict_proba(x)[:, 1])
    assert abs(metrics["auc"] - auc_ref) < 0.01, (metrics["auc"], auc_ref)
    # the Evaluation component's AUC is the AUC of the federated model's own scores
    assert abs(metrics["auc"] - roc_auc_score(y, x @ np.r_[guest["weights"], host["weights"]])) < 1e-9

    # predictions: every intersected row, scored with the federated weights
    out = breast.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999",
                    "-cpn", "hetero_lr_0", "-o", tmp_path / "out")[0]
    assert out["count"] == len(ids)
    with open(out["file"]) as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    first = ids[0]
    wx = x[0] @ np.r_[guest["weights"], host["weights"]] + guest["intercept"]
    assert abs(float(rows[first]["predict_score"]) - 1 / (1 + math.exp(-wx))) < 1e-9


def job_and_central_descent(breast, tmp_path: Path, **lr_params) -> tuple[dict, np.ndarray, float, list]:
    """The hetero_lr example with ``lr_params`` run as a job, and the same descent run centrally:
    (each party's model, weights, intercept, losses)."""
    conf = with_lr_params(load_example("hetero_lr")[0], **lr_params)
    c, d = write_job(tmp_path, conf, load_example("hetero_lr")[1])
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job["reason"]
    _, x, y = joined_breast()
    w_ref, b_ref, loss_ref = taylor_gd(x, y, conf["component_parameters"]["common"]["hetero_lr_0"])
    return breast.models(job["job_id"], "hetero_lr_0"), w_ref, b_ref, loss_ref


def test_l1_penalty_matches_the_centralised_proximal_descent(breast, tmp_path: Path):
    """FATE's L1: each party shrinks its own weights after the step, which is exactly the
    central proximal gradient step, since the penalty is separable by weight."""
    models, w_ref, b_ref, loss_ref = job_and_central_descent(
        breast, tmp_path, encrypt_param={"key_length": 512, "allow_short_key": True}, penalty="L1", alpha=0.05,
        max_iter=8, tol=0.0)
    w = np.r_[models["guest"]["weights"], models["host"]["weights"]]
    np.testing.assert_allclose(w, w_ref, atol=1e-3)
    assert abs(models["guest"]["intercept"] - b_ref) < 1e-3
    np.testing.assert_allclose(models["guest"]["loss_history"], loss_ref, atol=1e-4)
    zero = w_ref == 0.0
    assert 0 < zero.sum() < len(w_ref) and (w[zero] == 0.0).all()  # sparse, exactly where the central run is


def test_ckks_job_matches_the_centralised_descent(breast, tmp_path: Path):
    """encrypt_param.method ckks: the same descent as Paillier's within the flooding noise,
    the loss included (decrypted by the arbiter from masked parts)."""
    pytest.importorskip("tenseal")
    models, w_ref, b_ref, loss_ref = job_and_central_descent(breast, tmp_path, encrypt_param={"method": "ckks"},
                                                             max_iter=6)
    np.testing.assert_allclose(np.r_[models["guest"]["weights"], models["host"]["weights"]], w_ref, atol=1e-4)
    assert abs(models["guest"]["intercept"] - b_ref) < 1e-4
    np.testing.assert_allclose(models["guest"]["loss_history"], loss_ref, atol=1e-5)
    assert models["guest"]["iters"] == len(loss_ref)


def test_small_key_job_with_mini_batches_and_adam(breast, tmp_path: Path):
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, encrypt_param={"key_length": 512, "allow_short_key": True}, batch_size=200,
                          optimizer="adam", max_iter=4, early_stop="weight_diff", learning_rate=0.1)
    c, d = write_job(tmp_path, conf, dsl)
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job["reason"]
    metrics = breast.ok("tracking", "metrics", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                        "-cpn", "evaluation_0")["evaluation"]
    assert metrics["auc"] > 0.95


def test_multiclass_labels_train_one_vs_rest_as_central_descents_do(flow, tmp_path: Path):
    """examples/hetero_lr_multiclass on wine (3 classes): one Taylor descent per class on
    'this class or not', each equal to the central one; rows go to the likeliest class."""
    flow.upload(EXAMPLES / "data" / "wine_hetero_guest.csv", "wine_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "wine_hetero_host.csv", "wine_hetero_host")
    conf, dsl = load_example("hetero_lr_multiclass")
    conf = with_lr_params(conf, encrypt_param={"key_length": 512, "allow_short_key": True}, max_iter=6)
    params = conf["component_parameters"]["common"]["hetero_lr_0"]
    c, d = write_job(tmp_path, conf, dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job.get("reason")
    models = flow.models(job["job_id"], "hetero_lr_0")
    guest, host = models["guest"], models["host"]
    assert guest["classes"] == [0.0, 1.0, 2.0] and np.shape(host["weights"]) == (3, 8)

    ids, x, y, _, _ = joined("wine_hetero", standardise=True)
    scores = []
    for k, cls in enumerate(guest["classes"]):
        w_ref, b_ref, loss_ref = taylor_gd(x, (y == cls).astype(float), params)
        np.testing.assert_allclose(np.r_[guest["weights"][k], host["weights"][k]], w_ref, atol=1e-3)
        assert abs(guest["intercept"][k] - b_ref) < 1e-3
        np.testing.assert_allclose(guest["loss_history"][k], loss_ref, atol=1e-4)
        scores.append(x @ w_ref + b_ref)
    central = np.argmax(np.stack(scores, axis=1), axis=1)

    out = flow.ok("tracking", "output-data", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                  "-cpn", "hetero_lr_0", "-o", tmp_path / "out")[0]
    with open(out["file"]) as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert out["count"] == len(ids) and {"predict_detail_0", "predict_detail_2"} <= set(rows[ids[0]])
    predicted = np.array([float(rows[i]["predict_result"]) for i in ids])
    np.testing.assert_array_equal(predicted, central)
    accuracy = flow.ok("tracking", "metrics", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                       "-cpn", "evaluation_0")["evaluation"]["accuracy"]
    assert accuracy == pytest.approx(float((central == y).mean())) and accuracy > 0.9

    # a predict job with the stored one-vs-rest models gives the same rows
    conf = json.loads((EXAMPLES / "hetero_lr_predict" / "conf.json").read_text())
    conf["job_parameters"]["common"]["model_version"] = job["job_id"]
    for role in ("guest", "host"):
        conf["component_parameters"]["role"][role]["0"]["reader_0"]["table"]["name"] = f"wine_hetero_{role}"
    c, d = write_job(tmp_path, conf, json.loads((EXAMPLES / "hetero_lr_predict" / "dsl.json").read_text()), "predict")
    predict = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert predict["status"] == "success", predict.get("reason")
    out = flow.ok("tracking", "output-data", "-j", predict["job_id"], "-r", "guest", "-p", "9999",
                  "-cpn", "hetero_lr_0", "-o", tmp_path / "predicted")[0]
    with open(out["file"]) as fh:
        again = {r["id"]: r for r in csv.DictReader(fh)}
    for i in ids:
        for column in ("predict_result", "predict_detail_0", "predict_detail_1", "predict_detail_2"):
            assert float(again[i][column]) == pytest.approx(float(rows[i][column]), abs=1e-9)


def validated_job(flow, tmp_path: Path, **params) -> tuple[str, list[str]]:
    """examples/hetero_lr without scaling (breast_hetero is z-scored already), with a split
    feeding validate_data (30%, stratified); the job id and the validate ids."""
    conf, dsl = load_example("hetero_lr")
    del dsl["components"]["feature_scale_0"], conf["component_parameters"]["common"]["feature_scale_0"]
    dsl["components"]["split_0"] = {"module": "HeteroDataSplit", "input": {"data": {"data": ["intersection_0.data"]}},
                                    "output": {"data": ["train_data", "validate_data", "test_data"]}}
    dsl["components"]["hetero_lr_0"]["input"]["data"] = {"train_data": ["split_0.train_data"],
                                                         "validate_data": ["split_0.validate_data"]}
    conf["component_parameters"]["common"]["split_0"] = {"train_size": 0.7, "validate_size": 0.3, "test_size": 0.0,
                                                         "stratified": True, "random_seed": 7}
    conf = with_lr_params(conf, encrypt_param={"key_length": 512, "allow_short_key": True}, **params)
    c, d = write_job(tmp_path, conf, dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job.get("reason")
    items = flow.ok("tracking", "output-data", "-j", job["job_id"], "-r", "guest", "-p", "9999", "-cpn", "split_0",
                    "-o", tmp_path / "split")
    with open(sorted(items, key=lambda i: i["index"])[1]["file"]) as fh:
        return job["job_id"], [r["id"] for r in csv.DictReader(fh)]


def test_validate_data_is_scored_with_the_trained_model(breast, tmp_path: Path):
    """validate_data from a data split: the guest logs FATE's default binary metrics (auc,
    ks) of the trained model on those rows (hosts send their wx for them), equal to those
    of the federated weights applied centrally to the same rows."""
    from sklearn.metrics import roc_auc_score, roc_curve

    job_id, validate_ids = validated_job(breast, tmp_path, max_iter=4)
    assert 160 < len(validate_ids) < 180
    metrics = breast.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "hetero_lr_0")
    assert set(metrics["validate"]) == {"auc", "ks"} and "validate_iterations" not in metrics
    models = breast.models(job_id, "hetero_lr_0", (("guest", "9999"), ("host", "10000"), ("arbiter", "10000")))
    ids, x, y, _, _ = joined("breast_hetero")
    rows = np.isin(ids, validate_ids)
    score = x[rows] @ np.r_[models["guest"]["weights"], models["host"]["weights"]] + models["guest"]["intercept"]
    fpr, tpr, _ = roc_curve(y[rows], score)
    assert abs(metrics["validate"]["auc"] - roc_auc_score(y[rows], score)) < 1e-9
    assert abs(metrics["validate"]["ks"] - float(np.max(tpr - fpr))) < 1e-9


def test_validation_every_other_iteration_stops_early_as_fate_does(breast, tmp_path: Path):
    """validation_freqs 2, early_stopping_rounds 1 on accuracy (use_first_metric_only): every
    party stops at the first validation round that does not beat the best so far; the
    curve and the final metrics agree with the weights each party kept."""
    job_id, validate_ids = validated_job(breast, tmp_path, max_iter=12, tol=0.0, validation_freqs=2,
                                         early_stopping_rounds=1, metrics=["accuracy", "auc"],
                                         use_first_metric_only=True)
    metrics = breast.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "hetero_lr_0")
    curve = metrics["validate_iterations"]["accuracy"]
    assert curve["iteration"] == list(range(1, 2 * len(curve["iteration"]), 2))
    best, stop = curve["value"][0], None
    for it, value in zip(curve["iteration"][1:], curve["value"][1:]):
        if value <= best:
            stop = it
            break
        best = value
    assert stop is not None, curve  # the data make this run stop early
    models = breast.models(job_id, "hetero_lr_0", (("guest", "9999"), ("host", "10000"), ("arbiter", "10000")))
    assert models["guest"]["iters"] == models["host"]["iters"] == models["arbiter"]["iters"] == stop + 1
    assert curve["iteration"][-1] == stop and metrics["validate"]["accuracy"] == curve["value"][-1]
    ids, x, y, _, _ = joined("breast_hetero")
    rows = np.isin(ids, validate_ids)
    score = x[rows] @ np.r_[models["guest"]["weights"], models["host"]["weights"]] + models["guest"]["intercept"]
    assert metrics["validate"]["accuracy"] == pytest.approx(float(((score >= 0) == (y[rows] == 1)).mean()))
