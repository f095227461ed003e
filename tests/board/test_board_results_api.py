"""The job page's result routes against the CLI and a centralised computation on the same
job: PR, lift, gain and confusion counts against scikit-learn on HeteroLR's scores, column
statistics against numpy on `flow tracking output-data`'s CSV, the CSV download byte for
byte, filtered log files against `flow job logs`; another party's results are refused."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from .conftest import BoardHome
from .test_board_api import login

pytestmark = pytest.mark.e2e
GUEST = "tasks/guest/9999"


def output_csv(board: BoardHome, job: str, component: str, folder: Path, role: str = "guest",
               party: str = "9999") -> Path:
    items = board.flow.ok("tracking", "output-data", "-j", job, "-r", role, "-p", party, "-cpn", component,
                          "-o", folder)
    return Path(sorted(items, key=lambda i: i["index"])[0]["file"])


def scores(board: BoardHome, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of HeteroLR's output on the guest, from the CLI's CSV."""
    with output_csv(board, board.lr_job, "hetero_lr_0", tmp_path).open() as fh:
        rows = list(csv.DictReader(fh))
    return np.array([float(r["label"]) for r in rows]), np.array([float(r["predict_score"]) for r in rows])


def test_curves_equal_scikit_learn_on_the_scores(board_home: BoardHome, tmp_path: Path):
    client, _ = login(board_home)
    base = f"/board/api/jobs/{board_home.lr_job}/{GUEST}/evaluation_0/curves"
    got = client.get(base).json()["data"]["evaluation"]
    y, score = scores(board_home, tmp_path)
    metrics = board_home.flow.ok("tracking", "metrics", "-j", board_home.lr_job, "-r", "guest", "-p", "9999",
                                 "-cpn", "evaluation_0")["evaluation"]
    curve = metrics["confusion_curve"]
    assert got["rows"] == len(y) and got["positives"] == int(y.sum())
    for i, t in enumerate(curve["threshold"][1:], start=1):  # each logged threshold, as scikit-learn counts
        tn, fp, fn, tp = skm.confusion_matrix(y, (score >= t).astype(int), labels=[0, 1]).ravel()
        assert [curve[k][i] for k in ("tn", "fp", "fn", "tp")] == [tn, fp, fn, tp]
    precision, recall, thresholds = skm.precision_recall_curve(y, score)
    at = {float(t): (p, r) for p, r, t in zip(precision, recall, thresholds)}
    for p, r, t in zip(got["pr"]["precision"], got["pr"]["recall"], got["pr"]["threshold"]):
        assert (p, r) == pytest.approx(at[t], abs=1e-12)
    assert len(got["pr"]["threshold"]) == len(curve["threshold"]) - 1 > 10
    base_rate = y.mean()
    for f, lift, (p, _r) in zip(got["lift"]["fraction"], got["lift"]["lift"], zip(got["pr"]["precision"],
                                                                                   got["pr"]["recall"])):
        assert lift == pytest.approx(p / base_rate, abs=1e-12) and 0 < f <= 1
    assert got["gain"]["gain"][1:] == pytest.approx(got["pr"]["recall"], abs=1e-12)
    assert got["gain"]["fraction"][-1] == pytest.approx(1.0) and got["gain"]["gain"][-1] == pytest.approx(1.0)
    # Evaluation's own confusion matrix (its thresholded metrics' 0.5), and one asked for at 0.3
    tn, fp, fn, tp = skm.confusion_matrix(y, (score >= 0.5).astype(int)).ravel()
    assert got["confusion"] == metrics["confusion_matrix"] == {"threshold": 0.5, "tp": tp, "fp": fp, "fn": fn,
                                                               "tn": tn}
    assert metrics["precision"] == pytest.approx(tp / (tp + fp), abs=1e-12)
    low = client.get(base, params={"threshold": 0.3}).json()["data"]["evaluation"]["confusion"]
    used = low["threshold"]
    assert used >= 0.3 and used == min(t for t in curve["threshold"][1:] if t >= 0.3)
    tn, fp, fn, tp = skm.confusion_matrix(y, (score >= used).astype(int)).ravel()
    assert (low["tn"], low["fp"], low["fn"], low["tp"]) == (tn, fp, fn, tp)
    assert client.get(base, params={"threshold": 2}).status_code == 422
    # a component without a confusion curve has no curves
    assert client.get(base.replace("evaluation_0", "hetero_lr_0")).json()["data"] == {}


def _floats(values: list[str]) -> np.ndarray:
    return np.array([float(v) for v in values if v != ""])


