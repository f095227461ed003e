"""ColumnExpand, LabelTransform and Scorecard end to end through the CLI, on one small job
over examples/data/breast_hetero (512-bit key, HeteroLR max_iter 2):

reader -> column_expand (guest and host) -> data_transform -> intersection ->
label_transform_0 (y -> 1 - y) -> hetero_lr -> label_transform_1 (the stored encoder,
inverted on the predictions) and scorecard (credit scores of the predictions); then the
deployed model's predict job. Each output is checked against a plain computation on the
uploaded CSV files."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from .conftest import EXAMPLES, FlowCLI, write_job

pytestmark = pytest.mark.e2e

GUEST, HOST = ("guest", "9999"), ("host", "10000")
ENCODER = {"0": 1, "1": 0}


def _conf() -> dict:
    lr = {"penalty": "L2", "alpha": 0.01, "optimizer": "sgd", "learning_rate": 0.15, "batch_size": -1,
          "max_iter": 2, "init_param": {"init_method": "zeros"},
          "encrypt_param": {"key_length": 512, "allow_short_key": True}}
    return {
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000], "arbiter": [10000]},
        "job_parameters": {"common": {"computing_partitions": 2, "timeout": 600}},
        "component_parameters": {
            "common": {
                "intersection_0": {"intersect_method": "rsa", "sync_intersect_ids": True},
                "hetero_lr_0": lr,
                "label_transform_0": {"label_encoder": ENCODER, "label_list": [0, 1]},
                "scorecard_0": {"method": "credit", "offset": 600, "factor": 40, "factor_base": 2,
                                "upper_limit_ratio": 1.5, "lower_limit_value": 100},
            },
            "role": {
                "guest": {"0": {
                    "reader_0": {"table": {"name": "breast_hetero_guest", "namespace": "experiment"}},
                    "column_expand_0": {"append_header": ["x_a", "x_b"], "method": "manual",
                                        "fill_value": [0.5, 2]},
                    "data_transform_0": {"with_label": True, "label_name": "y"},
                }},
                "host": {"0": {
                    "reader_0": {"table": {"name": "breast_hetero_host", "namespace": "experiment"}},
                    "column_expand_0": {"append_header": ["h_extra"], "fill_value": 1},
                    "data_transform_0": {"with_label": False},
                    "label_transform_0": {"need_run": False},
                    "label_transform_1": {"need_run": False},
                    "scorecard_0": {"need_run": False},
                }},
            },
        },
    }


def _dsl() -> dict:
    def cpn(module: str, data: dict | None = None, model: list[str] | None = None, out_model: bool = True) -> dict:
        body: dict = {"module": module, "output": {"data": ["data"]}}
        if data:
            body["input"] = {"data": data}
        if model:
            body.setdefault("input", {})["model"] = model
        if out_model:
            body["output"]["model"] = ["model"]
        return body

    return {"components": {
        "reader_0": cpn("Reader", out_model=False),
        "column_expand_0": cpn("ColumnExpand", {"data": ["reader_0.data"]}),
        "data_transform_0": cpn("DataTransform", {"data": ["column_expand_0.data"]}),
        "intersection_0": cpn("Intersection", {"data": ["data_transform_0.data"]}, out_model=False),
        "label_transform_0": cpn("LabelTransform", {"data": ["intersection_0.data"]}),
        "hetero_lr_0": cpn("HeteroLR", {"train_data": ["label_transform_0.data"]}),
        "label_transform_1": cpn("LabelTransform", {"data": ["hetero_lr_0.data"]}, ["label_transform_0.model"]),
        "scorecard_0": cpn("Scorecard", {"data": ["hetero_lr_0.data"]}, out_model=False),
    }}


def _csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def _output(flow: FlowCLI, job_id: str, party: tuple[str, str], cpn: str, out: Path) -> dict[str, dict[str, str]]:
    item = flow.ok("tracking", "output-data", "-j", job_id, "-r", party[0], "-p", party[1], "-cpn", cpn, "-o", out)[0]
    return _csv(Path(item["file"]))


def _credit(p: float) -> float:
    offset, factor, upper, lower = 600, 40, 1.5 * 600, 100
    if p <= 1e-8:
        s = upper
    elif p >= 1 - 1e-8:
        s = lower
    else:
        s = offset + factor / math.log(2) * math.log((1 - p) / p)
    return round(min(max(s, lower), upper), 2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fate_modules")
    home = tmp / "flow_home"
    home.mkdir()
    flow = FlowCLI(home)
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    c, d = write_job(tmp, _conf(), _dsl(), "train")
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    return flow, job["job_id"], tmp


def test_column_expand_appends_columns_on_each_party(trained):
    flow, job_id, tmp = trained
    guest_src, host_src = _csv(EXAMPLES / "data" / "breast_hetero_guest.csv"), _csv(EXAMPLES / "data" /
                                                                                     "breast_hetero_host.csv")
    guest = _output(flow, job_id, GUEST, "data_transform_0", tmp / "ce_g")
    host = _output(flow, job_id, HOST, "data_transform_0", tmp / "ce_h")
    assert guest.keys() == guest_src.keys() and host.keys() == host_src.keys()
    for k, row in guest.items():
        assert float(row["x_a"]) == 0.5 and float(row["x_b"]) == 2.0
        assert float(row["x3"]) == pytest.approx(float(guest_src[k]["x3"]))
    assert all(float(row["h_extra"]) == 1.0 for row in host.values())
    models = flow.models(job_id, "hetero_lr_0")
    assert len(models["guest"]["weights"]) == 12 and len(models["host"]["weights"]) == 21
    assert flow.models(job_id, "column_expand_0")["host"]["append_header"] == ["h_extra"]


def test_label_transform_encodes_then_decodes_predictions(trained):
    flow, job_id, tmp = trained
    src = _csv(EXAMPLES / "data" / "breast_hetero_guest.csv")
    encoded = _output(flow, job_id, GUEST, "label_transform_0", tmp / "lt0")
    assert {k: float(r["y"]) for k, r in encoded.items()} == {k: 1.0 - float(src[k]["y"]) for k in encoded}
    lr = _output(flow, job_id, GUEST, "hetero_lr_0", tmp / "lr")
    assert {k: float(r["label"]) for k, r in lr.items()} == {k: 1.0 - float(src[k]["y"]) for k in lr}
    decoded = _output(flow, job_id, GUEST, "label_transform_1", tmp / "lt1")
    assert {k: float(r["label"]) for k, r in decoded.items()} == {k: float(src[k]["y"]) for k in lr}
    assert {k: float(r["predict_result"]) for k, r in decoded.items()} == {
        k: 1.0 - float(r["predict_result"]) for k, r in lr.items()}
    assert {k: float(r["predict_score"]) for k, r in decoded.items()} == {
        k: float(r["predict_score"]) for k, r in lr.items()}
    assert flow.models(job_id, "label_transform_1", (GUEST,))["guest"]["label_encoder"] == {"0": "1", "1": "0"}


def test_scorecard_scores_the_predictions(trained):
    flow, job_id, tmp = trained
    lr = _output(flow, job_id, GUEST, "hetero_lr_0", tmp / "sc_lr")
    scored = _output(flow, job_id, GUEST, "scorecard_0", tmp / "sc")
    assert scored.keys() == lr.keys()
    for k, row in scored.items():
        assert float(row["credit_score"]) == pytest.approx(_credit(float(lr[k]["predict_score"])), abs=1e-9)
        assert row["label"] == lr[k]["label"] and row["predict_result"] == lr[k]["predict_result"]


def test_predict_job_applies_the_stored_modules(trained):
    flow, job_id, tmp = trained
    deployed = flow.ok("model", "deploy", "-j", job_id)
    c, d = write_job(tmp, deployed["predict_conf"], deployed["predict_dsl"], "predict")
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    train_lr = _output(flow, job_id, GUEST, "hetero_lr_0", tmp / "p_train")
    lr = _output(flow, job["job_id"], GUEST, "hetero_lr_0", tmp / "p_lr")
    # same columns appended and labels encoded as in training: the same scores
    assert lr.keys() == train_lr.keys()
    assert max(abs(float(lr[k]["predict_score"]) - float(train_lr[k]["predict_score"])) for k in lr) < 1e-9
    src = _csv(EXAMPLES / "data" / "breast_hetero_guest.csv")
    decoded = _output(flow, job["job_id"], GUEST, "label_transform_1", tmp / "p_lt1")
    assert {k: float(r["label"]) for k, r in decoded.items()} == {k: float(src[k]["y"]) for k in lr}
    scored = _output(flow, job["job_id"], GUEST, "scorecard_0", tmp / "p_sc")
    assert {k: float(r["credit_score"]) for k, r in scored.items()} == pytest.approx(
        {k: _credit(float(r["predict_score"])) for k, r in lr.items()}, abs=1e-9)
