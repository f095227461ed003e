"""FATE's FederatedSample and SampleWeight examples, read in place and submitted with
``flow job submit --wait``: feature_scale ``normal`` (a stratified upsample before scaling,
binning, selection, one-hot, HeteroLR and Evaluation) and hetero_logistic_regression
``hetero_lr_sample_weights`` (class weights on the guest, need_run false on the host).

``normal`` runs from a copy of its conf in tmp_path with HeteroLR's ``max_iter`` 10 -> 2 and
its Paillier key 1024 -> 512 bits (``allow_short_key``, which fedweave asks for below 1024;
nothing else changed) to keep the test short; ``hetero_lr_sample_weights`` runs as shipped.
Results are checked against the uploaded CSV files: per-label sample sizes, the same original
row under each new id on both parties, the weight of each row, and Evaluation's AUC against
the AUC of HeteroLR's own predictions."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import fate_examples


@pytest.fixture(scope="module")
def fate() -> Path:
    return fate_examples()


def _rows(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return {r[0]: r[1:] for r in rows}


@pytest.fixture
def uploaded(flow, fate: Path, tmp_path: Path):
    for side in ("guest", "host"):
        conf = {"file": str(fate / "data" / f"breast_hetero_{side}.csv"), "head": 1, "partition": 4,
                "table_name": f"breast_hetero_{side}", "namespace": "experiment"}
        path = tmp_path / f"upload_{side}.json"
        path.write_text(json.dumps(conf))
        flow.ok("data", "upload", "-c", path)
    return flow


def _submit(flow, conf: Path, dsl: Path) -> str:
    job = flow.ok("job", "submit", "-c", conf, "-d", dsl, "--wait")
    assert job["status"] == "success", job
    return job["job_id"]


def _output(flow, job_id: str, role: str, pid: str, cpn: str, where: Path) -> list[dict[str, str]]:
    (out,) = flow.ok("tracking", "output-data", "-j", job_id, "-r", role, "-p", pid, "-cpn", cpn, "-o", where)
    with open(out["file"], newline="") as f:
        return list(csv.DictReader(f))


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def _check_evaluation(flow, job_id: str, lr: str, tmp_path: Path) -> list[dict[str, str]]:
    scored = _output(flow, job_id, "guest", "9999", lr, tmp_path / "lr")
    y = np.array([float(r["label"]) for r in scored])
    s = np.array([float(r["predict_score"]) for r in scored])
    metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "evaluation_0")
    assert metrics["evaluation"]["auc"] == pytest.approx(_auc(y, s), abs=1e-9)
    return scored


def test_feature_scale_normal_upsamples_each_label(uploaded, fate: Path, tmp_path: Path):
    flow, folder = uploaded, fate / "dsl" / "feature_scale"
    conf = json.loads((folder / "test_feature_scale_normal_conf.json").read_text())
    lr = conf["component_parameters"]["common"]["hetero_lr_0"]
    lr["max_iter"] = 2
    lr["encrypt_param"] = {"key_length": 512, "allow_short_key": True}
    (tmp_path / "conf.json").write_text(json.dumps(conf))
    job_id = _submit(flow, tmp_path / "conf.json", folder / "test_feature_scale_normal_dsl.json")

    guest_src = _rows(fate / "data" / "breast_hetero_guest.csv")
    host_src = _rows(fate / "data" / "breast_hetero_host.csv")
    common = set(guest_src) & set(host_src)
    per_label = Counter(float(guest_src[k][0]) for k in common)
    sample = conf["component_parameters"]["common"]["federated_sample_0"]
    fractions = {float(label): f for label, f in sample["fractions"]}
    expected = {label: max(1, int(fractions[label] * n)) for label, n in per_label.items()}

    guest = _output(flow, job_id, "guest", "9999", "federated_sample_0", tmp_path / "g")
    host = _output(flow, job_id, "host", "10000", "federated_sample_0", tmp_path / "h")
    assert Counter(float(r["y"]) for r in guest) == expected
    m = sum(expected.values())
    assert sorted(r["id"] for r in guest) == sorted(r["id"] for r in host) == sorted(str(i) for i in range(m))
    # each new id holds one original row, the same one on both parties (found by its values)
    by_guest_values = {tuple(round(float(v), 6) for v in row[1:]): k for k, row in guest_src.items() if k in common}
    by_host_values = {tuple(round(float(v), 6) for v in row): k for k, row in host_src.items() if k in common}
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
    metrics = flow.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "federated_sample_0")
    assert metrics["stratified"]["sample_count"] == {str(int(k)): v for k, v in expected.items()}

    scored = _check_evaluation(flow, job_id, "hetero_lr_0", tmp_path)
    assert len(scored) == m


def test_hetero_lr_sample_weights_as_shipped(uploaded, fate: Path, tmp_path: Path):
    flow, folder = uploaded, fate / "dsl" / "hetero_logistic_regression"
    conf_path = folder / "hetero_lr_sample_weights_conf.json"
    job_id = _submit(flow, conf_path, folder / "hetero_lr_sample_weights_dsl.json")
    common = json.loads(conf_path.read_text())["component_parameters"]["common"]
    class_weight = common["sample_weight_0"]["class_weight"]

    guest_src = _rows(fate / "data" / "breast_hetero_guest.csv")
    weighted = _output(flow, job_id, "guest", "9999", "sample_weight_0", tmp_path / "w")
    assert len(weighted) == len(guest_src)
    for r in weighted:  # the weight of each row is its class's
        label = guest_src[r["id"]][0]
        assert float(r["y"]) == float(label)
        assert float(r["weight"]) == float(class_weight[str(int(float(label)))])
    # need_run false on the host: SampleWeight did not run there, its data went on to HeteroLR
    res = flow("tracking", "output-data", "-j", job_id, "-r", "host", "-p", "10000", "-cpn", "sample_weight_0")
    assert res.code != 0
    model = flow.ok("tracking", "output-model", "-j", job_id, "-r", "host", "-p", "10000", "-cpn", "hetero_lr_0")
    assert json.dumps(model)  # the host trained its part
    _check_evaluation(flow, job_id, "hetero_lr_0", tmp_path)
