"""HomoLR pieces that need no job: the aggregation schedule, params, and the clear errors."""

from __future__ import annotations

import logging

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Context, Dataset, Inputs, Instance, instances_meta
from components.linear.homo_lr import HomoLR, HomoLRParams, aggregation_epochs
from federation.api import Party
from flow.core.errors import ComponentError

GUEST, HOST, HOST2 = Party("guest", "9999"), Party("host", "10000"), Party("host", "10001")
ARBITER = Party("arbiter", "10000")


class CannedFederation:
    """Answers get() from a dict by variable name; records remote()."""

    def __init__(self, answers: dict):
        self.answers, self.sent = answers, []

    def get(self, name, tag, parties, timeout=None):
        return list(self.answers[name])

    def remote(self, obj, name, tag, parties):
        self.sent.append((name, obj, list(parties)))


def context(local: Party, federation, session=None) -> Context:
    return Context(job_id="j", component="homo_lr_0", local=local,
                   parties={"guest": [GUEST], "host": [HOST, HOST2], "arbiter": [ARBITER]},
                   computing=session, federation=federation, storage=None, tracker=None,
                   logger=logging.getLogger("test"))


def test_aggregation_schedule_ends_with_the_last_epoch():
    assert aggregation_epochs(HomoLRParams(max_iter=7, aggregate_iters=3)) == [2, 5, 6]
    assert aggregation_epochs(HomoLRParams(max_iter=4)) == [0, 1, 2, 3]
    assert aggregation_epochs(HomoLRParams(max_iter=2, aggregate_iters=5)) == [1]


def test_params_follow_fate_and_refuse_nonsense():
    p = HomoLRParams.model_validate({"penalty": "L2", "encrypt_param": {"method": None}, "aggregate_iters": 2,
                                     "init_param": {"init_method": "zeros"}, "optimizer": "adam"})
    assert p.aggregate_iters == 2 and p.secure_aggregate
    for bad in ({"aggregate_iters": 0}, {"encrypt_param": {"method": "Paillier"}}, {"max_iter": 0},
                {"learning_rte": 0.1}):
        with pytest.raises(pydantic.ValidationError):
            HomoLRParams.model_validate(bad)


def test_arbiter_refuses_parties_with_other_columns():
    headers = [["x0", "x1", "x2"], ["x0", "x1", "x2"], ["x0", "x2", "x9"]]
    fed = CannedFederation({"model_header": [(h, [0.0, 1.0]) for h in headers]})
    with pytest.raises(ComponentError, match=r"host:10001 has features .*x9.*same columns in the same order"):
        HomoLR().arbiter(context(ARBITER, fed), HomoLRParams(), Inputs())
    assert not fed.sent  # nothing was sent before the check
    fed = CannedFederation({"model_header": [(h, [0.0, 1.0]) for h in (["x0", "x1"], ["x1", "x0"], ["x0", "x1"])]})
    with pytest.raises(ComponentError, match="other order"):
        HomoLR().arbiter(context(ARBITER, fed), HomoLRParams(), Inputs())


def test_arbiter_refuses_a_label_with_too_many_values():
    shares = [(["x0"], [float(i) for i in range(60 * k, 60 * k + 60)]) for k in range(3)]
    fed = CannedFederation({"model_header": shares})
    with pytest.raises(ComponentError, match="180 distinct labels; one-vs-rest takes at most 100"):
        HomoLR().arbiter(context(ARBITER, fed), HomoLRParams(), Inputs())
    assert not fed.sent


@pytest.mark.parametrize("labels, label_col, message", [
    ([0.0, 1.0, float("nan")], "y", "labels must be numbers"),
    ([None, None, None], None, "no label"),
])
def test_parties_refuse_unusable_training_data(labels, label_col, message):
    session = LocalSession(partitions=1, workers=1, inline_below=10 ** 6)
    table = session.parallelize([(str(i), Instance(np.ones(2), y)) for i, y in enumerate(labels)])
    meta = instances_meta(TableMeta(namespace="t", name="rows"), ["x0", "x1"], label_col)
    inputs = Inputs(data={"train_data": Dataset(table, meta)})
    fed = CannedFederation({})
    with pytest.raises(ComponentError, match=message):
        HomoLR().guest(context(GUEST, fed, session), HomoLRParams(), inputs)
    assert not fed.sent


def test_predict_job_scores_rows_with_the_stored_model():
    session = LocalSession(partitions=2, workers=1, inline_below=10 ** 6)
    x = np.random.default_rng(0).normal(size=(20, 3))
    table = session.parallelize([(str(i), Instance(xi, float(i % 2))) for i, xi in enumerate(x)])
    meta = instances_meta(TableMeta(namespace="t", name="new_rows"), ["x0", "x1", "x2"], "y")
    model = {"header": ["x0", "x1", "x2"], "weights": [0.5, -1.0, 2.0], "intercept": 0.25}
    fed = CannedFederation({})
    out = HomoLR().host(context(HOST, fed, session), HomoLRParams(), Inputs(data={"data": Dataset(table, meta)},
                                                                            model=[model]))
    scores = {k: v.features[1] for k, v in out.data[0].table.collect()}
    expected = 1 / (1 + np.exp(-(x @ np.array(model["weights"]) + 0.25)))
    np.testing.assert_allclose([scores[str(i)] for i in range(20)], expected, atol=1e-12)
    assert out.data[0].meta.extra["type"] == "predict" and not fed.sent
    other = instances_meta(TableMeta(namespace="t", name="other"), ["x0", "x1", "z"], "y")
    with pytest.raises(ComponentError, match="differ from the model"):
        HomoLR().host(context(HOST, fed, session), HomoLRParams(),
                      Inputs(data={"data": Dataset(table, other)}, model=[model]))
