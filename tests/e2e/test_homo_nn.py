"""HomoNN through the CLI: examples/homo_nn (breast over three parties) against the same
network trained on the pooled rows, and FATE's homo_nn suite run as shipped by
``flow suite run`` (binary, multiclass, regression, aggregation every 5 epochs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import auc, fate_examples, table

from .conftest import EXAMPLES, FlowCLI

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.e2e

SHARES = (("guest", "9999", "guest"), ("host", "10000", "host1"), ("host", "10001", "host2"))


def _task(job_id: str, role: str, pid: str, cpn: str) -> list[str]:
    return ["-j", job_id, "-r", role, "-p", pid, "-cpn", cpn]


def _scores(flow: FlowCLI, job_id: str, role: str, pid: str, cpn: str, where: Path) -> list[dict[str, str]]:
    items = flow.ok("tracking", "output-data", *_task(job_id, role, pid, cpn), "-o", where / f"{role}{pid}")
    with open(items[0]["file"], newline="") as fh:
        return list(csv.DictReader(fh))


def _pooled_auc(x: np.ndarray, y: np.ndarray, net: torch.nn.Module, lr: float, epochs: int, batch: int,
                seed: int) -> float:
    """The network trained centrally on the pooled rows with Adam and BCE; its AUC there."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).reshape(-1, 1)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy(net(xt[order[i:i + batch]]), yt[order[i:i + batch]]).backward()
            opt.step()
    with torch.no_grad():
        return auc(y, net(xt).numpy()[:, 0])


def test_homo_nn_example_matches_pooled_training(flow: FlowCLI, tmp_path: Path):
    for _, _, share in SHARES:
        flow.upload(EXAMPLES / "data" / f"breast_homo_{share}.csv", f"breast_homo_{share}", label="y")
    job = flow.ok("job", "submit", "-c", EXAMPLES / "homo_nn" / "conf.json", "-d", EXAMPLES / "homo_nn" / "dsl.json",
                  "--wait")
    assert job["status"] == "success", job
    job_id = job["job_id"]
    models = flow.models(job_id, "homo_nn_0", parties=tuple((r, p) for r, p, _ in SHARES))
    weights = [np.asarray(m["weights"], dtype=float) for m in models.values()]
    for w in weights[1:]:  # every party ends with the one aggregated network
        np.testing.assert_allclose(w, weights[0], atol=1e-6)
    metrics = flow.ok("tracking", "metrics", *_task(job_id, "guest", "9999", "homo_nn_0"))["train"]
    assert metrics["device"].split(" ")[0] in ("cpu", "cuda:0") and metrics["epochs"] == 20
    assert len(metrics["loss"]) == 10  # every 2nd epoch

    rows = [r for role, pid, _ in SHARES for r in _scores(flow, job_id, role, pid, "homo_nn_0", tmp_path)]
    y = np.array([float(r["label"]) for r in rows])
    fed = auc(y, np.array([float(r["predict_score"]) for r in rows]))
    evaluation = flow.ok("tracking", "metrics", *_task(job_id, "guest", "9999", "evaluation_0"))["evaluation"]
    assert 0.9 < evaluation["auc"] <= 1.0

    shares = [np.loadtxt(EXAMPLES / "data" / f"breast_homo_{s}.csv", delimiter=",", skiprows=1) for *_, s in SHARES]
    pooled = np.vstack(shares)
    torch.manual_seed(100)
    net = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1), torch.nn.Sigmoid())
    central = _pooled_auc(pooled[:, 2:], pooled[:, 1], net, 0.01, 20, 32, 100)
    assert abs(fed - central) < 0.01, (fed, central)

    # deployed, the model scores the same rows again in a predict job: the same scores
    deployed = flow.ok("model", "deploy", "-j", job_id, "-o", tmp_path / "deploy")
    conf = tmp_path / "predict_conf.json"
    conf.write_text(json.dumps(deployed["predict_conf"]))
    job = flow.ok("job", "submit", "-c", conf, "-d", deployed["predict_dsl_path"], "--wait")
    assert job["status"] == "success", job
    for role, pid, _ in SHARES:
        train = {r["id"]: float(r["predict_score"])
                 for r in _scores(flow, job_id, role, pid, "homo_nn_0", tmp_path / "t")}
        again = {r["id"]: float(r["predict_score"])
                 for r in _scores(flow, job["job_id"], role, pid, "homo_nn_0", tmp_path / "p")}
        assert again.keys() == train.keys() and max(abs(again[k] - train[k]) for k in train) < 1e-6


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> tuple[FlowCLI, dict[str, str]]:
    """FATE's homo_nn suite run once, unchanged, in a fresh home: (flow, task -> job id)."""
    home = tmp_path_factory.mktemp("homo_nn_suite")
    flow = FlowCLI(home)
    report = flow.ok("suite", "run", "-i", fate_examples() / "dsl" / "homo_nn", timeout=900)
    (result,) = report["suites"]
    assert result["validated"] == result["success"] == result["tasks"] == 4, result
    return flow, {t["task"]: t["job_id"] for t in result["results"]}


