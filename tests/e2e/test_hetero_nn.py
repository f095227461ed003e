"""HeteroNN through the CLI: examples/hetero_nn (breast split vertically, guest and host)
against the same network trained centrally on the joined features; deployed, its predict
job scores every row as training did."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import auc
from tests.unit.test_hetero_nn import _central

from .conftest import EXAMPLES, FlowCLI, joined, load_example, write_job

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.e2e


def test_hetero_nn_example_matches_central_training_and_predicts(flow: FlowCLI, tmp_path: Path):
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    conf, dsl = load_example("hetero_nn")
    nn = conf["component_parameters"]["common"]["hetero_nn_0"]
    nn["encrypt_param"] = {"key_length": 512, "allow_short_key": True}  # 1024 as shipped; short keys for speed
    job = flow.ok("job", "submit", *_files(write_job(tmp_path, conf, dsl)), "--wait")
    assert job["status"] == "success", job
    job_id = job["job_id"]
    score = _scores(flow, job_id, tmp_path / "out")
    ids, x, y, g_head, _ = joined("breast_hetero")
    fed = np.array([score[i] for i in ids])
    xg, xh = x[:, :len(g_head)], x[:, len(g_head):]
    central = _central(xg, y, xh, 1, "BCELoss", epochs=nn["epochs"], seed=nn["torch_seed"], hidden=4)[:, 0]
    assert auc(y, central) > 0.95
    assert abs(auc(y, fed) - auc(y, central)) < 0.02
    metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "evaluation_0")
    assert "auc" in str(metrics)
    host = flow.ok("tracking", "output-model", "-j", job_id, "-r", "host", "-p", "10000", "-cpn", "hetero_nn_0")
    assert "top" not in host["model"]  # the top model and the labels stay with the guest

    # deployed: the predict DSL and conf `flow model deploy` derives give every row its training score
    deployed = flow.ok("model", "deploy", "-j", job_id)
    assert deployed["predict_dsl"]["components"]["hetero_nn_0"]["input"]["model"] == ["pipeline.hetero_nn_0.model"]
    c, d = write_job(tmp_path, deployed["predict_conf"], deployed["predict_dsl"], "predict")
    predicted = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert predicted["status"] == "success", predicted
    again = _scores(flow, predicted["job_id"], tmp_path / "predict_out")
    assert again.keys() == score.keys() and len(again) == 569
    assert max(abs(again[k] - score[k]) for k in score) < 1e-6


def _files(paths: tuple[Path, Path]) -> list[str | Path]:
    return ["-c", paths[0], "-d", paths[1]]


def _scores(flow: FlowCLI, job_id: str, out: Path) -> dict[str, float]:
    """The guest's predict_score per id of a job's hetero_nn_0 output."""
    items = flow.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "hetero_nn_0",
                    "-o", out)
    with open(items[0]["file"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    id_col = next(k for k in rows[0] if k not in ("label", "predict_result", "predict_score", "predict_detail"))
    return {r[id_col]: float(r["predict_score"]) for r in rows}
