"""The guest's validation of a vertical linear model on ``validate_data`` (FATE's
``validation_freqs``, ``metrics`` and ``early_stopping_rounds``). :class:`Validator` is
generic (a scored table in, metrics out): HomoLR uses it on each party's own rows.

Every ``validation_freqs`` iterations (and once after training) the hosts send their wx
of the validate rows, as they do for the training rows at the end; the guest scores them
and keeps the metrics. With ``early_stopping_rounds`` the guest tells the arbiter to stop
once the first metric has not improved for that many validation rounds; the model kept
is the last one. One-vs-rest models are validated after training only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from components.base import Context, Dataset
from components.evaluation.evaluation import EVAL_TYPES
from components.evaluation.metrics import binary_metrics
from components.linear.params import LinearParams
from flow.core.errors import ComponentError

#: metrics where more is better; for every other (the errors) less is
HIGHER_IS_BETTER = frozenset({"auc", "ks", "accuracy", "precision", "recall", "f1_score", "r2_score",
                              "explained_variance"})
#: the metrics kept per task when ``metrics`` names none
DEFAULT_METRICS = {"binary": ["auc", "ks"], "multi": ["accuracy", "precision", "recall"],
                   "regression": ["root_mean_squared_error", "mean_absolute_error"]}


def scalar_metrics(task: str, threshold: float, y: np.ndarray, result: np.ndarray,
                   score: np.ndarray) -> dict[str, float]:  # fmt: skip
    """What the Evaluation component computes for ``task`` (its eval_type) from the column it
    reads; binary metrics at the model's threshold, as its predict_result."""
    kind = EVAL_TYPES[task]
    pred = score if kind.columns[0] == "predict_score" else result
    return binary_metrics(y, pred, threshold) if task == "binary" else kind.scalars(y, pred)


@dataclass
class Validator:
    data: Dataset
    task: str  # binary, multi or regression
    threshold: float
    #: validate every this many iterations (None: after training only)
    every: int | None
    #: the metrics kept, in order; the first decides early stopping
    metrics: list[str]
    #: stop after this many validation rounds without improvement (None: never)
    patience: int | None
    #: judge early stopping on the first metric only; else any metric that stalls stops it
    first_only: bool = False
    #: the guest's validate rows (each must match a row on every host)
    rows: int = 0
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    @classmethod
    def for_guest(cls, ctx: Context, p: LinearParams, data: Dataset | None, task: str,
                  per_iteration: bool) -> Validator | None:  # fmt: skip
        if data is None:
            if p.early_stopping_rounds or p.validation_freqs:
                ctx.logger.warning("validation_freqs / early_stopping_rounds need validate_data; not validating")
            return None
        if data.meta.label_column is None:
            raise ComponentError(f"{ctx.component}: the {ctx.role}'s validate_data has no label")
        # the names the task's metrics have, read off one computation on two rows
        known = list(scalar_metrics(task, 0.5, np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0.2, 0.8])))
        unknown = [m for m in p.metrics or [] if m not in known]
        if unknown:
            raise ComponentError(f"{ctx.component}: metrics {unknown} are not computed for {task} validation; "
                                 f"known: {known}")
        every = p.validation_freqs if per_iteration and p.validation_freqs else None
        patience = p.early_stopping_rounds if every else None
        if p.early_stopping_rounds and not every:
            ctx.logger.warning("early_stopping_rounds needs validation_freqs (and one model, not one-vs-rest); "
                               "validating after training only")
        return cls(data, task, p.predict_param.threshold, every, list(p.metrics or DEFAULT_METRICS[task]), patience,
                   p.use_first_metric_only, data.table.count())

    def due(self, it: int) -> bool:
        return self.every is not None and (it + 1) % self.every == 0

    def evaluate(self, ctx: Context, scored: Dataset) -> dict[str, float]:
        """The kept metrics of a prediction table of the validate rows."""
        rows = np.array([np.r_[inst.label, inst.features[:2]] for _, inst in scored.table.collect()])
        if len(rows) == 0 or len(rows) != self.rows:
            raise ComponentError(f"{ctx.component}: of the {ctx.role}'s {self.rows} validate_data rows, {len(rows)} "
                                 "were scored (each must match a row on every host); run Intersection on them first")
        found = scalar_metrics(self.task, self.threshold, *rows.T)
        return {m: found[m] for m in self.metrics}

    def record(self, ctx: Context, it: int, metrics: dict[str, float]) -> bool:
        """Keep one round's metrics; True when training should stop (early stopping)."""
        self.history.append((it, metrics))
        ctx.logger.info("iteration %d validation: %s", it, ", ".join(f"{k}={v:.6f}" for k, v in metrics.items()))
        if not self.patience or len(self.history) <= self.patience:
            return False
        return any(self._stalled(name) for name in (self.metrics[:1] if self.first_only else self.metrics))

    def _stalled(self, name: str) -> bool:
        """Whether ``name`` has not improved for ``patience`` rounds (equal is no improvement)."""
        values = [m[name] for _, m in self.history]
        best = int(np.argmax(values) if name in HIGHER_IS_BETTER else np.argmin(values))
        return len(values) - 1 - best >= (self.patience or 0)

    def log(self, ctx: Context, final: dict[str, float]) -> None:
        for name, value in final.items():
            ctx.tracker.log_metric("validate", name, value)
        for name in self.metrics if self.history else []:
            curve = {"iteration": [it for it, _ in self.history], "value": [m[name] for _, m in self.history]}
            ctx.tracker.log_metric("validate_iterations", name, curve)
