"""FATE's own optimal-binning example (hetero_feature_binning/hetero_binning_optim_gini, read
in place) end to end: the guest's and the host's split points and IVs equal a centralised
run of the same staged greedy merge on the joined rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.fate_examples import fate_examples
from tests.unit.test_binning import central_stats, numpy_quantiles
from tests.unit.test_optimal_binning import reference_optimal_points

pytestmark = pytest.mark.e2e

TASK = "hetero_binning_optim_gini"


def _read(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    with path.open() as fh:
        rows = list(csv.reader(fh))
    return rows[0][1:], {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}


def test_fate_optimal_gini_binning_matches_the_central_merge(flow, tmp_path: Path):
    fate = fate_examples()
    suite_dir = fate / "dsl" / "hetero_feature_binning"
    suite = json.loads((suite_dir / "hetero_feature_binning_testsuite.json").read_text())
    for entry in suite["data"]:
        if entry["table_name"] in ("breast_hetero_guest", "breast_hetero_host") and entry["role"].endswith("_0"):
            conf = {k: v for k, v in entry.items() if k != "role"}
            conf["file"] = str(fate / entry["file"].removeprefix("examples/"))
            path = tmp_path / f"upload_{entry['table_name']}.json"
            path.write_text(json.dumps(conf))
            flow.ok("data", "upload", "-c", path)
    task = suite["tasks"][TASK]
    conf = json.loads((suite_dir / task["conf"]).read_text())
    binning = conf["component_parameters"]["common"]["hetero_feature_binning_0"]
    binning["encrypt_param"] = {"key_length": 512, "allow_short_key": True}  # the test's only change: speed
    conf_path = tmp_path / "conf.json"
    conf_path.write_text(json.dumps(conf))
    job = flow.ok("job", "submit", "-c", conf_path, "-d", suite_dir / task["dsl"], "--wait")
    assert job["status"] == "success", job
    models = flow.models(job["job_id"], "hetero_feature_binning_0")
    gm, hm = models["guest"], models["host"]

    opt = binning["optimal_binning_param"]
    assert opt["metric_method"] == "gini" and binning["method"] == "optimal"

    def reference(values: np.ndarray) -> np.ndarray:
        init = numpy_quantiles(values, opt["init_bin_nums"])
        return reference_optimal_points(values, y, init, binning["bin_num"], opt["metric_method"], opt["mixture"],
                                        opt["min_bin_pct"], opt["max_bin_pct"])

    gheader, guest = _read(fate / "data" / "breast_hetero_guest.csv")
    hheader, host = _read(fate / "data" / "breast_hetero_host.csv")
    ids = sorted(set(guest) & set(host))
    y = np.array([guest[i][0] for i in ids])
    gx, hx = np.array([guest[i][1:] for i in ids]), np.array([host[i] for i in ids])
    for j, name in enumerate(gheader[1:]):
        res, ref = gm["binning_result"][name], reference(gx[:, j])
        np.testing.assert_allclose(res["split_points"], ref, err_msg=name)
        assert len(ref) <= binning["bin_num"]
        assert abs(res["iv"] - central_stats(gx[:, j], y, ref)["iv"]) < 1e-6, name
    for j, name in enumerate(hheader):
        ref = reference(hx[:, j])
        np.testing.assert_allclose(hm["binning_result"][name]["split_points"], ref, err_msg=name)
        got = gm["host_results"]["10000"][f"host_10000_x{j}"]
        assert abs(got["iv"] - central_stats(hx[:, j], y, ref)["iv"]) < 1e-6, name
        assert "iv" not in hm["binning_result"][name]  # nothing of the labels goes back to the host
