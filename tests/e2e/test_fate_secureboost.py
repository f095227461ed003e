"""FATE's hetero_secureboost suite (../shared/fate-examples/dsl/hetero_secureboost), run once
per session (``suite_run``, confs shrunk to 2 trees and 512-bit keys): the jobs of
train_binary_with_missing_value (ionosphere, empty cells), train_complete_secure, and
train_binary_EINI_predict (the EINI predict conf on train_binary's model, the training
job's parties filled in as ``fate_test`` fills them).

Each party's stored model is replayed centrally on the joined CSV rows (every node's owner,
split, threshold and learned missing direction, NaN for an empty cell) and must give the
scores the job output, so the cross-party walk, the missing routing and EINI are checked
together.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import GUEST, SuiteRun, table, task_params

pytestmark = pytest.mark.e2e

SUITE = "hetero_secureboost"
CPN = "hetero_secure_boost_0"


@pytest.fixture(scope="module")
def run(suite_run) -> SuiteRun:
    return suite_run(SUITE)


def _scores(run: SuiteRun, job_id: str, tmp: Path) -> dict[str, float]:
    rows = run.output(job_id, *GUEST, CPN, tmp / job_id)
    key = next(iter(rows[0]))  # the table's id column (sid, id)
    return {r[key]: float(r["predict_score"]) for r in rows}


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


def _models(run: SuiteRun, job_id: str) -> tuple[dict, dict]:
    models = run.flow.models(job_id, CPN, parties=(GUEST, ("host", "9998")))
    return models["guest"], models["host"]


def _joined(data: str) -> dict[str, tuple[dict, dict]]:
    """id -> (guest's column -> value, host's column -> value) over the shared ids."""
    (g_head, g), (h_head, h) = table(f"{data}_hetero_guest"), table(f"{data}_hetero_host")
    return {k: (dict(zip(g_head, g[k])), dict(zip(h_head, h[k]))) for k in g.keys() & h.keys()}


def _trees(run: SuiteRun, job_id: str, guest: dict) -> None:
    """One tree per boosting round the job ran (binary): as many as its parameters say."""
    assert len(guest["trees"]) == run.params(job_id, CPN)["num_trees"]


def test_train_binary_with_missing_value_routes_empty_cells(run: SuiteRun, tmp_path: Path):
    job_id = run.job("train_binary_with_missing_value")
    guest, host = _models(run, job_id)
    assert guest["use_missing"] and host["use_missing"]
    _trees(run, job_id, guest)
    rows = _joined("ionosphere_scale")
    assert any(math.isnan(v) for g, _ in rows.values() for v in g.values())  # the data has holes
    got, want = _scores(run, job_id, tmp_path), _replay(guest, host, rows)
    assert got.keys() == want.keys() and len(got) == 351
    assert max(abs(got[k] - want[k]) for k in got) < 1e-9
    metrics = run.metrics(job_id, "evaluation_0")
    assert metrics["evaluation"]["auc"] > 0.9


def test_train_complete_secure_first_tree_is_the_guests(run: SuiteRun, tmp_path: Path):
    job_id = run.job("train_complete_secure")
    guest, host = _models(run, job_id)
    _trees(run, job_id, guest)
    owners = [{n["party"] for n in t["nodes"]} - {None} for t in guest["trees"]]
    assert len(owners) > 1 and owners[0] == {"guest"} and all("9998" in o for o in owners[1:])
    want = _replay(guest, host, _joined("breast"))
    train = _scores(run, job_id, tmp_path)
    assert train.keys() == want.keys() and max(abs(train[k] - want[k]) for k in train) < 1e-9


def test_eini_predict_gives_the_training_scores(run: SuiteRun, tmp_path: Path):
    train_job, predict_job = run.job("train_binary"), run.job("train_binary_EINI_predict")
    assert task_params(SUITE, "train_binary_EINI_predict")[CPN]["EINI_inference"] is True
    guest, host = _models(run, train_job)
    train = _scores(run, train_job, tmp_path)
    want = _replay(guest, host, _joined("breast"))
    assert train.keys() == want.keys() and max(abs(train[k] - want[k]) for k in train) < 1e-9
    predicted = _scores(run, predict_job, tmp_path)
    assert predicted.keys() == train.keys()
    assert max(abs(predicted[k] - train[k]) for k in train) < 1e-12
    assert np.isfinite(list(predicted.values())).all()
