"""HomoLR end to end: the example job against centralised training on the pooled rows, and
what the arbiter actually receives from each party during a run."""

from __future__ import annotations

import csv
import logging
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Context, Dataset, Inputs, Instance, instances_meta
from components.crypto import secure_agg
from components.crypto.secure_agg import FRACTION_BITS, decode
from components.linear.homo_lr import HomoLR, HomoLRParams
from federation.api import Party
from federation.standalone import StandaloneFederation

from .conftest import EXAMPLES, load_example, write_job

pytestmark = pytest.mark.e2e

SHARES = ("guest", "host1", "host2")
GUEST, HOST1, HOST2, ARBITER = (Party("guest", "9999"), Party("host", "10000"), Party("host", "10001"),
                                Party("arbiter", "10000"))


def read_share(share: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    with (EXAMPLES / "data" / f"breast_homo_{share}.csv").open() as fh:
        rows = list(csv.reader(fh))[1:]
    return [r[0] for r in rows], np.array([[float(v) for v in r[2:]] for r in rows]), np.array(
        [float(r[1]) for r in rows])


def central_gd(xs: list[np.ndarray], ys: list[np.ndarray], p: dict) -> tuple[np.ndarray, list[float]]:
    """Full-batch gradient descent on the pooled rows (weights, intercept last; loss per epoch)."""
    x, y = np.vstack(xs), np.concatenate(ys)
    w, losses = np.zeros(x.shape[1] + 1), []
    for it in range(p["max_iter"]):
        z = x @ w[:-1] + w[-1]
        losses.append(float(np.mean(np.logaddexp(0, z) - y * z) + 0.5 * p["alpha"] * w[:-1] @ w[:-1]))
        r = 1 / (1 + np.exp(-z)) - y
        grad = np.r_[x.T @ r / len(y) + p["alpha"] * w[:-1], r.mean()]
        w = w - p["learning_rate"] / math.sqrt(1 + it) * grad
        if len(losses) > 1 and abs(losses[-2] - losses[-1]) < p["tol"]:
            break
    return w, losses


# ---------------------------------------------------------------- through the CLI


@pytest.fixture
def homo(flow):
    for share in SHARES:
        flow.upload(EXAMPLES / "data" / f"breast_homo_{share}.csv", f"breast_homo_{share}", label="y")
    return flow


def test_homo_lr_example_matches_pooled_training(homo, tmp_path: Path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    conf, dsl = load_example("homo_lr")
    params = conf["component_parameters"]["common"]["homo_lr_0"]
    c, d = write_job(tmp_path, conf, dsl)
    job = homo.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    job_id = job["job_id"]

    shares = [read_share(s) for s in SHARES]
    w_ref, loss_ref = central_gd([s[1] for s in shares], [s[2] for s in shares], params)
    model = homo.ok("tracking", "output-model", "-j", job_id, "-r", "guest", "-p", "9999",
                    "-cpn", "homo_lr_0")["model"]
    # the model is gradient descent on the pooled rows (the hosts' predictions below show they hold it too)
    assert model["iters"] == model["aggregate_rounds"] == len(loss_ref)
    np.testing.assert_allclose(model["weights"], w_ref[:-1], atol=1e-6)
    assert abs(model["intercept"] - w_ref[-1]) < 1e-6
    np.testing.assert_allclose(model["loss_history"], loss_ref, atol=1e-6)

    # AUC on the pooled rows within 0.01 of scikit-learn's L2 logistic regression
    x, y = np.vstack([s[1] for s in shares]), np.concatenate([s[2] for s in shares])
    central = LogisticRegression(C=1.0 / (params["alpha"] * len(y)), max_iter=5000).fit(x, y)
    auc_ref = roc_auc_score(y, central.predict_proba(x)[:, 1])
    w = np.r_[model["weights"], model["intercept"]]
    assert abs(roc_auc_score(y, x @ w[:-1] + w[-1]) - auc_ref) < 0.01

    # each party scored its own rows; the guest's Evaluation is the AUC of those scores
    for party, (ids, xs, ys) in zip((GUEST, HOST1, HOST2), shares):
        out = homo.ok("tracking", "output-data", "-j", job_id, "-r", party.role, "-p", party.party_id,
                      "-cpn", "homo_lr_0", "-o", tmp_path / f"out_{party.role}{party.party_id}")[0]
        with open(out["file"]) as fh:
            rows = {r["id"]: r for r in csv.DictReader(fh)}
        assert sorted(rows) == sorted(ids)
        expected = 1 / (1 + np.exp(-(xs @ w[:-1] + w[-1])))
        got = np.array([float(rows[i]["predict_score"]) for i in ids])
        np.testing.assert_allclose(got, expected, atol=1e-9)
        assert all(float(rows[i]["label"]) == yi for i, yi in zip(ids, ys))
    # every party's Evaluation is the AUC of its own scores
    for party, (_, xs, ys) in zip((GUEST, HOST1, HOST2), shares):
        metrics = homo.ok("tracking", "metrics", "-j", job_id, "-r", party.role, "-p", party.party_id,
                          "-cpn", "evaluation_0")["evaluation"]
        assert abs(metrics["auc"] - roc_auc_score(ys, xs @ w[:-1] + w[-1])) < 1e-9


# ---------------------------------------------------------------- what the arbiter sees


class _Tracker:
    def log_metric(self, namespace, name, value) -> None:
        pass

    def progress(self, done, total, message="") -> None:
        pass


def three_classes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A third class out of breast: the positives split by their first feature."""
    return y + ((y == 1) & (x[:, 0] > -0.5))


def run_in_process(home: Path, params: dict, relabel=None) -> tuple[dict, dict]:
    """All four parties of one HomoLR run as threads over the standalone transport. Returns
    {party: Outputs} and the updates the arbiter received {(party name, round): vector}.
    ``relabel(x, y)`` gives other labels to every share."""
    parties = {"guest": [GUEST], "host": [HOST1, HOST2], "arbiter": [ARBITER]}
    ids = ["9999", "10000", "10001"]
    received: dict = {}
    results: dict = {}
    errors: list = []

    def run(party: Party, share: str | None) -> None:
        session = LocalSession(partitions=2, workers=1, inline_below=10 ** 9)
        fed = StandaloneFederation("homo-spy", party, home, parties=ids, default_timeout=60)
        if party == ARBITER:
            real_get = fed.get

            def spying_get(name, tag, sources, timeout=None):
                values = real_get(name, tag, sources, timeout)
                if name == "model_update":
                    for src, value in zip(sources, values):
                        received[(f"{src.role}:{src.party_id}", int(tag.rsplit(".", 1)[1]))] = np.array(value)
                return values
            fed.get = spying_get
        inputs = Inputs()
        if share is not None:
            rid, x, y = read_share(share)
            y = y if relabel is None else relabel(x, y)
            table = session.parallelize([(k, Instance(xi, yi)) for k, xi, yi in zip(rid, x, y)])
            meta = instances_meta(TableMeta(namespace="t", name=share), [f"x{i}" for i in range(x.shape[1])], "y")
            inputs.data["train_data"] = Dataset(table, meta)
        ctx = Context(job_id="homo-spy", component="homo_lr_0", local=party, parties=parties, computing=session,
                      federation=fed, storage=None, tracker=_Tracker(), logger=logging.getLogger("homo-spy"))
        try:
            results[party] = HomoLR().run(ctx, HomoLRParams(**params), inputs)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append((party, exc))
        finally:
            fed.close()
            session.stop()

    threads = [threading.Thread(target=run, args=a)
               for a in ((GUEST, "guest"), (HOST1, "host1"), (HOST2, "host2"), (ARBITER, None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results, received


def test_the_arbiter_learns_only_the_sum(tmp_path: Path, monkeypatch):
    plain: dict = {}
    real_mask = secure_agg.SecureAggregator.mask

    def recording_mask(self, values, round_no, fraction_bits=FRACTION_BITS):
        out = real_mask(self, values, round_no, fraction_bits)
        plain[(self.name, round_no)] = (np.array(values), out.copy())
        return out
    monkeypatch.setattr(secure_agg.SecureAggregator, "mask", recording_mask)

    params = {"alpha": 0.01, "learning_rate": 0.15, "max_iter": 8, "tol": 0.0, "batch_size": 64,
              "init_param": {"init_method": "zeros", "random_seed": 3}, "aggregate_iters": 2}
    results, received = run_in_process(tmp_path / "masked", params)
    names = ["guest:9999", "host:10000", "host:10001"]
    rounds = sorted({r for _, r in received})
    assert rounds == [0, 1, 2, 3] and set(received) == set(plain)

    lone_seen, lone_true = [], []
    for r in rounds:
        for name in names:
            update, masked = plain[(name, r)]
            got = received[(name, r)]
            assert got.dtype == np.uint64
            np.testing.assert_array_equal(got, masked)  # the arbiter gets exactly the masked words
            lone_seen.append(decode(got))
            lone_true.append(update)
        # yet the sum of all three is the sum of the true updates: [n·w, n·b, n·loss, n]
        total = decode(secure_agg.add_words([received[(n, r)] for n in names]))
        np.testing.assert_allclose(total, np.sum([plain[(n, r)][0] for n in names], axis=0),
                                   atol=3 * 2.0 ** -FRACTION_BITS)
        assert total[-1] == 569
    seen, true = np.concatenate(lone_seen), np.concatenate(lone_true)
    # one party's vector, alone, is unrelated to its update and looks uniform on [0, 2**64)
    assert abs(np.corrcoef(seen, true)[0, 1]) < 0.15
    assert np.median(np.abs(seen - true)) > 1e9
    words = np.concatenate([received[k] for k in received])
    counts = np.bincount((words >> np.uint64(61)).astype(int), minlength=8)
    chi2 = float(((counts - len(words) / 8) ** 2 / (len(words) / 8)).sum())
    assert chi2 < 30.0, counts  # 7 d.o.f.: p < 1e-4 only above ~29.9
    # the row counts are hidden too: only the total 569 comes out
    assert all(decode(received[(n, 0)])[-1] not in (200, 185, 184) for n in names)
    models = [results[p].model for p in (GUEST, HOST1, HOST2)]
    for m in models[1:]:
        np.testing.assert_array_equal(m["weights"], models[0]["weights"])
    assert "weights" not in results[ARBITER].model and results[ARBITER].model["aggregate_rounds"] == 4

    # control: without masks the arbiter would read each update as it is
    _, clear = run_in_process(tmp_path / "clear", {**params, "secure_aggregate": False})
    first = clear[("guest:9999", 0)]
    assert first.dtype == np.float64 and first[-1] == 200
    assert np.corrcoef(np.concatenate([clear[(n, 0)] for n in names]),
                       np.concatenate([plain[(n, 0)][0] for n in names]))[0, 1] > 0.99


def test_labels_other_than_0_1_train_one_vs_rest_on_the_pooled_rows(tmp_path: Path):
    """Three classes spread over the parties: the arbiter learns the classes, each class is
    one model aggregated under its own masks, each equal to pooled gradient descent on
    'this class or not'; every party predicts the likeliest class."""
    params = {"alpha": 0.01, "learning_rate": 0.15, "max_iter": 4, "tol": 0.0, "optimizer": "sgd",
              "init_param": {"init_method": "zeros"}}
    results, received = run_in_process(tmp_path / "ovr", params, relabel=three_classes)
    shares = [read_share(s) for s in SHARES]
    xs, ys = [x for _, x, _ in shares], [three_classes(x, y) for _, x, y in shares]
    model = results[GUEST].model
    assert model["classes"] == [0.0, 1.0, 2.0] and results[ARBITER].model["classes"] == [0.0, 1.0, 2.0]
    assert sorted({r for _, r in received}) == list(range(12))  # 3 models x 4 rounds, a fresh mask each
    scores = []
    for k, cls in enumerate(model["classes"]):
        w_ref, loss_ref = central_gd(xs, [(y == cls).astype(float) for y in ys], params)
        np.testing.assert_allclose(model["weights"][k], w_ref[:-1], atol=1e-6)
        assert abs(model["intercept"][k] - w_ref[-1]) < 1e-6
        np.testing.assert_allclose(model["loss_history"][k], loss_ref, atol=1e-6)
        scores.append(np.vstack(xs) @ w_ref[:-1] + w_ref[-1])
    central = np.argmax(np.stack(scores, axis=1), axis=1)
    predicted = []
    for party in (GUEST, HOST1, HOST2):
        rows = dict(results[party].data[0].table.collect())
        ids = shares[(GUEST, HOST1, HOST2).index(party)][0]
        predicted += [rows[i].features[0] for i in ids]
    np.testing.assert_array_equal(predicted, central)
    assert results[HOST2].data[0].meta.columns[-3:] == ["predict_detail_0", "predict_detail_1", "predict_detail_2"]
    # a predict job with the stored model: the same rows again
    session = LocalSession(partitions=2, workers=1, inline_below=10 ** 9)
    ids, x, y = shares[1]
    table = session.parallelize([(k, Instance(xi, yi)) for k, xi, yi in zip(ids, x, ys[1])])
    data = Dataset(table, instances_meta(TableMeta(namespace="t", name="h1"), [f"x{i}" for i in range(x.shape[1])],
                                         "y"))  # fmt: skip
    ctx = Context(job_id="predict", component="homo_lr_0", local=HOST1, parties={"host": [HOST1]},
                  computing=session, federation=None, storage=None, tracker=_Tracker(),
                  logger=logging.getLogger("predict"))
    again = dict(HomoLR().run(ctx, HomoLRParams(**params), Inputs(data={"data": data}, model=[model])).data[0]
                 .table.collect())
    trained = dict(results[HOST1].data[0].table.collect())
    for i in ids:
        np.testing.assert_allclose(again[i].features, trained[i].features, atol=1e-12)
    session.stop()
