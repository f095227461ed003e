"""examples/hetero_poisson through the CLI (512-bit keys, 8 iterations, no early stop): the
guest's and the host's weights are those of a plain gradient descent of the Poisson loss
with the log-exposure offset on the joined CSVs, and Evaluation scores mu."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.unit.test_hetero_poisson import reference

from .conftest import EXAMPLES, joined, load_example, write_job

pytestmark = pytest.mark.e2e


def test_the_example_trains_the_central_poisson_descent(flow, tmp_path):
    for side in ("guest", "host"):
        flow.upload(EXAMPLES / "data" / f"poisson_hetero_{side}.csv", f"poisson_hetero_{side}",
                    label="y" if side == "guest" else None)
    conf, dsl = load_example("hetero_poisson")
    conf = copy.deepcopy(conf)
    params = conf["component_parameters"]["common"]["hetero_poisson_0"]
    params.update(max_iter=8, tol=0.0, encrypt_param={"key_length": 512, "allow_short_key": True})
    job = flow.ok("job", "submit", "-c", *write_job(tmp_path, conf, dsl)[:1], "-d", tmp_path / "job_dsl.json",
                  "--wait")
    assert job["status"] == "success", job

    _, x, y, g_names, _ = joined("poisson_hetero")
    assert g_names[0] == "exposure"
    exposure, xg, xh = x[:, 0], x[:, 1:len(g_names)], x[:, len(g_names):]
    offset = np.log(np.maximum(exposure, 1e-7))
    w, b, losses = reference(xg, xh, offset, y, {**params, "decay": params["decay"]})
    models = flow.models(job["job_id"], "hetero_poisson_0")
    guest, host = models["guest"], models["host"]
    assert guest["iters"] == 8 and guest["exposure_colname"] == "exposure"
    np.testing.assert_allclose(np.r_[guest["weights"], host["weights"]], w, atol=1e-3)
    assert abs(guest["intercept"] - b) < 1e-3
    np.testing.assert_allclose(guest["loss_history"], losses, atol=1e-4)

    rmse = flow.ok("tracking", "metrics", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                   "-cpn", "evaluation_0")["evaluation"]["root_mean_squared_error"]
    mu = np.exp(xg @ w[:xg.shape[1]] + xh @ w[xg.shape[1]:] + b + offset)
    assert abs(rmse - float(np.sqrt(np.mean((mu - y) ** 2)))) < 1e-3
