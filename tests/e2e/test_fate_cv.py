"""FATE's cross-validation tasks run unchanged (read in place from ../shared/fate-examples):
hetero_lr_cv and the SecureBoost cv_binary task, with ``flow job submit --wait``. Checked:
k folds of metrics and their mean on the guest, folds cut in the ids' natural order
(``shuffle: false``) with KFold's sizes, the per-fold AUC equal to the AUC of that fold's
held-out predictions in the output fold history (computed here), and no model kept."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import fate_examples

pytestmark = pytest.mark.e2e

GUEST = ("guest", "9999")


@pytest.fixture(scope="module")
def fate() -> Path:
    return fate_examples()


def _suite(fate: Path, suite: str) -> dict:
    return json.loads(next((fate / "dsl" / suite).glob("*_testsuite.json")).read_text())


def _upload(flow, fate: Path, suite: str, tables: set[str], tmp_path: Path) -> None:
    for entry in _suite(fate, suite)["data"]:
        if entry["table_name"] in tables:
            conf = {k: v for k, v in entry.items() if k != "role"}
            conf["file"] = str(fate / "data" / Path(entry["file"]).name)
            path = tmp_path / f"upload_{entry['table_name']}.json"
            path.write_text(json.dumps(conf))
            flow.ok("data", "upload", "-c", path)
            tables = tables - {entry["table_name"]}
    assert not tables, f"not in the {suite} suite: {tables}"


def _submit(flow, fate: Path, suite: str, task: str) -> str:
    spec = _suite(fate, suite)["tasks"][task]
    folder = fate / "dsl" / suite
    job = flow.ok("job", "submit", "-c", folder / spec["conf"], "-d", folder / spec["dsl"], "--wait", timeout=900)
    assert job["status"] == "success", job
    return job["job_id"]


def _ids(fate: Path) -> list[str]:
    """The ids both breast_hetero tables hold (what Intersection leaves), in natural order."""
    def read(name: str) -> set[str]:
        with open(fate / "data" / f"{name}.csv", newline="") as f:
            return {row[0] for row in list(csv.reader(f))[1:]}
    return sorted(read("breast_hetero_guest") & read("breast_hetero_host"), key=int)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def _check_cv(flow, fate: Path, job_id: str, cpn: str, k: int, host: str, tmp_path: Path) -> None:
    task, hosts = ["-j", job_id, "-cpn", cpn], ("host", host)
    metrics = flow.ok("tracking", "metrics", "-r", GUEST[0], "-p", GUEST[1], *task)
    for kind in ("train", "validate"):
        per_fold = [metrics[f"{kind}_fold_{i}"] for i in range(k)]
        assert f"{kind}_fold_{k}" not in metrics
        for name in ("auc", "ks"):  # FATE's binary defaults
            assert metrics[f"{kind}_mean"][name] == pytest.approx(np.mean([m[name] for m in per_fold]), abs=1e-12)
            assert all(0.5 < m[name] <= 1.0 for m in per_fold)
    ids = _ids(fate)
    n = len(ids)
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    assert metrics["cv"] == {"n_splits": k, "fold_sizes": sizes}
    # shuffle false: fold i holds the next sizes[i] ids in their natural order, on both parties
    starts = np.r_[0, np.cumsum(sizes)]
    fold_of = {key: i for i in range(k) for key in ids[starts[i]:starts[i + 1]]}
    expected = {f"{key}#fold{i}#{'validate' if fold_of[key] == i else 'train'}" for key in ids for i in range(k)}
    rows = {}
    for role, pid in (GUEST, hosts):
        (out,) = flow.ok("tracking", "output-data", "-r", role, "-p", pid, *task, "-o", tmp_path / role)
        with open(out["file"], newline="") as fh:
            rows[role] = {r["id"]: r for r in csv.DictReader(fh)}
        assert set(rows[role]) == expected, role
        res = flow("tracking", "output-model", "-r", role, "-p", pid, *task)
        assert res.code != 0 and "has no model" in res.err, res  # FATE's CV keeps no model
    assert all(float(r["fold_num"]) == int(key.split("#fold")[1].split("#")[0]) for key, r in rows["host"].items())
    host_metrics = flow.ok("tracking", "metrics", "-r", "host", "-p", host, *task) or {}
    assert not any(ns.startswith(("validate_", "train_")) for ns in host_metrics)  # hosts hold no labels
    for i in range(k):  # each fold's AUC is that of its held-out predictions in the fold history
        held = [r for key, r in rows["guest"].items() if key.endswith(f"#fold{i}#validate")]
        y = np.array([float(r["label"]) for r in held])
        s = np.array([float(r["predict_score"]) for r in held])
        assert metrics[f"validate_fold_{i}"]["auc"] == pytest.approx(_auc(y, s), abs=1e-9)


def test_hetero_lr_cv_as_shipped(flow, fate: Path, tmp_path: Path):
    _upload(flow, fate, "hetero_logistic_regression", {"breast_hetero_guest", "breast_hetero_host"}, tmp_path)
    job_id = _submit(flow, fate, "hetero_logistic_regression", "hetero_lr_cv")
    _check_cv(flow, fate, job_id, "hetero_lr_0", 3, "10000", tmp_path)


def test_secureboost_cv_binary_as_shipped(flow, fate: Path, tmp_path: Path):
    _upload(flow, fate, "hetero_secureboost", {"breast_hetero_guest", "breast_hetero_host"}, tmp_path)
    job_id = _submit(flow, fate, "hetero_secureboost", "cv_binary")
    _check_cv(flow, fate, job_id, "hetero_secure_boost_0", 5, "9998", tmp_path)
