"""FATE's FederatedSample and SampleWeight examples, checked on the jobs of the session's
suite runs (``suite_run``, HeteroLR's ``max_iter`` at most 2 and 512-bit keys):
feature_scale ``normal`` (a stratified upsample before scaling, binning, selection, one-hot,
HeteroLR and Evaluation) and hetero_logistic_regression ``hetero_lr_sample_weights`` (class
weights on the guest, need_run false on the host). Results are checked against the uploaded
CSV files: per-label sample sizes, the same original row under each new id on both parties,
the weight of each row, and Evaluation's AUC against the AUC of HeteroLR's own predictions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import GUEST, SuiteRun, auc, table, task_params

pytestmark = pytest.mark.e2e


def _rows(name: str) -> dict[str, list[float]]:
    return table(name)[1]


def _check_evaluation(run: SuiteRun, job_id: str, lr: str, tmp_path: Path) -> list[dict[str, str]]:
    scored = run.output(job_id, *GUEST, lr, tmp_path / "lr")
    y = np.array([float(r["label"]) for r in scored])
    s = np.array([float(r["predict_score"]) for r in scored])
    metrics = run.metrics(job_id, "evaluation_0")
    assert metrics["evaluation"]["auc"] == pytest.approx(auc(y, s), abs=1e-9)
    return scored


def test_feature_scale_normal_upsamples_each_label(suite_run, tmp_path: Path):
    run = suite_run("feature_scale")
    job_id = run.job("normal")
    guest_src, host_src = _rows("breast_hetero_guest"), _rows("breast_hetero_host")
    common = set(guest_src) & set(host_src)
    per_label = Counter(float(guest_src[k][0]) for k in common)
    sample = task_params("feature_scale", "normal")["federated_sample_0"]
    fractions = {float(label): f for label, f in sample["fractions"]}
    expected = {label: max(1, int(fractions[label] * n)) for label, n in per_label.items()}

    guest = run.output(job_id, *GUEST, "federated_sample_0", tmp_path / "g")
    host = run.output(job_id, "host", "10000", "federated_sample_0", tmp_path / "h")
    assert Counter(float(r["y"]) for r in guest) == expected
    m = sum(expected.values())
    assert sorted(r["id"] for r in guest) == sorted(r["id"] for r in host) == sorted(str(i) for i in range(m))
    # each new id holds one original row, the same one on both parties (found by its values)
    by_guest_values = {tuple(round(v, 6) for v in row[1:]): k for k, row in guest_src.items() if k in common}
    by_host_values = {tuple(round(v, 6) for v in row): k for k, row in host_src.items() if k in common}
    host_rows = {r["id"]: r for r in host}
    g_cols = [f"x{i}" for i in range(10)]
    h_cols = [f"x{i}" for i in range(20)]
    originals = Counter()
    for r in guest:
        g_key = by_guest_values.get(tuple(round(float(r[c]), 6) for c in g_cols))
        h_key = by_host_values.get(tuple(round(float(host_rows[r["id"]][c]), 6) for c in h_cols))
        assert g_key is not None and g_key == h_key
        originals[g_key] += 1
    assert max(originals.values()) > 1  # upsampled: rows repeat
    metrics = run.metrics(job_id, "federated_sample_0")
    assert metrics["stratified"]["sample_count"] == {str(int(k)): v for k, v in expected.items()}

    scored = _check_evaluation(run, job_id, "hetero_lr_0", tmp_path)
    assert len(scored) == m


def test_hetero_lr_sample_weights(suite_run, tmp_path: Path):
    run = suite_run("hetero_logistic_regression")
    job_id = run.job("hetero_lr_sample_weights")
    class_weight = task_params("hetero_logistic_regression", "hetero_lr_sample_weights")["sample_weight_0"][
        "class_weight"]

    guest_src = _rows("breast_hetero_guest")
    weighted = run.output(job_id, *GUEST, "sample_weight_0", tmp_path / "w")
    assert len(weighted) == len(guest_src)
    for r in weighted:  # the weight of each row is its class's
        label = guest_src[r["id"]][0]
        assert float(r["y"]) == float(label)
        assert float(r["weight"]) == float(class_weight[str(int(float(label)))])
    # need_run false on the host: SampleWeight did not run there, its data went on to HeteroLR
    res = run.flow("tracking", "output-data", "-j", job_id, "-r", "host", "-p", "10000", "-cpn", "sample_weight_0")
    assert res.code != 0
    model = run.flow.ok("tracking", "output-model", "-j", job_id, "-r", "host", "-p", "10000", "-cpn", "hetero_lr_0")
    assert json.dumps(model)  # the host trained its part
    _check_evaluation(run, job_id, "hetero_lr_0", tmp_path)
