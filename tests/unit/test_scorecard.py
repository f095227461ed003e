"""Scorecard against the plain credit-score formula: offset + factor / ln(base) * ln((1-p)/p),
bounded to [lower_limit_value, upper_limit_ratio * offset], rounded to 2 decimals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Dataset, Inputs, Instance, instances_meta
from components.evaluation.scorecard import Scorecard, ScorecardParams
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, run_parties


@pytest.fixture
def session():
    s = LocalSession(partitions=3, workers=1, inline_below=10 ** 6)
    yield s
    s.stop()


def predictions(session, p: np.ndarray, y: np.ndarray, detail: bool = False) -> Dataset:
    cols = ["predict_result", "predict_score"] + (["predict_detail_0", "predict_detail_1"] if detail else [])
    rows = []
    for i, (pi, yi) in enumerate(zip(p, y)):
        feats = [float(pi > 0.5), pi] + ([1 - pi, pi] if detail else [])
        rows.append((f"id{i:04d}", Instance(np.asarray(feats, dtype=float), float(yi))))
    meta = instances_meta(TableMeta(namespace="unit", name="pred"), cols, "label", type="train")
    return Dataset(session.parallelize(rows), meta)


def plain(p: float, offset=500.0, factor=20.0, base=2.0, ratio=3.0, lower=0.0) -> float:
    upper = ratio * offset
    if 0 <= p <= 1e-8:
        s = upper
    elif abs(p - 1) <= 1e-8:
        s = lower
    elif not 0 <= p <= 1:
        s = -1
    else:
        s = offset + factor / math.log(base) * math.log((1 - p) / p)
    return round(min(max(s, lower), upper), 2)


def _run(tmp_path, session, params: dict, data: Dataset):
    out, tracker = run_parties(tmp_path, Scorecard, {GUEST: (session, params, Inputs(data={"data": data}))})[GUEST]
    return out, tracker


@pytest.mark.parametrize("params", [{}, {"offset": 600, "factor": 50, "factor_base": 10, "upper_limit_ratio": 1.2,
                                         "lower_limit_value": 300, "method": "Credit"}])
def test_scores_match_the_plain_formula(tmp_path, session, params):
    rng = np.random.default_rng(5)
    p = np.r_[rng.uniform(0, 1, 80), 0.0, 1.0, 1e-12, 1 - 1e-12, 1e-6, 0.999999]
    y = rng.integers(0, 2, len(p)).astype(float)
    out, tracker = _run(tmp_path, session, params, predictions(session, p, y))
    ds = out.data[0]
    assert ds.meta.columns == ["label", "predict_result", "predict_score", "credit_score"]
    rows = sorted(ds.table.collect(), key=lambda kv: kv[0])
    got = np.array([inst.features for _, inst in rows])
    kw = {"offset": params.get("offset", 500), "factor": params.get("factor", 20),
          "base": params.get("factor_base", 2), "ratio": params.get("upper_limit_ratio", 3),
          "lower": params.get("lower_limit_value", 0)}
    np.testing.assert_allclose(got[:, 2], [plain(v, **kw) for v in p], atol=1e-9)
    np.testing.assert_allclose(got[:, 1], p)
    assert [inst.label for _, inst in rows] == list(y)
    # odds of good: a higher probability of default never scores higher
    order = np.argsort(p)
    assert np.all(np.diff(got[order, 2]) <= 1e-9)
    assert "ln(Odds)" in tracker.metrics[("train", "scorecard_compute_formula")]


def test_out_of_range_scores_minus_one_then_bounded(tmp_path, session):
    p, y = np.array([1.5, -0.2, 0.5]), np.zeros(3)
    out, _ = _run(tmp_path, session, {"lower_limit_value": -10}, predictions(session, p, y))
    got = {k: inst.features[2] for k, inst in out.data[0].table.collect()}
    assert got == {"id0000": -1.0, "id0001": -1.0, "id0002": 500.0}


def test_refusals(tmp_path, session):
    p, y = np.array([0.2, 0.7]), np.array([0.0, 1.0])
    with pytest.raises(ComponentError, match="not supported: Scorecard of multiclass"):
        _run(tmp_path, session, {}, predictions(session, p, y, detail=True))
    raw = Dataset(session.parallelize([("a", Instance(np.array([1.0]), 0.0))]),
                  instances_meta(TableMeta(namespace="u", name="raw"), ["x"], "y"))
    with pytest.raises(ComponentError, match="no predict_score"):
        _run(tmp_path / "r", session, {}, raw)
    with pytest.raises(ComponentError, match="need_run false"):
        run_parties(tmp_path / "h", Scorecard, {HOST: (session, {}, Inputs())})
    with pytest.raises(ValidationError, match="not supported: Scorecard method 'woe'"):
        ScorecardParams(method="woe")
    with pytest.raises(ValidationError, match="factor_base must be positive and not 1"):
        ScorecardParams(factor_base=1)
    with pytest.raises(ValidationError):
        ScorecardParams(offset="500")