def test_fate_binary_tasks_match_pooled_training(suite, tmp_path: Path):
    """FATE's Linear(30, 1) + Sigmoid, Adam 0.01, 20 epochs of batches of 128: the AUC of
    both parties' predictions within 0.01 of the same network trained on the pooled rows."""
    flow, jobs = suite
    _, guest = table("breast_homo_guest")
    _, host = table("breast_homo_host")
    pooled = np.array(list(guest.values()) + list(host.values()))
    torch.manual_seed(100)
    net = torch.nn.Sequential(torch.nn.Linear(30, 1), torch.nn.Sigmoid())
    central = _pooled_auc(pooled[:, 1:], pooled[:, 0], net, 0.01, 20, 128, 100)
    for task in ("homo_nn_train_binary", "homo_nn_aggregate_n_epoch"):
        rows = [r for role, pid in (("guest", "9999"), ("host", "10000"))
                for r in _scores(flow, jobs[task], role, pid, "nn_0", tmp_path / task)]
        assert len(rows) == len(pooled)
        fed = auc(np.array([float(r["label"]) for r in rows]), np.array([float(r["predict_score"]) for r in rows]))
        assert abs(fed - central) < 0.01, (task, fed, central)
        evaluation = flow.ok("tracking", "metrics", *_task(jobs[task], "guest", "9999", "eval_0"))["evaluation"]
        assert 0.9 < evaluation["auc"] <= 1.0
    train = flow.ok("tracking", "metrics", *_task(jobs["homo_nn_aggregate_n_epoch"], "guest", "9999", "nn_0"))["train"]
    assert train["aggregations"] == 4 and train["epochs"] == 20 and train["device"] == "cpu"


def test_fate_multiclass_task_outputs_class_probabilities(suite, tmp_path: Path):
    flow, jobs = suite
    rows = _scores(flow, jobs["homo_nn_train_multi"], "host", "10000", "nn_0", tmp_path)
    details = sorted(k for k in rows[0] if k.startswith("predict_detail_"))
    assert details == [f"predict_detail_{c}" for c in range(4)]
    for r in rows[:50]:
        probs = np.array([float(r[k]) for k in details])
        assert abs(probs.sum() - 1) < 1e-5 and float(r["predict_result"]) == float(np.argmax(probs))
    evaluation = flow.ok("tracking", "metrics", *_task(jobs["homo_nn_train_multi"], "guest", "9999", "eval_0"))
    assert evaluation["evaluation"]["accuracy"] > 0.4  # 4 classes, 50 epochs of a linear softmax


def test_fate_regression_task_predicts_values(suite, tmp_path: Path):
    flow, jobs = suite
    rows = _scores(flow, jobs["homo_nn_train_regression"], "guest", "9999", "nn_0", tmp_path)
    assert all(r["predict_result"] == r["predict_score"] for r in rows)
    train = flow.ok("tracking", "metrics", *_task(jobs["homo_nn_train_regression"], "guest", "9999", "nn_0"))["train"]
    assert train["loss"][-1] < train["loss"][0] / 5  # MSE falls from the untrained network's
