"""FATE's hetero_secureboost suite (../shared/fate-examples/dsl/hetero_secureboost) run unchanged
with ``flow job submit --wait``: train_binary_with_missing_value (ionosphere, empty cells),
train_complete_secure, and train_binary_EINI_predict's conf on the complete_secure model.

The confs are FATE's as shipped (1024-bit keys, 3 trees): about a minute per job. Each
party's stored model is replayed centrally on the joined CSV rows (every node's owner, split,
threshold and learned missing direction, NaN for an empty cell) and must give the scores the
job output, so the cross-party walk, the missing routing and EINI are checked together.
For EINI the predict conf is copied to the test's folder with the training job's model_id /
model_version filled in (as the suite runner fills them) and the training host's party id
(FATE's predict conf names host 10000, its training confs host 9998).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import fate_examples

pytestmark = pytest.mark.e2e

SUITE = "hetero_secureboost"
CPN = "hetero_secure_boost_0"


@pytest.fixture(scope="module")
def fate() -> Path:
    return fate_examples()


def _suite(fate: Path) -> dict:
    return json.loads((fate / "dsl" / SUITE / f"{SUITE}_testsuite.json").read_text())


@pytest.fixture(scope="module")
def uploaded(fate: Path, tmp_path_factory):
    from .conftest import FlowCLI

    tmp = tmp_path_factory.mktemp("fate_sbt")
    flow = FlowCLI(tmp / "home")
    flow.home.mkdir()
    for entry in _suite(fate)["data"]:
        if not entry["table_name"].startswith(("breast_hetero", "ionosphere")):
            continue
        conf = {k: v for k, v in entry.items() if k != "role"}
        conf["file"] = str(fate / entry["file"].removeprefix("examples/"))
        path = tmp / f"upload_{entry['table_name']}.json"
        path.write_text(json.dumps(conf))
        flow.ok("data", "upload", "-c", path)
    return flow, tmp


def _submit(flow, conf: Path, dsl: Path) -> str:
    job = flow.ok("job", "submit", "-c", conf, "-d", dsl, "--wait", timeout=1200)
    assert job["status"] == "success", job
    return job["job_id"]


def _task(fate: Path, name: str) -> tuple[Path, Path]:
    spec = _suite(fate)["tasks"][name]
    return fate / "dsl" / SUITE / spec["conf"], fate / "dsl" / SUITE / spec["dsl"]


def _table(fate: Path, name: str) -> dict[str, dict[str, float]]:
    """id -> column -> value of an example CSV (an empty cell: NaN)."""
    with open(fate / "data" / f"{name}.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    return {r[0]: {c: (float(v) if v.strip() else math.nan) for c, v in zip(head[1:], r[1:])} for r in rows[1:]}


def _scores(flow, job_id: str, tmp: Path) -> dict[str, float]:
    item = flow.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", CPN,
                   "-o", tmp / job_id)[0]
    with open(item["file"]) as fh:
        reader = csv.DictReader(fh)
        key = (reader.fieldnames or ["id"])[0]  # the table's id column (sid, id)
        return {r[key]: float(r["predict_score"]) for r in reader}


def _replay(guest: dict, host: dict, rows: dict[str, tuple[dict, dict]]) -> dict[str, float]:
    """P(y=1) per id from the two stored models, walked on the joined rows in one place."""
    out = {}
    for key, (g_row, h_row) in rows.items():
        f = float(guest["init_score"][0])
        for tree in guest["trees"]:
            node = tree["nodes"][0]
            while node["party"] is not None:
                model, row = (guest, g_row) if node["party"] == "guest" else (host, h_row)
                split = model["splits"][node["split_id"]]
                v = row[split["feature"]]
                missing = model["use_missing"] and (math.isnan(v) or (model["zero_as_missing"] and v == 0))
                left = split["missing_left"] if missing else v <= split["threshold"]
                node = tree["nodes"][node["left"] if left else node["right"]]
            f += guest["learning_rate"] * node["weight"]
        out[key] = 1 / (1 + math.exp(-f))
    return out


def _models(flow, job_id: str) -> tuple[dict, dict]:
    return tuple(flow.ok("tracking", "output-model", "-j", job_id, "-r", r, "-p", p, "-cpn", CPN)["model"]
                 for r, p in (("guest", "9999"), ("host", "9998")))


def _joined(fate: Path, data: str) -> dict[str, tuple[dict, dict]]:
    g, h = _table(fate, f"{data}_hetero_guest"), _table(fate, f"{data}_hetero_host")
    return {k: (g[k], h[k]) for k in g.keys() & h.keys()}


def test_train_binary_with_missing_value_routes_empty_cells(uploaded, fate: Path):
    flow, tmp = uploaded
    job_id = _submit(flow, *_task(fate, "train_binary_with_missing_value"))
    guest, host = _models(flow, job_id)
    assert guest["use_missing"] and host["use_missing"]
    rows = _joined(fate, "ionosphere_scale")
    assert any(math.isnan(v) for g, _ in rows.values() for v in g.values())  # the data has holes
    got, want = _scores(flow, job_id, tmp), _replay(guest, host, rows)
    assert got.keys() == want.keys() and len(got) == 351
    assert max(abs(got[k] - want[k]) for k in got) < 1e-9
    metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "evaluation_0")
    assert metrics["evaluation"]["auc"] > 0.9


def test_train_complete_secure_then_eini_predict(uploaded, fate: Path):
    flow, tmp = uploaded
    job_id = _submit(flow, *_task(fate, "train_complete_secure"))
    guest, host = _models(flow, job_id)
    owners = [{n["party"] for n in t["nodes"]} - {None} for t in guest["trees"]]
    assert owners[0] == {"guest"} and all("9998" in o for o in owners[1:])  # the first tree is the guest's
    rows = _joined(fate, "breast")
    train = _scores(flow, job_id, tmp)
    want = _replay(guest, host, rows)
    assert train.keys() == want.keys() and max(abs(train[k] - want[k]) for k in train) < 1e-9

    deployed = flow.ok("model", "deploy", "-j", job_id)
    conf_path, _ = _task(fate, "train_binary_EINI_predict")
    conf = json.loads(conf_path.read_text())
    conf["job_parameters"]["common"].update(model_id=deployed["model_id"], model_version=deployed["model_version"])
    conf["role"]["host"] = [9998]
    assert conf["component_parameters"]["common"][CPN]["EINI_inference"] is True
    local = tmp / "eini_conf.json"
    local.write_text(json.dumps(conf))
    predicted = _scores(flow, _submit(flow, local, _task(fate, "train_binary_EINI_predict")[1]), tmp)
    assert predicted.keys() == train.keys()
    assert max(abs(predicted[k] - train[k]) for k in train) < 1e-12
    assert np.isfinite(list(predicted.values())).all()
