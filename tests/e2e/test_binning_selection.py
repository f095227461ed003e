"""examples/binning_selection_lr end to end: binning IVs and the IV top-k selection checked
against a centralised computation on the same rows and bins; the LR after it still learns."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.unit.test_binning import central_stats, numpy_quantiles

from .conftest import EXAMPLES, load_example, write_job

pytestmark = pytest.mark.e2e


def read_csv(name: str) -> tuple[list[str], dict[str, list[float]]]:
    with (EXAMPLES / "data" / name).open() as fh:
        rows = list(csv.reader(fh))
    return rows[0][1:], {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}


def model_of(flow, job_id: str, role: str, party: str, cpn: str) -> dict:
    return flow.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", party, "-cpn", cpn)["model"]


def test_binning_selection_lr(breast, tmp_path):
    conf, dsl = load_example("binning_selection_lr")
    common = conf["component_parameters"]["common"]
    for cpn in ("hetero_feature_binning_0", "hetero_lr_0"):  # small keys: the protocol is the same, 2x faster
        common[cpn]["encrypt_param"] = {"key_length": 512, "allow_short_key": True}
    c, d = write_job(tmp_path, conf, dsl)
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    job_id = job["job_id"]

    gheader, guest = read_csv("breast_hetero_guest.csv")
    hheader, host = read_csv("breast_hetero_host.csv")
    ids = sorted(set(guest) & set(host))
    y = np.array([guest[i][0] for i in ids])
    gx = np.array([guest[i][1:] for i in ids])
    hx = np.array([host[i] for i in ids])
    bin_num = conf["component_parameters"]["common"]["hetero_feature_binning_0"]["bin_num"]

    gbin = model_of(breast, job_id, "guest", "9999", "hetero_feature_binning_0")
    hbin = model_of(breast, job_id, "host", "10000", "hetero_feature_binning_0")
    central_iv = {}
    for j, name in enumerate(gheader[1:]):
        res = gbin["binning_result"][name]
        np.testing.assert_array_equal(res["split_points"], numpy_quantiles(gx[:, j], bin_num))
        central_iv[name] = central_stats(gx[:, j], y, res["split_points"])["iv"]
        assert abs(res["iv"] - central_iv[name]) < 1e-6
    for j, name in enumerate(hheader):
        split_points = hbin["binning_result"][name]["split_points"]
        np.testing.assert_array_equal(split_points, numpy_quantiles(hx[:, j], bin_num))
        anon = f"host_10000_x{j}"
        central_iv[anon] = central_stats(hx[:, j], y, split_points)["iv"]
        assert abs(gbin["host_results"]["10000"][anon]["iv"] - central_iv[anon]) < 1e-6
        assert "iv" not in hbin["binning_result"][name]  # nothing of the labels goes back to the host

    # selection: exactly the 10 highest central IVs over both parties survive
    k = conf["component_parameters"]["common"]["hetero_feature_selection_0"]["iv_top_k_param"]["k"]
    gsel = model_of(breast, job_id, "guest", "9999", "hetero_feature_selection_0")
    hsel = model_of(breast, job_id, "host", "10000", "hetero_feature_selection_0")
    kept = set(gsel["left_cols"]) | {f"host_10000_x{hheader.index(c)}" for c in hsel["left_cols"]}
    assert kept == set(sorted(central_iv, key=central_iv.get, reverse=True)[:k])
    assert len(gsel["left_cols"]) + len(hsel["left_cols"]) == k

    # the LR downstream trains on the survivors only, and evaluation keeps its curves
    lr = model_of(breast, job_id, "guest", "9999", "hetero_lr_0")
    assert lr["header"] == gsel["left_cols"]
    assert len(model_of(breast, job_id, "host", "10000", "hetero_lr_0")["weights"]) == len(hsel["left_cols"])
    metrics = breast.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999",
                        "-cpn", "evaluation_0")["evaluation"]
    assert metrics["auc"] > 0.95
    np.testing.assert_allclose(metrics["loss_curve"]["loss"], lr["loss_history"])
    assert abs(metrics["ks_curve"]["ks"] - metrics["ks"]) < 1e-12
