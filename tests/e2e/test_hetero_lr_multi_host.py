"""examples/hetero_lr_multi_host end to end (guest + two hosts), against a centralised run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLES, load_example, with_lr_params, write_job

pytestmark = pytest.mark.e2e

PARTIES = [("guest", "9999", "guest"), ("host", "10000", "host1"), ("host", "10001", "host2")]


def joined() -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    """Ids all three parties hold, X = [guest | host1 | host2] standardised over them, y,
    and each party's row count."""
    tables, counts = [], []
    for _, _, name in PARTIES:
        with (EXAMPLES / "data" / f"breast_multi_host_{name}.csv").open() as fh:
            rows = list(csv.reader(fh))[1:]
        tables.append({r[0]: r[1:] for r in rows})
        counts.append(len(rows))
    guest, host1, host2 = tables
    ids = sorted(set(guest) & set(host1) & set(host2))
    y = np.array([float(guest[i][0]) for i in ids])
    x = np.array([[float(v) for v in guest[i][1:] + host1[i] + host2[i]] for i in ids])
    return ids, (x - x.mean(0)) / x.std(0), y, counts


def taylor_gd_weight_diff(x: np.ndarray, y: np.ndarray, p: dict) -> tuple[np.ndarray, float, int]:
    """Full-batch Taylor gradient descent (sgd, lr/sqrt(1+it), L2 on the weights), stopping
    when the norm of the whole step, intercept included, falls below tol."""
    ys = 2 * y - 1
    w, b = np.zeros(x.shape[1]), 0.0
    for it in range(p["max_iter"]):
        d = 0.25 * (x @ w + b) - 0.5 * ys
        lr = p["learning_rate"] / math.sqrt(1 + it)
        step_w, step_b = lr * (x.T @ d / len(y) + p["alpha"] * w), lr * float(d.mean())
        w, b = w - step_w, b - step_b
        if math.sqrt(step_w @ step_w + step_b * step_b) < p["tol"]:
            break
    return w, b, it + 1


@pytest.mark.parametrize("method", ["paillier", "ckks"])
def test_two_hosts_match_the_centralised_computation(flow, tmp_path: Path, method: str):
    """Paillier (a ciphertext per row) and CKKS (8,192 rows to a ciphertext) alike."""
    if method == "ckks":
        pytest.importorskip("tenseal")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    for role, _, name in PARTIES:
        flow.upload(EXAMPLES / "data" / f"breast_multi_host_{name}.csv", f"breast_multi_host_{name}",
                    label="y" if role == "guest" else None)
    conf, dsl = load_example("hetero_lr_multi_host")
    conf = with_lr_params(conf, encrypt_param={"method": method, "key_length": 512, "allow_short_key": True})
    params = conf["component_parameters"]["common"]["hetero_lr_0"]
    c, d = write_job(tmp_path, conf, dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job["reason"]
    job_id = job["job_id"]

    ids, x, y, counts = joined()
    assert len(ids) < min(counts)  # the three-way intersection is smaller than any party's table
    for (role, pid, _), total in zip(PARTIES, counts):
        metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", role, "-p", pid,
                          "-cpn", "intersection_0")["intersection"]
        assert metrics["intersect_count"] == len(ids)
        assert metrics["intersect_rate"] == pytest.approx(len(ids) / total)

    def model(role: str, pid: str) -> dict:
        return flow.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid,
                       "-cpn", "hetero_lr_0")["model"]

    guest, host1, host2 = (model(role, pid) for role, pid, _ in PARTIES)
    w_ref, b_ref, iters = taylor_gd_weight_diff(x, y, params)
    assert 1 < iters < params["max_iter"]  # stopped by weight_diff, not by max_iter
    assert guest["iters"] == host1["iters"] == host2["iters"] == iters and guest["converged"]
    assert guest["header"] == [f"x{i}" for i in range(10)] and host2["header"] == [f"x{i}" for i in range(20, 30)]
    np.testing.assert_allclose(guest["weights"], w_ref[:10], atol=1e-3)
    np.testing.assert_allclose(host1["weights"], w_ref[10:20], atol=1e-3)
    np.testing.assert_allclose(host2["weights"], w_ref[20:], atol=1e-3)
    assert abs(guest["intercept"] - b_ref) < 1e-3
    assert guest["loss_history"] == []  # no loss with several hosts (its cross terms need two hosts' values)
    assert "weights" not in model("arbiter", "10000")

    metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999",
                      "-cpn", "evaluation_0")["evaluation"]
    w_fed = np.r_[guest["weights"], host1["weights"], host2["weights"]]
    assert abs(metrics["auc"] - roc_auc_score(y, x @ w_fed)) < 1e-9
    central = LogisticRegression(C=1.0 / (params["alpha"] * len(y)), max_iter=5000).fit(x, y)
    auc_ref = roc_auc_score(y, central.predict_proba(x)[:, 1])
    assert abs(metrics["auc"] - auc_ref) < 0.01, (metrics["auc"], auc_ref)

    out = flow.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999",
                  "-cpn", "hetero_lr_0", "-o", tmp_path / "out")[0]
    assert out["count"] == len(ids)
    with open(out["file"]) as fh:
        scores = {r["id"]: float(r["predict_score"]) for r in csv.DictReader(fh)}
    expected = 1 / (1 + np.exp(-(x @ w_fed + guest["intercept"])))
    np.testing.assert_allclose([scores[i] for i in ids], expected, atol=1e-9)
