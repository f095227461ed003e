"""Evaluation: metrics of a prediction table, by FATE's ``eval_type`` (binary, multi, regression).

Runs on the label holder. Scalar metrics and curves are stored per component, so
``flow tracking metrics`` shows them (namespace ``evaluation`` for one input; with several
inputs on ``data`` each is evaluated and kept under its upstream component's name): for
binary the ROC points and the KS curve; for every type the loss per iteration when the
upstream model left its loss history in the prediction table's meta (``extra["loss_history"]``).

Which column is read: binary uses ``predict_score`` (the positive class probability);
multi uses ``predict_result`` (the predicted class); regression uses ``predict_result``
(the predicted value, ``predict_score`` if there is no ``predict_result``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Outputs, Params
from components.evaluation.metrics import (
    binary_metrics,
    confusion_at,
    confusion_curve,
    ks_curve,
    multi_metrics,
    regression_metrics,
    roc_curve,
    roc_points,
    thin,
)
from flow.core.errors import ComponentError

__all__ = ["Evaluation", "EvaluationParams", "binary_metrics", "roc_points"]


class EvaluationParams(Params):
    eval_type: Literal["binary", "multi", "regression"] = "binary"
    pos_label: int | float | str = 1
    metrics: list[str] | None = None
    unfold_multi_result: bool = False
    run_clustering_arbiter_metric: bool = False


@dataclass(frozen=True)
class EvalType:
    """How one eval_type reads its prediction column and what it computes."""

    columns: tuple[str, ...]  # the first present one is read
    scalars: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    curves: Callable[[np.ndarray, np.ndarray], dict[str, Any]]
    #: FATE metric names this type knows but does not compute (skipped with a warning)
    not_computed: frozenset[str] = frozenset()


EVAL_TYPES: dict[str, EvalType] = {
    "binary": EvalType(("predict_score",), binary_metrics,
                       lambda y, s: {"roc_curve": roc_curve(y, s), "ks_curve": ks_curve(y, s),
                                     "confusion_curve": confusion_curve(y, s), "confusion_matrix": confusion_at(y, s)},
                       frozenset({"lift", "gain", "psi", "precision_table", "recall_table"})),
    "multi": EvalType(("predict_result",), multi_metrics, lambda y, p: {}),
    "regression": EvalType(("predict_result", "predict_score"), regression_metrics, lambda y, p: {},
                           frozenset({"mean_squared_log_error"})),
}
#: names in ``metrics`` that select more than one stored metric (or a curve)
ALIASES = {"roc": ("roc_curve",), "ks": ("ks", "ks_curve"), "loss": ("loss_curve",),
           "confusion": ("confusion_curve", "confusion_matrix")}


class Evaluation(Component):
    module = "Evaluation"
    params_model = EvaluationParams
    roles = ("guest", "host")
    input_data = ("data",)

    def host(self, ctx: Context, params: EvaluationParams, inputs: Inputs) -> Outputs:
        """Hosts of horizontal models hold their own labels and predictions; hosts of
        vertical ones hold neither, and have nothing to evaluate."""
        columns = EVAL_TYPES[params.eval_type].columns
        sources = [(up, source) for up, source in self._sources(inputs)
                   if source.meta.label_column is not None and any(c in source.meta.feature_columns for c in columns)]
        if not sources:
            ctx.logger.info("no labelled predictions on this party: nothing to evaluate")
            return Outputs()
        return self._evaluate(ctx, params, sources, several=len(self._sources(inputs)) > 1)

    def guest(self, ctx: Context, params: EvaluationParams, inputs: Inputs) -> Outputs:
        sources = self._sources(inputs)
        if not sources:
            raise ComponentError(f"{ctx.component}: no input data (connect it to a component's prediction output)")
        return self._evaluate(ctx, params, sources, several=len(sources) > 1)

    @staticmethod
    def _sources(inputs: Inputs) -> list[tuple[str, Dataset]]:
        """Every input on ``data`` with the upstream component it came from (FATE evaluates
        each and keeps its metrics under that component's name)."""
        data = inputs.all_data.get("data") or ([inputs.data["data"]] if "data" in inputs.data else [])
        names = inputs.sources.get("data") or []
        return [(names[i] if i < len(names) else "", ds) for i, ds in enumerate(data)]

    def _evaluate(self, ctx: Context, params: EvaluationParams, sources: list[tuple[str, Dataset]],
                  several: bool) -> Outputs:
        """One input: metrics in namespace ``evaluation``; several: each input's metrics in the
        namespace of its upstream component (``hetero_lr_0``, ``secureboost_0``), as FATE does."""
        if several:
            unnamed = [ds.meta.name for up, ds in sources if not up]
            if unnamed:
                raise ComponentError(f"{ctx.component}: several inputs, but the upstream component of "
                                     f"{', '.join(unnamed)} is unknown")
        for up, source in sources:
            self._evaluate_one(ctx, params, source, up if several else "evaluation")
        return Outputs()

    def _evaluate_one(self, ctx: Context, params: EvaluationParams, source: Dataset, namespace: str) -> None:
        kind = EVAL_TYPES[params.eval_type]
        y, pred = self._read(ctx, params, source, kind)
        scalars = kind.scalars(y, pred)
        curves = kind.curves(y, pred)
        losses = source.meta.extra.get("loss_history")
        if losses:
            curves["loss_curve"] = thin({"iteration": list(range(len(losses))), "loss": [float(v) for v in losses]})
        wanted = self._wanted(ctx, params, kind, scalars, curves)
        for name, value in {**scalars, **curves}.items():
            if wanted is None or name in wanted:
                ctx.tracker.log_metric(namespace, name, value)
        ctx.logger.info("%s evaluation of %d rows%s: %s", params.eval_type, len(y),
                        "" if namespace == "evaluation" else f" from {namespace}",
                        ", ".join(f"{k}={v:.6f}" for k, v in scalars.items()))

    @staticmethod
    def _read(ctx: Context, params: EvaluationParams, source: Dataset, kind: EvalType) -> tuple[np.ndarray, ...]:
        cols = source.meta.feature_columns
        column = next((c for c in kind.columns if c in cols), None)
        if column is None:
            raise ComponentError(f"{ctx.component}: input {source.meta.name} has no {' or '.join(kind.columns)} "
                                 f"column; Evaluation (eval_type {params.eval_type}) expects a model's "
                                 "prediction output")
        i = cols.index(column)
        pairs = [(inst.label, inst.features[i]) for _, inst in source.table.collect()]
        if not pairs:
            raise ComponentError(f"{ctx.component}: input {source.meta.name} is empty")
        if any(label is None for label, _ in pairs):
            raise ComponentError(f"{ctx.component}: input {source.meta.name} has rows without a label")
        arr = np.array(pairs, dtype=float)
        y, pred = arr[:, 0], arr[:, 1]
        if params.eval_type == "binary":
            try:
                pos = float(params.pos_label)
            except ValueError:
                raise ComponentError(f"{ctx.component}: pos_label {params.pos_label!r} is not a number") from None
            y = (y == pos).astype(int)
        return y, pred

    @staticmethod
    def _wanted(ctx: Context, params: EvaluationParams, kind: EvalType, scalars: dict, curves: dict) -> set | None:
        """The metric names to store (None: all); unknown names are an error."""
        if params.metrics is None:
            return None
        wanted, unknown = set(), []
        for name in params.metrics:
            if name in ALIASES or name in scalars or name in curves:
                wanted.update(ALIASES.get(name, (name,)))
            elif name in kind.not_computed:
                ctx.logger.warning("metric %s is not computed for eval_type %s; skipped", name, params.eval_type)
            else:
                unknown.append(name)
        if unknown:
            known = sorted(set(scalars) | set(curves) | set(ALIASES))
            raise ComponentError(f"{ctx.component}: metrics {unknown} unknown for eval_type {params.eval_type} "
                                 f"(known: {', '.join(known)})")
        return wanted
