"""Evaluation: binary metrics of a prediction table (AUC, KS, accuracy, precision, recall, F1).

Runs on the label holder; the metrics are stored per component so ``flow tracking
metrics`` shows them, along with the ROC and KS curve points.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from components.base import Component, Context, Inputs, Outputs, Params
from flow.errors import ComponentError


class EvaluationParams(Params):
    eval_type: Literal["binary"] = "binary"
    pos_label: int = 1
    metrics: list[str] | None = None
    unfold_multi_result: bool = False
    run_clustering_arbiter_metric: bool = False


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (descending), ties grouped."""
    order = np.argsort(-score, kind="mergesort")
    y, score = y[order], score[order]
    distinct = np.r_[np.nonzero(np.diff(score))[0], len(score) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(tps[-1], 1), max(fps[-1], 1)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos], np.r_[np.inf, score[distinct]]


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    if len(np.unique(y)) < 2:
        raise ComponentError("evaluation needs both classes among the labels")
    fpr, tpr, _ = roc_points(y, score)
    pred = (score >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "auc": float(np.trapezoid(tpr, fpr)),
        "ks": float(np.max(tpr - fpr)),
        "accuracy": float((pred == y).mean()),
        "precision": precision,
        "recall": recall,
        "f1_score": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


class Evaluation(Component):
    module = "Evaluation"
    params_model = EvaluationParams
    roles = ("guest",)
    input_data = ("data",)

    def guest(self, ctx: Context, params: EvaluationParams, inputs: Inputs) -> Outputs:
        source = inputs.data.get("data")
        if source is None:
            raise ComponentError(f"{ctx.component}: no input data (connect it to a component's prediction output)")
        cols = source.meta.feature_columns
        if "predict_score" not in cols:
            raise ComponentError(f"{ctx.component}: input {source.meta.name} has no predict_score column; "
                                 "Evaluation expects a model's prediction output")
        si = cols.index("predict_score")
        pairs = np.array([(inst.label, inst.features[si]) for _, inst in source.table.collect()], dtype=float)
        y = (pairs[:, 0] == params.pos_label).astype(int)
        result = binary_metrics(y, pairs[:, 1])
        fpr, tpr, thr = roc_points(y, pairs[:, 1])
        for name, value in result.items():
            ctx.tracker.log_metric("evaluation", name, value)
        step = max(1, len(fpr) // 200)  # keep the stored curve small
        ctx.tracker.log_metric("evaluation", "roc_curve", {
            "fpr": fpr[::step].tolist(), "tpr": tpr[::step].tolist(),
            "threshold": [None if not np.isfinite(t) else float(t) for t in thr[::step]]})
        ctx.logger.info("binary evaluation of %d rows: %s", len(y),
                        ", ".join(f"{k}={v:.6f}" for k, v in result.items()))
        return Outputs()
