"""FATE's hetero_feature_selection_pearson task run unchanged (``flow job submit --wait``):
HeteroPearson's correlations and VIFs against numpy on the joined CSVs, and the selection's
vif_filter then correlation_filter against FATE's rules applied to those central values."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import fate_examples

SUITE = "hetero_feature_selection"


@pytest.fixture(scope="module")
def fate() -> Path:
    return fate_examples()


def _suite(fate: Path) -> dict:
    return json.loads((fate / "dsl" / SUITE / f"{SUITE}_testsuite.json").read_text())


def _csv(fate: Path, table: str) -> tuple[list[str], dict[str, list[float]]]:
    entry = next(e for e in _suite(fate)["data"] if e["table_name"] == table)
    with open(fate / entry["file"].removeprefix("examples/"), newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}


@pytest.fixture
def uploaded(flow, fate: Path, tmp_path: Path):
    wanted = {"breast_hetero_guest", "breast_hetero_host"}  # the tables the pearson task reads
    for entry in _suite(fate)["data"]:
        if entry["table_name"] not in wanted:
            continue
        wanted.discard(entry["table_name"])
        conf = {k: v for k, v in entry.items() if k != "role"}
        conf["file"] = str(fate / entry["file"].removeprefix("examples/"))
        path = tmp_path / f"upload_{entry['table_name']}.json"
        path.write_text(json.dumps(conf))
        flow.ok("data", "upload", "-c", path)
    return flow


def test_pearson_task_matches_numpy_on_the_joined_data(uploaded, fate: Path):
    flow = uploaded
    spec = _suite(fate)["tasks"]["hetero_feature_selection_pearson"]
    folder = fate / "dsl" / SUITE
    job = flow.ok("job", "submit", "-c", folder / spec["conf"], "-d", folder / spec["dsl"], "--wait")
    assert job["status"] == "success", job
    g_head, guest = _csv(fate, "breast_hetero_guest")
    h_head, host = _csv(fate, "breast_hetero_host")
    ids = sorted(set(guest) & set(host))
    gx = np.array([guest[i][1:] for i in ids])  # id, y, x0..
    hx = np.array([host[i] for i in ids])
    g = gx.shape[1]
    corr = np.corrcoef(np.c_[gx, hx], rowvar=False)

    pearson = flow.models(job["job_id"], "hetero_pearson_0")
    gm, hm = pearson["guest"], pearson["host"]
    assert gm["names"] == g_head[2:] and hm["names"] == h_head[1:]
    np.testing.assert_allclose(np.array(gm["local_corr"], float), corr[:g, :g], atol=1e-9)
    np.testing.assert_allclose(np.array(hm["local_corr"], float), corr[g:, g:], atol=1e-9)
    (cross,) = gm["cross"]
    np.testing.assert_allclose(np.array(cross["corr"], float), corr[:g, g:], atol=1e-6)
    gvif, hvif = np.diag(np.linalg.inv(corr[:g, :g])), np.diag(np.linalg.inv(corr[g:, g:]))
    np.testing.assert_allclose(gm["local_vif"], gvif, rtol=1e-5)
    np.testing.assert_allclose(hm["local_vif"], hvif, rtol=1e-5)

    # the conf: vif_filter (threshold 5), then correlation_filter (iv, 0.5, guest's columns only)
    conf = json.loads((folder / spec["conf"]).read_text())["component_parameters"]["common"]
    sel = conf["hetero_feature_selection_0"]
    vif_max, corr_max = sel["vif_param"]["threshold"], sel["correlation_param"]["threshold"]
    iv = {n: r["iv"] for n, r in flow.models(job["job_id"], "hetero_binning_0")["guest"]["binning_result"].items()}
    left = [j for j in range(g) if gvif[j] <= vif_max]
    for j in sorted(left, key=lambda j: -iv[g_head[2 + j]]):
        if j in left:
            left = [k for k in left if k == j or abs(corr[j, k]) <= corr_max]
    selection = flow.models(job["job_id"], "hetero_feature_selection_0")
    assert selection["guest"]["left_cols"] == [g_head[2 + j] for j in sorted(left)]
    assert selection["host"]["left_cols"] == [n for n, v in zip(h_head[1:], hvif) if v <= vif_max]
    assert 0 < len(selection["guest"]["left_cols"]) < g
