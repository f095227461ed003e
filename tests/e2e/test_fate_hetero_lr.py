"""FATE's hetero_lr_normal task as shipped (the session's suite run): the guest's scores are
the logistic function of both parties' stored weights on the joined CSV rows, computed
centrally, and Evaluation's AUC is that of those central scores. (HeteroLR's descent is
checked against a central Taylor descent on the project's own example in test_hetero_lr.py;
this task's rmsprop mini-batch descent is not replayed centrally.)"""

from __future__ import annotations

import numpy as np
import pytest

from tests.fate_examples import auc, joined

pytestmark = pytest.mark.e2e

SUITE, TASK = "hetero_logistic_regression", "hetero_lr_normal"


def test_hetero_lr_normal_scores_are_the_central_logistic_of_both_parties_weights(suite_run, tmp_path):
    run = suite_run(SUITE)
    job = run.job(TASK)
    models = run.flow.models(job, "hetero_lr_0", parties=(("guest", "9999"), ("host", "10000")))
    gm, hm = models["guest"], models["host"]
    data = joined("breast")
    assert gm["header"] == data.gnames and hm["header"] == data.hnames
    wx = data.gx @ np.asarray(gm["weights"]) + data.hx @ np.asarray(hm["weights"]) + gm["intercept"]
    central = 1 / (1 + np.exp(-wx))
    rows = {r["id"]: r for r in run.output(job, "guest", "9999", "hetero_lr_0", tmp_path)}
    assert sorted(rows) == data.ids
    got = np.array([float(rows[i]["predict_score"]) for i in data.ids])
    np.testing.assert_allclose(got, central, atol=1e-6)
    metrics = run.metrics(job, "evaluation_0")
    assert abs(metrics["evaluation"]["auc"] - auc(data.y, central)) < 1e-6
