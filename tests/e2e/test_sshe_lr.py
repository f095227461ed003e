"""examples/hetero_sshe_lr end to end (guest and host only, weights on secret shares),
checked against the same Taylor gradient descent run centrally and against a plain L2
logistic regression."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLES, load_example, write_job
from .test_hetero_lr import joined_breast, taylor_gd

pytestmark = pytest.mark.e2e
SHORT_KEY = {"key_length": 512, "allow_short_key": True}


def with_sshe_params(conf: dict, **params) -> dict:
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"]["hetero_sshe_lr_0"].update(params)
    return conf


@pytest.mark.parametrize("epochs", [5, 6])  # 6 repay the shared Gram matrix (11 guest columns): sshe_gram.py
def test_hetero_sshe_lr_matches_centralised(breast, tmp_path: Path, epochs: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    conf, dsl = load_example("hetero_sshe_lr")
    conf = with_sshe_params(conf, encrypt_param=SHORT_KEY, max_iter=epochs)
    params = conf["component_parameters"]["common"]["hetero_sshe_lr_0"]
    c, d = write_job(tmp_path, conf, dsl)
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job.get("reason")
    assert {t["role"] for t in job["tasks"] if t["component"] == "hetero_sshe_lr_0"} == {"guest", "host"}

    _, x, y = joined_breast()
    w_ref, b_ref, loss_ref = taylor_gd(x, y, params)
    models = breast.models(job["job_id"], "hetero_sshe_lr_0")
    guest, host = models["guest"], models["host"]
    np.testing.assert_allclose(guest["weights"], w_ref[:10], atol=1e-3)
    np.testing.assert_allclose(host["weights"], w_ref[10:], atol=1e-3)
    assert abs(guest["intercept"] - b_ref) < 1e-3 and guest["iters"] == len(loss_ref)
    np.testing.assert_allclose(guest["loss_history"], loss_ref, atol=1e-4)
    assert "loss_history" not in host and np.abs(w_ref).max() > 0.05

    metrics = breast.ok("tracking", "metrics", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                        "-cpn", "evaluation_0")["evaluation"]
    central = LogisticRegression(C=1.0 / (params["alpha"] * len(y)), max_iter=5000).fit(x, y)
    auc_ref = roc_auc_score(y, central.predict_proba(x)[:, 1])
    assert abs(metrics["auc"] - auc_ref) < 0.01, (metrics["auc"], auc_ref)


def test_unknown_reveal_strategy_is_one_line_at_validation(breast, tmp_path: Path):
    conf, dsl = load_example("hetero_sshe_lr")
    c, d = write_job(tmp_path, with_sshe_params(conf, reveal_strategy="all_in_guest"), dsl)
    res = breast("job", "submit", "-c", c, "-d", d)
    assert res.code == 2
    lines = [p for p in json.dumps(res.out).split("\\n") if "reveal_strategy" in p] or [res.err]
    assert any("hetero_sshe_lr_0" in line and "reveal_strategy" in line for line in lines), (res.out, res.err)


def test_a_host_without_features_is_refused(flow, tmp_path: Path):
    ids = (EXAMPLES / "data" / "breast_hetero_host.csv").read_text().splitlines()
    bare = tmp_path / "bare_host.csv"
    bare.write_text("\n".join(line.split(",")[0] for line in ids) + "\n")
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    flow.upload(bare, "breast_hetero_host")
    conf, dsl = load_example("hetero_sshe_lr")
    c, d = write_job(tmp_path, with_sshe_params(conf, encrypt_param=SHORT_KEY, max_iter=1), dsl)
    res = flow("job", "submit", "-c", c, "-d", d, "--wait")
    assert res.code != 0 and res.data["status"] == "failed"
    assert "host 10000 has no features" in res.data["reason"], res.data["reason"]
