"""HomoSecureBoost end to end through the CLI: a job on the breast_homo shares whose
predictions equal a plain histogram booster on the pooled rows, and FATE's selection
pipeline that filters columns by the homo SecureBoost model's feature importance."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import suite_path, upload
from tests.unit.test_homo_secureboost import central

from .conftest import EXAMPLES, load_example, write_job
from .test_homo_lr import SHARES, read_share

pytestmark = pytest.mark.e2e

PARTIES = (("guest", "9999"), ("host", "10000"), ("host", "10001"))


@pytest.fixture
def homo(flow):
    for share in SHARES:
        flow.upload(EXAMPLES / "data" / f"breast_homo_{share}.csv", f"breast_homo_{share}", label="y")
    return flow


def sbt_job(params: dict) -> tuple[dict, dict]:
    conf, dsl = load_example("homo_lr")
    conf, dsl = copy.deepcopy(conf), copy.deepcopy(dsl)
    common = conf["component_parameters"]["common"]
    del common["homo_lr_0"]
    common["homo_secureboost_0"] = params
    dsl["components"]["homo_secureboost_0"] = dsl["components"].pop("homo_lr_0")
    dsl["components"]["homo_secureboost_0"]["module"] = "HomoSecureBoost"
    dsl["components"]["evaluation_0"]["input"]["data"]["data"] = ["homo_secureboost_0.data"]
    return conf, dsl


def test_homo_secureboost_job_equals_pooled_boosting(homo, tmp_path: Path):
    params = {"task_type": "classification", "objective_param": {"objective": "cross_entropy"}, "num_trees": 2,
              "bin_num": 16, "learning_rate": 0.3, "n_iter_no_change": False, "tree_param": {"max_depth": 3}}
    c, d = write_job(tmp_path, *sbt_job(params))
    job = homo.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    job_id = job["job_id"]
    shares = [read_share(s) for s in SHARES]
    x, y = np.vstack([s[1] for s in shares]), np.concatenate([s[2] for s in shares])
    want, score = central(x, y, 16, 2, 3, 0.3, regression=False)
    start = 0
    for (role, pid), (ids, _xs, ys) in zip(PARTIES, shares):
        model = homo.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid,
                        "-cpn", "homo_secureboost_0")["model"]
        assert len(model["trees"]) == 2
        assert [len([n for n in t["nodes"] if n["party"] is not None]) for t in model["trees"]] == \
            [len(s) for s, _ in want]
        assert sum(e["split"] for e in model["feature_importance"]) == sum(len(s) for s, _ in want)
        out = homo.ok("tracking", "output-data", "-j", job_id, "-r", role, "-p", pid,
                      "-cpn", "homo_secureboost_0", "-o", tmp_path / f"out_{role}{pid}")[0]
        with open(out["file"]) as fh:
            rows = {r["id"]: r for r in csv.DictReader(fh)}
        assert sorted(rows) == sorted(ids)
        expected = 1 / (1 + np.exp(-score[start:start + len(ids)]))
        start += len(ids)
        got = np.array([float(rows[i]["predict_score"]) for i in ids])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert all(float(rows[i]["label"]) == yi for i, yi in zip(ids, ys))


def test_fate_selection_pipeline_with_homo_sbt_filter(flow, tmp_path: Path):
    """FATE's pipeline-hetero-feature-selection-homo-sbt, unchanged: each party keeps the columns
    whose importance in its copy of the (common) homo SecureBoost model reaches the threshold."""
    suite = "hetero_feature_selection"
    upload(flow, suite, ["breast_homo_guest", "breast_homo_host"], tmp_path)
    folder = suite_path(suite).parent
    conf = folder / "pipeline-hetero-feature-selection-homo-sbt_conf.json"
    dsl = folder / "pipeline-hetero-feature-selection-homo-sbt_dsl.json"
    threshold = json.loads(conf.read_text())["component_parameters"]["common"]["hetero_feature_selection_0"][
        "sbt_param"]["threshold"]
    job = flow.ok("job", "submit", "-c", conf, "-d", dsl, "--wait")
    assert job["status"] == "success", job
    kept = []
    for role, pid in (("guest", "9999"), ("host", "10000")):
        sbt = flow.ok("tracking", "output-model", "-j", job["job_id"], "-r", role, "-p", pid,
                      "-cpn", "homo_secureboost_0")["model"]
        sel = flow.ok("tracking", "output-model", "-j", job["job_id"], "-r", role, "-p", pid,
                      "-cpn", "hetero_feature_selection_0")["model"]
        important = {e["feature"] for e in sbt["feature_importance"] if e["importance"] >= threshold}
        assert important and set(sel["left_cols"]) == important
        kept.append(sel["left_cols"])
    assert kept[0] == kept[1]  # one common model, the same columns everywhere