def test_column_statistics_equal_numpy_on_the_output(board_home: BoardHome, tmp_path: Path):
    client, _ = login(board_home)
    for component in ("feature_scale_0", "hetero_lr_0"):
        (table,) = client.get(f"/board/api/jobs/{board_home.lr_job}/{GUEST}/{component}/data/statistics"
                              ).json()["data"]
        with output_csv(board_home, board_home.lr_job, component, tmp_path / component).open() as fh:
            reader = csv.reader(fh)
            header = next(reader)
            cols = list(zip(*reader))
        assert [c["column"] for c in table["columns"]] == header[1:]
        numeric = 0
        for stat, values in zip(table["columns"], cols[1:]):
            assert stat["missing"] == sum(v == "" for v in values)
            try:
                x = _floats(list(values))
            except ValueError:  # a text column: counted, no moments
                assert stat["mean"] is None and stat["count"] == len(values) - stat["missing"]
                continue
            numeric += 1
            assert stat["count"] == len(x) == table["count"] - stat["missing"]
            assert [stat["mean"], stat["std"], stat["min"], stat["max"]] == pytest.approx(
                [x.mean(), x.std(), x.min(), x.max()], rel=1e-9, abs=1e-12)
        assert numeric >= 3
    scaled = {c["column"]: c for c in table["columns"]}
    assert scaled["predict_score"]["max"] <= 1


def test_csv_download_is_the_clis_file(board_home: BoardHome, tmp_path: Path):
    client, _ = login(board_home)
    res = client.get(f"/board/api/jobs/{board_home.lr_job}/{GUEST}/hetero_lr_0/data/0.csv")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    assert 'filename="hetero_lr_0_0.csv"' in res.headers["content-disposition"]
    assert res.content == output_csv(board_home, board_home.lr_job, "hetero_lr_0", tmp_path).read_bytes()
    missing = client.get(f"/board/api/jobs/{board_home.lr_job}/{GUEST}/hetero_lr_0/data/7.csv")
    assert missing.status_code >= 400 and "no output table 7" in missing.json()["retmsg"]


def test_log_file_filters_like_the_cli_lines(board_home: BoardHome):
    client, _ = login(board_home)
    job = board_home.lr_job
    cli = board_home.flow("job", "logs", "-j", job, "-r", "guest", "-p", "9999", "-cpn", "hetero_lr_0")
    lines = cli.out["raw"].splitlines()
    path = f"/board/api/jobs/{job}/logs.txt"
    params = {"role": "guest", "party_id": "9999", "component": "hetero_lr_0"}
    whole = client.get(path, params=params)
    assert whole.headers["content-disposition"].endswith(f'filename="{job}_guest_9999_hetero_lr_0.log"')
    assert whole.text.splitlines() == lines and len(lines) > 3
    found = client.get(path, params={**params, "q": "ITERATION"}).text.splitlines()
    assert found == [line for line in lines if "iteration" in line.lower()] and found
    for level, shown in (("INFO", lines), ("ERROR", [line for line in lines if " ERROR " in line])):
        assert client.get(path, params={**params, "level": level}).text.splitlines() == shown
    assert client.get(path, params={**params, "level": "LOUD"}).status_code == 422


def test_another_partys_results_and_a_viewer(board_home: BoardHome):
    client, _ = login(board_home)
    j = board_home.lr_job
    for path in ("tasks/host/4242/evaluation_0/curves", "tasks/host/4242/hetero_lr_0/data/statistics",
                 "tasks/host/4242/hetero_lr_0/data/0.csv", "logs.txt?role=host&party_id=4242"):
        res = client.get(f"/board/api/jobs/{j}/{path}")
        assert res.status_code == 403 and "kept by party 4242" in res.json()["retmsg"], path
    token = board_home.flow.ok("user", "add", "vera", "--role", "viewer")["token"]
    viewer, _ = login(board_home, token)
    try:
        assert viewer.get(f"/board/api/jobs/{j}/{GUEST}/evaluation_0/curves").status_code == 200
        for what in ("data/statistics", "data/0.csv"):
            res = viewer.get(f"/board/api/jobs/{j}/{GUEST}/hetero_lr_0/{what}")
            assert res.status_code == 403 and "needs operator" in res.json()["retmsg"]
    finally:
        board_home.flow.ok("user", "remove", "vera")
    with client.__class__(base_url=board_home.base) as anon:
        for path in (f"{GUEST}/evaluation_0/curves", f"{GUEST}/hetero_lr_0/data/statistics",
                     f"{GUEST}/hetero_lr_0/data/0.csv", "logs.txt?role=guest&party_id=9999"):
            assert anon.get(f"/board/api/jobs/{j}/{path}").status_code == 401, path
