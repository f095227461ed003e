"""HeteroSSHELR through the job runner beyond one host and plain reveals: a guest and two hosts
with triples by oblivious transfer, against the central Taylor descent; and
``encrypted_reveal_in_host``, whose scores (training and a predict job from the deployed
model) are the plain reveal's while the host's model holds only ciphertexts."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLES, FlowCLI, load_example, write_job
from .test_hetero_lr import joined_breast, taylor_gd
from .test_hetero_lr_multi_host import PARTIES, joined

pytestmark = pytest.mark.e2e
SHORT_KEY = {"key_length": 512, "allow_short_key": True}


def sshe_conf(**params) -> tuple[dict, dict]:
    conf, dsl = load_example("hetero_sshe_lr")
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"]["hetero_sshe_lr_0"].update(encrypt_param=SHORT_KEY, max_iter=3, **params)
    return conf, dsl


def scores(flow: FlowCLI, job_id: str, out: Path) -> dict[str, float]:
    item = flow.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "hetero_sshe_lr_0",
                   "-o", out)[0]
    with open(item["file"]) as fh:
        return {r["id"]: float(r["predict_score"]) for r in csv.DictReader(fh)}


def model(flow: FlowCLI, job_id: str, role: str, pid: str) -> dict:
    return flow.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid, "-cpn", "hetero_sshe_lr_0")["model"]


def test_two_hosts_with_ot_triples_match_central(flow, tmp_path: Path):
    for role, _, name in PARTIES:
        flow.upload(EXAMPLES / "data" / f"breast_multi_host_{name}.csv", f"breast_multi_host_{name}",
                    label="y" if role == "guest" else None)
    conf, dsl = sshe_conf(triple_provider="ot")
    multi, _ = load_example("hetero_lr_multi_host")
    conf["role"] = {"guest": [9999], "host": [10000, 10001]}
    conf["component_parameters"]["role"] = copy.deepcopy(multi["component_parameters"]["role"])
    params = conf["component_parameters"]["common"]["hetero_sshe_lr_0"]
    c, d = write_job(tmp_path, conf, dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job.get("reason")

    ids, x, y, _ = joined()
    w_ref, b_ref, loss_ref = taylor_gd(x, y, params)
    guest, host1, host2 = (model(flow, job["job_id"], role, pid) for role, pid, _ in PARTIES)
    np.testing.assert_allclose(guest["weights"], w_ref[:10], atol=1e-3)
    np.testing.assert_allclose(host1["weights"], w_ref[10:20], atol=1e-3)
    np.testing.assert_allclose(host2["weights"], w_ref[20:], atol=1e-3)
    assert abs(guest["intercept"] - b_ref) < 1e-3 and guest["iters"] == host2["iters"] == len(loss_ref)
    np.testing.assert_allclose(guest["loss_history"], loss_ref, atol=1e-4)
    assert np.abs(w_ref[20:]).max() > 0.02

    got = scores(flow, job["job_id"], tmp_path / "out")  # both hosts' partial scores joined on the guest
    expected = 1 / (1 + np.exp(-(x @ w_ref + b_ref)))
    assert sorted(got) == ids
    np.testing.assert_allclose([got[i] for i in ids], expected, atol=1e-3)

    # a predict job from the deployed model: each host scores with its own stored weights
    deployed = flow.ok("model", "deploy", "-j", job["job_id"])
    c, d = write_job(tmp_path, deployed["predict_conf"], deployed["predict_dsl"], "predict")
    predicted = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert predicted["status"] == "success", predicted.get("reason")
    again = scores(flow, predicted["job_id"], tmp_path / "predict")
    assert again.keys() == got.keys() and max(abs(again[k] - got[k]) for k in got) < 1e-9


def test_encrypted_reveal_in_host_scores_are_the_plain_reveals(breast, tmp_path: Path):
    runs = {}
    for strategy in ("respectively", "encrypted_reveal_in_host"):
        c, d = write_job(tmp_path, *sshe_conf(reveal_strategy=strategy), strategy)
        job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
        assert job["status"] == "success", job.get("reason")
        runs[strategy] = job["job_id"]
    plain, hidden = runs["respectively"], runs["encrypted_reveal_in_host"]

    host = model(breast, hidden, "host", "10000")
    assert "weights" not in host and len(host["encrypted_weights"]) == len(host["header"]) == 20
    assert all(int(c, 16) > 2 ** 256 for c in host["encrypted_weights"])  # ciphertexts, not ring elements
    assert "hosts_key" in model(breast, hidden, "guest", "9999")
    assert "hosts_key" not in model(breast, plain, "guest", "9999")

    ids, x, y = joined_breast()
    want = scores(breast, plain, tmp_path / "plain")
    got = scores(breast, hidden, tmp_path / "hidden")
    assert got.keys() == want.keys() and len(got) == len(ids)
    assert max(abs(got[k] - want[k]) for k in want) < 1e-6

    # a predict job from the deployed model: the host scores with its ciphertexts, the guest decrypts
    deployed = breast.ok("model", "deploy", "-j", hidden)
    c, d = write_job(tmp_path, deployed["predict_conf"], deployed["predict_dsl"], "predict")
    predicted = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert predicted["status"] == "success", predicted.get("reason")
    again = scores(breast, predicted["job_id"], tmp_path / "predict")
    assert again.keys() == got.keys() and max(abs(again[k] - got[k]) for k in got) < 1e-9
