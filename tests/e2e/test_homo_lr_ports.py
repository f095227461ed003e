"""HomoLR's validate_data and test_data ports, and a predict job with input.model on
test_data, against the same computation on the pooled rows (full batch, aggregation every
epoch: the model after each epoch is gradient descent on the pooled rows)."""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest

from .conftest import EXAMPLES, load_example, write_job
from .test_homo_lr import SHARES, central_gd, read_share

pytestmark = pytest.mark.e2e

PARTIES = (("guest", "9999"), ("host", "10000"), ("host", "10001"))
#: each party validates and tests on another party's share (one home holds every table)
OTHER = {"9999": "host2", "10000": "guest", "10001": "host1"}


def auc(y: np.ndarray, score: np.ndarray) -> float:
    pos, neg = score[y == 1], score[y == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def _job() -> tuple[dict, dict, dict]:
    conf, dsl = load_example("homo_lr")
    cp = conf["component_parameters"]
    params = cp["common"]["homo_lr_0"]
    params.update(max_iter=12, tol=0.0, validation_freqs=4)
    cp["common"]["data_transform_1"] = copy.deepcopy(cp["common"]["data_transform_0"])
    for role, index, pid in (("guest", "0", "9999"), ("host", "0", "10000"), ("host", "1", "10001")):
        cp["role"][role][index]["reader_1"] = {"table": {"name": f"breast_homo_{OTHER[pid]}",
                                                         "namespace": "experiment"}}
    comps = dsl["components"]
    comps["reader_1"] = copy.deepcopy(comps["reader_0"])
    comps["data_transform_1"] = {"module": "DataTransform", "input": {"data": {"data": ["reader_1.data"]}},
                                 "output": {"data": ["data"], "model": ["model"]}}
    comps["homo_lr_0"]["input"]["data"].update(validate_data=["data_transform_1.data"],
                                               test_data=["data_transform_1.data"])
    return conf, dsl, params


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from .conftest import FlowCLI
    home = tmp_path_factory.mktemp("homo_ports")
    flow = FlowCLI(home / "flow_home")
    (home / "flow_home").mkdir()
    for share in SHARES:
        flow.upload(EXAMPLES / "data" / f"breast_homo_{share}.csv", f"breast_homo_{share}", label="y")
    conf, dsl, params = _job()
    c, d = write_job(home, conf, dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    return flow, job["job_id"], params, home


def _scores(item: dict) -> dict[str, tuple[float, float]]:
    with open(item["file"]) as fh:
        return {r["id"]: (float(r["predict_score"]), float(r["label"])) for r in csv.DictReader(fh)}


def test_validate_metrics_and_test_predictions_match_the_pooled_model(trained):
    flow, job_id, params, home = trained
    shares = {s: read_share(s) for s in SHARES}
    w_ref, _ = central_gd([shares[s][1] for s in SHARES], [shares[s][2] for s in SHARES], params)
    for role, pid in PARTIES:
        task = ["-j", job_id, "-r", role, "-p", pid, "-cpn", "homo_lr_0"]
        ids, x, y = shares[OTHER[pid]]
        metrics = flow.ok("tracking", "metrics", *task)
        # after training: the trained (pooled) model on this party's own validate rows
        assert abs(metrics["validate"]["auc"] - auc(y, x @ w_ref[:-1] + w_ref[-1])) < 1e-9
        assert set(metrics["validate"]) == {"auc", "ks"}
        # every validation_freqs epochs: the model of that epoch, i.e. GD on the pooled rows that long
        curve = metrics["validate_iterations"]["auc"]
        assert curve["iteration"] == [3, 7, 11]
        for it, value in zip(curve["iteration"], curve["value"]):
            w_it, _ = central_gd([shares[s][1] for s in SHARES], [shares[s][2] for s in SHARES],
                                 {**params, "max_iter": it + 1})
            assert abs(value - auc(y, x @ w_it[:-1] + w_it[-1])) < 1e-9
        # outputs: train predictions (what Evaluation reads), then validate, then test
        outs = flow.ok("tracking", "output-data", *task, "-o", home / f"out_{job_id}_{pid}")
        assert len(outs) == 3
        expected = 1 / (1 + np.exp(-(x @ w_ref[:-1] + w_ref[-1])))
        for item in outs[1:]:
            got = _scores(item)
            assert sorted(got) == sorted(ids)
            np.testing.assert_allclose([got[i][0] for i in ids], expected, atol=1e-9)
            assert [got[i][1] for i in ids] == list(y)
    evaluation = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999",
                         "-cpn", "evaluation_0")["evaluation"]
    _, gx, gy = shares["guest"]
    assert abs(evaluation["auc"] - auc(gy, gx @ w_ref[:-1] + w_ref[-1])) < 1e-9  # still the train rows


def test_a_predict_job_scores_test_data_with_the_deployed_model(trained):
    flow, job_id, params, home = trained
    deployed = flow.ok("model", "deploy", "-j", job_id)
    dsl = copy.deepcopy(deployed["predict_dsl"])
    lr = dsl["components"]["homo_lr_0"]["input"]
    # deploy feeds test_data from the training job's train_data (and its test_data): score the train rows
    assert lr["data"]["test_data"][0] == "data_transform_0.data" and lr["model"] == ["pipeline.homo_lr_0.model"]
    lr["data"] = {"test_data": ["data_transform_0.data"]}  # FATE's homo-lr-normal-predict-dsl.json shape
    c, d = write_job(home, deployed["predict_conf"], dsl, "predict")
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    shares = {s: read_share(s) for s in SHARES}
    w_ref, _ = central_gd([shares[s][1] for s in SHARES], [shares[s][2] for s in SHARES], params)
    readers = deployed["predict_conf"]["component_parameters"]["role"]
    for role, pid in PARTIES:
        index = str([p for r, p in PARTIES if r == role].index(pid))
        share = readers[role][index]["reader_0"]["table"]["name"].removeprefix("breast_homo_")
        ids, x, _ = shares[share]
        (item,) = flow.ok("tracking", "output-data", "-j", job["job_id"], "-r", role, "-p", pid,
                          "-cpn", "homo_lr_0", "-o", home / f"pred_{pid}")
        got = _scores(item)
        np.testing.assert_allclose([got[i][0] for i in ids], 1 / (1 + np.exp(-(x @ w_ref[:-1] + w_ref[-1]))),
                                   atol=1e-9)


def test_callback_param_validation_settings_are_acted_on_and_reported():
    from components.linear.homo_lr import HomoLRParams

    p = HomoLRParams(callback_param={"callbacks": ["EarlyStopping"], "validation_freqs": 1, "metrics": ["auc"]})
    vp = p.validation_params()
    assert (vp.validation_freqs, vp.metrics, vp.early_stopping_rounds) == (1, ["auc"], None)
    assert "validation_freqs and metrics act on validate_data" in p.notices()["callback_param"]
    assert HomoLRParams(validation_freqs=2, callback_param={"validation_freqs": 1}).validation_params() \
        .validation_freqs == 2
    assert "validation_freqs" not in HomoLRParams(validation_freqs=2).notices()
    assert HomoLRParams(early_stopping_rounds=3).notices()["early_stopping_rounds"].startswith("accepted")
