"""examples/hetero_secureboost{,_multiclass} end to end, against scikit-learn's gradient boosting
on the joined data, and each party's model holding only its own thresholds."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLES, joined, load_example, write_job

pytestmark = pytest.mark.e2e


def small_key(conf: dict, **params) -> dict:
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"]["hetero_secureboost_0"].update(
        encrypt_param={"key_length": 512, "allow_short_key": True}, **params)
    return conf


def run(flow, tmp_path: Path, example: str, data: str, **params) -> tuple[str, dict]:
    flow.upload(EXAMPLES / "data" / f"{data}_guest.csv", f"{data}_guest", label="y")
    flow.upload(EXAMPLES / "data" / f"{data}_host.csv", f"{data}_host")
    conf, dsl = load_example(example)
    c, d = write_job(tmp_path, small_key(conf, **params), dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    return job["job_id"], conf["component_parameters"]["common"]["hetero_secureboost_0"]


def models(flow, job_id: str) -> tuple[dict, dict]:
    def one(role, pid):
        return flow.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid,
                       "-cpn", "hetero_secureboost_0")["model"]
    return one("guest", "9999"), one("host", "10000")


def output_rows(flow, job_id: str, tmp_path: Path) -> dict[str, dict]:
    out = flow.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999",
                  "-cpn", "hetero_secureboost_0", "-o", tmp_path / "out")[0]
    with open(out["file"]) as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def central_scores(guest: dict, host: dict, x: np.ndarray, g_head: list[str], h_head: list[str]) -> np.ndarray:
    """The ensemble evaluated in one place from both parties' models (as the walk should)."""
    rules = {"guest": [(g_head.index(s["feature"]), s["threshold"]) for s in guest["splits"]],
             "10000": [(len(g_head) + h_head.index(s["feature"]), s["threshold"]) for s in host["splits"]]}
    scores = np.tile(np.asarray(guest["init_score"], dtype=float), (len(x), 1))
    for tree in guest["trees"]:
        nodes = tree["nodes"]
        for i, row in enumerate(x):
            n = nodes[0]
            while n["party"] is not None:
                f, thr = rules[n["party"]][n["split_id"]]
                n = nodes[n["left"] if row[f] <= thr else n["right"]]
            scores[i, tree["dim"]] += guest["learning_rate"] * n["weight"]
    return scores


def assert_thresholds_stay_home(guest: dict, host: dict, h_head: list[str]) -> None:
    host_nodes = [n for t in guest["trees"] for n in t["nodes"] if n["party"] == "10000"]
    assert host_nodes, "the host won no split: the test would not show anything"
    assert all(set(n) >= {"split_id"} and "threshold" not in n and "feature" not in n for n in host_nodes)
    assert {s["feature"] for s in guest["splits"]} <= set(guest["header"])
    assert host["splits"] and all(s["feature"] in h_head for s in host["splits"])
    assert "trees" not in host and "weight" not in json.dumps(host)
    guest_nodes = [n for t in guest["trees"] for n in t["nodes"] if n["party"] == "guest"]
    # one split table entry per node each party owns: the guest's lists none of the host's
    assert sorted(n["split_id"] for n in guest_nodes) == list(range(len(guest["splits"])))
    assert sorted(n["split_id"] for n in host_nodes) == list(range(len(host["splits"])))


def test_binary_matches_sklearn_and_keeps_thresholds_home(flow, tmp_path: Path):
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    job_id, params = run(flow, tmp_path, "hetero_secureboost", "breast_hetero")
    ids, x, y, g_head, h_head = joined("breast_hetero")
    metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999",
                      "-cpn", "evaluation_0")["evaluation"]
    ref = GradientBoostingClassifier(n_estimators=params["num_trees"], max_depth=params["tree_param"]["max_depth"],
                                     learning_rate=params["learning_rate"], random_state=0).fit(x, y)
    auc_ref = roc_auc_score(y, ref.predict_proba(x)[:, 1])
    assert abs(metrics["auc"] - auc_ref) < 0.01, (metrics["auc"], auc_ref)

    guest, host = models(flow, job_id)
    assert len(guest["trees"]) == params["num_trees"]
    assert_thresholds_stay_home(guest, host, h_head)
    rows = output_rows(flow, job_id, tmp_path)
    assert len(rows) == len(ids)
    p = 1 / (1 + np.exp(-central_scores(guest, host, x, g_head, h_head)[:, 0]))
    got = np.array([float(rows[i]["predict_score"]) for i in ids])
    np.testing.assert_allclose(got, p, atol=1e-9)  # the federated walk = the models joined in one place
    assert abs(roc_auc_score(y, got) - metrics["auc"]) < 1e-9


def test_multiclass_accuracy_matches_sklearn(flow, tmp_path: Path):
    from sklearn.ensemble import GradientBoostingClassifier

    job_id, params = run(flow, tmp_path, "hetero_secureboost_multiclass", "wine_hetero")
    ids, x, y, g_head, h_head = joined("wine_hetero")
    rows = output_rows(flow, job_id, tmp_path)
    pred = np.array([float(rows[i]["predict_result"]) for i in ids])
    accuracy = float((pred == y).mean())
    ref = GradientBoostingClassifier(n_estimators=params["num_trees"], max_depth=params["tree_param"]["max_depth"],
                                     learning_rate=params["learning_rate"], random_state=0).fit(x, y)
    assert abs(accuracy - ref.score(x, y)) <= 0.02, (accuracy, ref.score(x, y))
    metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999",
                      "-cpn", "evaluation_0")["evaluation"]
    assert abs(metrics["accuracy"] - accuracy) < 1e-12

    guest, host = models(flow, job_id)
    assert len(guest["trees"]) == 3 * params["num_trees"] and guest["classes"] == [0.0, 1.0, 2.0]
    assert_thresholds_stay_home(guest, host, h_head)
    detail = np.array([[float(rows[i][f"predict_detail_{c}"]) for c in range(3)] for i in ids])
    s = central_scores(guest, host, x, g_head, h_head)
    soft = np.exp(s - s.max(1, keepdims=True))
    np.testing.assert_allclose(detail, soft / soft.sum(1, keepdims=True), atol=1e-9)
