"""Evaluation's confusion counts (what the board's PR, lift, gain and confusion charts are
drawn from) against scikit-learn on the same arrays, ties and thinning included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from components.evaluation.metrics import CURVE_POINTS, confusion_at, confusion_curve


@pytest.mark.parametrize("n, decimals", [(300, 2), (5000, 6)])  # tied scores; a curve thinned to 200 points
def test_confusion_curve_counts_equal_scikit_learn(n: int, decimals: int):
    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, n)
    score = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), decimals)
    curve = confusion_curve(y, score)
    assert curve["threshold"][0] is None and curve["tp"][0] == curve["fp"][0] == 0  # nothing called positive
    assert len(curve["tp"]) <= CURVE_POINTS + 1 and curve["tp"][-1] == y.sum() and curve["tn"][-1] == 0
    for i, t in enumerate(curve["threshold"][1:], start=1):
        tn, fp, fn, tp = skm.confusion_matrix(y, (score >= t).astype(int), labels=[0, 1]).ravel()
        assert [curve[k][i] for k in ("tn", "fp", "fn", "tp")] == [tn, fp, fn, tp]
    precision, recall, thresholds = skm.precision_recall_curve(y, score)
    by = dict(zip(thresholds.tolist(), zip(precision, recall)))
    for i, t in enumerate(curve["threshold"][1:], start=1):
        tp, fp = curve["tp"][i], curve["fp"][i]
        assert (tp / (tp + fp), tp / y.sum()) == pytest.approx(by[t], abs=1e-12)


def test_confusion_at_the_metrics_threshold():
    y = np.array([0, 0, 1, 1, 1, 0])
    score = np.array([0.1, 0.5, 0.5, 0.9, 0.2, 0.7])
    tn, fp, fn, tp = skm.confusion_matrix(y, (score >= 0.5).astype(int)).ravel()
    assert confusion_at(y, score) == {"threshold": 0.5, "tp": tp, "fp": fp, "fn": fn, "tn": tn}
