"""examples/hetero_linr end to end, checked against a centralised gradient descent and
scikit-learn's least squares on the same joined data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLES, FlowCLI, joined, load_example, write_job

pytestmark = pytest.mark.e2e


def least_squares_gd(x: np.ndarray, y: np.ndarray, p: dict) -> tuple[np.ndarray, float, list[float]]:
    """Full-batch gradient descent on (1/2n)·|Xw + b - y|² + (alpha/2)·|w|², as HeteroLinR runs it."""
    w, b, losses = np.zeros(x.shape[1]), 0.0, []
    for it in range(p["max_iter"]):
        d = x @ w + b - y
        losses.append(float(0.5 * np.mean(d * d) + 0.5 * p["alpha"] * w @ w))
        lr = p["learning_rate"] / np.sqrt(1 + p["decay"] * it)
        w, b = w - lr * (x.T @ d / len(y) + p["alpha"] * w), b - lr * float(d.mean())
        if len(losses) > 1 and abs(losses[-2] - losses[-1]) < p["tol"]:
            break
    return w, b, losses


def test_hetero_linr_matches_centralised(flow: FlowCLI, tmp_path: Path):
    from sklearn.linear_model import LinearRegression

    flow.upload(EXAMPLES / "data" / "diabetes_hetero_guest.csv", "diabetes_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "diabetes_hetero_host.csv", "diabetes_hetero_host")
    conf, dsl = load_example("hetero_linr")
    params = conf["component_parameters"]["common"]["hetero_linr_0"]
    c, d = write_job(tmp_path, conf, dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job.get("reason")
    job_id = job["job_id"]

    ids, x, y, _, _ = joined("diabetes_hetero", standardise=True)
    w_ref, b_ref, loss_ref = least_squares_gd(x, y, params)
    models = flow.models(job_id, "hetero_linr_0")
    guest, host = models["guest"], models["host"]
    assert guest["iters"] == len(loss_ref) and len(host["weights"]) == 6
    np.testing.assert_allclose(np.r_[guest["weights"], host["weights"]], w_ref, atol=1e-3)
    assert abs(guest["intercept"] - b_ref) < 1e-3
    np.testing.assert_allclose(guest["loss_history"], loss_ref, atol=1e-4)

    # predictions: the value itself, for every intersected row
    out = flow.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999",
                  "-cpn", "hetero_linr_0", "-o", tmp_path / "out")[0]
    assert out["count"] == len(ids)
    with open(out["file"]) as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    pred = np.array([float(rows[i]["predict_result"]) for i in ids])
    w = np.r_[guest["weights"], host["weights"]]
    np.testing.assert_allclose(pred, x @ w + guest["intercept"], atol=1e-9)
    assert all(rows[i]["predict_score"] == rows[i]["predict_result"] for i in ids)

    # Evaluation (regression): R² of the federated predictions, near least squares' own
    metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999",
                      "-cpn", "evaluation_0")["evaluation"]
    r2 = 1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert abs(metrics["r2_score"] - r2) < 1e-9
    assert abs(metrics["r2_score"] - LinearRegression().fit(x, y).score(x, y)) < 0.01
