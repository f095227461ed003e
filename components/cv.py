"""FATE's k-fold cross-validation (``cv_param.need_cv``) around any trained component.

Folds. The fold of a sample depends only on its id and the shared settings: the ids are
ranked (in their natural order, or with ``shuffle`` by an HMAC-SHA256 of the id keyed with
``random_seed``) and cut into ``n_splits`` contiguous folds whose sizes differ by at most one
(the first ``n % k`` folds get one more, as scikit-learn's KFold that FATE uses). Parties that
hold the same ids (after Intersection) thus get the same folds without exchanging ids. In a
vertical job the guest sends each host its seed and one digest per fold of the fold's ids (no
ids); a host holding other ids stops with a clear error. In a horizontal job (``Homo*``) each
party folds its own rows, as in FATE. ``random_seed: null`` with ``shuffle``: the guest (each
party, horizontally) draws one.

Per fold i the component trains on the other folds through its own entry point (federation
tags suffixed ``cv<i>``; the held-out fold is its ``validate_data`` when the conf asks for
validation, as FATE's ``fit(train, validate)``), then predicts fold i with that model (tags
``cv<i>p``). Where the predictions carry labels (the guest; every party horizontally) both
the training and the held-out predictions are evaluated with the component's ``metrics``, or
FATE's defaults for the task: binary auc/ks, multi accuracy/precision/recall, regression
rmse/mae.

Metrics: ``train_fold_<i>`` and ``validate_fold_<i>`` per fold, ``train_mean``/``validate_mean``
and ``train_std``/``validate_std`` over the folds, ``cv`` (n_splits, fold_sizes); what the
component logs itself in fold i goes under ``fold_<i>.<its namespace>``. No model is output
(FATE's CV outputs none). The output data is the fold history, keys ``<id>#fold<i>#train`` or
``#validate``: the predictions (``history_value_type: score``; on a party without predictions,
the fold number), or the rows themselves (``instance``); with ``output_fold_history: false``
the input data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Any, Iterable

import numpy as np

from components.base import (
    Component,
    Context,
    CVParam,
    Dataset,
    Inputs,
    Instance,
    Outputs,
    Params,
    Tracker,
    instances_meta,
    keys_in,
)
from components.linear.hetero_validation import DEFAULT_METRICS, scalar_metrics
from flow.core.errors import ComponentError

KINDS = ("train", "validate")


# ---------------------------------------------------------------- folds
def natural_key(key: Any) -> tuple:
    """Integer ids by value, then any other id by its text (so ``9`` comes before ``10``)."""
    text = str(key)
    try:
        return (0, int(text), text)
    except ValueError:
        return (1, 0, text)


def keyed_hash(key: Any, seed: int) -> bytes:
    return hmac.new(str(seed).encode(), str(key).encode(), hashlib.sha256).digest()


def assign_folds(ids: Iterable[Any], n_splits: int, shuffle: bool, seed: int | None) -> dict[Any, int]:
    """id -> fold (0..n_splits-1); the same ids give the same folds on every party."""
    order = sorted(ids, key=natural_key)
    if shuffle:
        order.sort(key=lambda k: keyed_hash(k, seed or 0))  # stable: the natural order breaks ties
    n = len(order)
    if n < n_splits:
        raise ComponentError(f"cv_param.n_splits is {n_splits}, but there are only {n} samples")
    folds, start = {}, 0
    for fold in range(n_splits):
        size = n // n_splits + (1 if fold < n % n_splits else 0)
        folds.update((k, fold) for k in order[start:start + size])
        start += size
    return folds


def fold_digests(folds: dict[Any, int], n_splits: int) -> list[str]:
    """One SHA-256 per fold of its sorted ids: equal on two parties iff their folds are."""
    members: list[list[str]] = [[] for _ in range(n_splits)]
    for key, fold in folds.items():
        members[fold].append(str(key))
    return [hashlib.sha256("\n".join(sorted(m)).encode()).hexdigest() for m in members]


def _keys_out(keys: frozenset):
    def keep(key, _value) -> bool:
        return key not in keys
    return keep


def _rekey(fold: int, kind: str, fold_value: bool):
    """(id, v) -> ("<id>#fold<i>#<kind>", v), or the fold number as the value."""
    def f(key, value):
        new = f"{key}#fold{fold}#{kind}"
        return (new, Instance(np.array([float(fold)]), None)) if fold_value else (new, value)
    return f


# ---------------------------------------------------------------- driver
@dataclass
class _FoldTracker:
    """A fold's view of the task's tracker: its metrics under ``fold_<i>.``, progress scaled."""

    base: Tracker
    fold: int
    folds: int

    def log_metric(self, namespace: str, name: str, value: Any) -> None:
        self.base.log_metric(f"fold_{self.fold}.{namespace}", name, value)

    def progress(self, done: int, total: int, message: str = "") -> None:
        if total:
            self.base.progress(self.fold * total + done, self.folds * total, message)


def _fold_ctx(ctx: Context, fold: int, stage: str, k: int) -> Context:
    prefix = ".".join(p for p in (ctx.tag_prefix, f"cv{fold}{stage}") if p)
    return replace(ctx, tag_prefix=prefix, tracker=_FoldTracker(ctx.tracker, fold, k))


def _validating(params: Params) -> bool:
    """Whether the conf asks for validation during training (then the held-out fold is it)."""
    cb = getattr(params, "callback_param", None) or {}
    return bool(getattr(params, "validation_freqs", None) or getattr(params, "early_stopping_rounds", None)
                or cb.get("validation_freqs"))


def cross_validate(component: Component, ctx: Context, params: Params, inputs: Inputs) -> Outputs:
    cv: CVParam = params.cv_param  # type: ignore[attr-defined]
    k = cv.n_splits
    fold_params = params.model_copy(update={"cv_param": cv.model_copy(update={"need_cv": False})})
    ignored = [port for port in ("validate_data", "test_data") if port in inputs.data]
    if ignored:
        ctx.logger.warning("cross-validation uses train_data only; %s not used", ", ".join(ignored))
    if ctx.role == "arbiter":  # no data: trains and predicts along with the others, fold by fold
        for i in range(k):
            fitted = component.run(_fold_ctx(ctx, i, "", k), fold_params, Inputs())
            component.run(_fold_ctx(ctx, i, "p", k), fold_params, Inputs(model=[fitted.model or {}]))
        return Outputs()
    data = inputs.require(ctx.component, "train_data", "data")
    folds = agree_folds(ctx, cv, data.table.keys(),
                        horizontal=component.module.startswith("Homo"))
    sizes = [sum(1 for f in folds.values() if f == i) for i in range(k)]
    ctx.tracker.log_metric("cv", "n_splits", k)
    ctx.tracker.log_metric("cv", "fold_sizes", sizes)
    scores: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    history: list[Dataset] = []
    for i in range(k):
        held_out = frozenset(key for key, f in folds.items() if f == i)
        train = Dataset(data.table.filter(_keys_out(held_out)), data.meta)
        test = Dataset(data.table.filter(keys_in(held_out)), data.meta)
        ctx.logger.info("cv fold %d of %d: training on %d rows, validating on %d", i + 1, k,
                        len(folds) - len(held_out), len(held_out))
        fit_data = {"train_data": train, **({"validate_data": test} if _validating(params) else {})}
        fitted = component.run(_fold_ctx(ctx, i, "", k), fold_params,
                               Inputs(data=fit_data, all_data={p: [d] for p, d in fit_data.items()}))
        if fitted.model is None:
            raise ComponentError(f"{ctx.component}: {component.module} gave no model to predict fold {i} with")
        predicted = component.run(_fold_ctx(ctx, i, "p", k), fold_params,
                                  Inputs(data={"test_data": test}, all_data={"test_data": [test]},
                                         model=[fitted.model]))
        preds = {"train": _predictions(fitted, "train"), "validate": _predictions(predicted, None)}
        for kind, rows in (("train", train), ("validate", test)):
            pred = preds[kind]
            if pred is not None and pred.meta.label_column is not None:
                found = evaluate(ctx, component, params, pred, f"{kind} rows of fold {i}")
                for name, value in found.items():
                    ctx.tracker.log_metric(f"{kind}_fold_{i}", name, value)
                scores[kind].append(found)
            if cv.output_fold_history:
                history.append(_history(rows, pred, i, kind, cv.value_type))
    _log_summary(ctx, scores)
    if not cv.output_fold_history:
        return Outputs(data=[data])
    table = history[0].table
    for part in history[1:]:
        table = table.union(part.table)
    meta = history[0].meta
    return Outputs(data=[Dataset(table, meta.model_copy(update={"extra": {**meta.extra, "type": "cv_history"}}))])


def agree_folds(ctx: Context, cv: CVParam, ids: list[Any], horizontal: bool) -> dict[Any, int]:
    """This party's folds; vertically the hosts take the guest's seed and check their folds
    against the guest's digests (FATE sends the ids instead)."""
    seed = cv.random_seed if cv.random_seed is not None or not cv.shuffle else secrets.randbelow(2 ** 31)
    if horizontal:
        return assign_folds(ids, cv.n_splits, cv.shuffle, seed)
    tag, guest = ctx.tag("cv_folds"), ctx.role_parties("guest")
    if ctx.role == "guest":
        folds = assign_folds(ids, cv.n_splits, cv.shuffle, seed)
        plan = {"n_splits": cv.n_splits, "shuffle": cv.shuffle, "seed": seed,
                "digests": fold_digests(folds, cv.n_splits)}
        ctx.federation.remote(plan, "cv_folds", tag, ctx.role_parties("host"))
        return folds
    (plan,) = ctx.federation.get("cv_folds", tag, guest)
    where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
    if (plan["n_splits"], plan["shuffle"]) != (cv.n_splits, cv.shuffle):
        raise ComponentError(f"{where}: cv_param n_splits/shuffle {cv.n_splits}/{cv.shuffle} differ from the "
                             f"guest's {plan['n_splits']}/{plan['shuffle']}")
    folds = assign_folds(ids, cv.n_splits, cv.shuffle, plan["seed"])
    if fold_digests(folds, cv.n_splits) != list(plan["digests"]):
        raise ComponentError(f"{where}: this party's {len(ids)} sample ids differ from the guest's, so the "
                             "cross-validation folds would differ; run Intersection before it")
    return folds


def _predictions(outputs: Outputs, kind: str | None) -> Dataset | None:
    """The first prediction table of ``outputs`` (of type ``kind`` when given)."""
    for ds in outputs.data:
        if "predict_result" in ds.meta.feature_columns and kind in (None, ds.meta.extra.get("type")):
            return ds
    return None


def eval_type(component: Component, params: Params, pred: Dataset) -> str:
    """FATE's eval_type of a component's predictions: binary, multi or regression."""
    loss = getattr(component, "loss", None)
    if "regression" in (getattr(params, "task_type", None), getattr(params, "task", None)) or (
            loss is not None and not getattr(loss, "classifier", True)):
        return "regression"
    if any(c.startswith("predict_detail_") for c in pred.meta.feature_columns):
        return "multi"
    return "binary"


def evaluate(ctx: Context, component: Component, params: Params, pred: Dataset, what: str) -> dict[str, float]:
    """The component's metrics (``metrics``, else FATE's defaults for the task) of one
    prediction table; binary with label 1 as the positive class (FATE's pos_label)."""
    task = eval_type(component, params, pred)
    cols = pred.meta.feature_columns
    ir, isc = cols.index("predict_result"), cols.index("predict_score") if "predict_score" in cols else None
    rows = [(inst.label, inst.features[ir], inst.features[ir if isc is None else isc])
            for _, inst in pred.table.collect()]
    if not rows or any(label is None for label, _, _ in rows):
        raise ComponentError(f"{ctx.component}: the {what} are empty or unlabelled")
    y, result, score = np.asarray(rows, dtype=float).T
    if task == "binary":
        y = (y == 1.0).astype(float)
        if len(np.unique(y)) < 2:
            raise ComponentError(f"{ctx.component}: the {what} hold one class only; AUC is undefined "
                                 "(use fewer n_splits or shuffle)")
    threshold = float(getattr(getattr(params, "predict_param", None), "threshold", 0.5))
    found = scalar_metrics(task, threshold, y, result, score)
    wanted = getattr(params, "metrics", None) or DEFAULT_METRICS[task]
    unknown = [m for m in wanted if m not in found]
    if unknown:
        ctx.logger.warning("metrics %s are not computed for %s cross-validation; skipped", unknown, task)
    return {m: found[m] for m in wanted if m in found}


def _log_summary(ctx: Context, scores: dict[str, list[dict[str, float]]]) -> None:
    """Mean and standard deviation over the folds of every metric each fold has."""
    for kind, per_fold in scores.items():
        if not per_fold:
            continue
        for name in per_fold[0]:
            values = np.array([fold[name] for fold in per_fold], dtype=float)
            ctx.tracker.log_metric(f"{kind}_mean", name, float(values.mean()))
            ctx.tracker.log_metric(f"{kind}_std", name, float(values.std()))
        ctx.logger.info("cv %s mean over %d folds: %s", kind, len(per_fold),
                        ", ".join(f"{n}={np.mean([f[n] for f in per_fold]):.6f}" for n in per_fold[0]))


def _history(rows: Dataset, pred: Dataset | None, fold: int, kind: str, value_type: str) -> Dataset:
    if value_type == "instance":
        return Dataset(rows.table.map(_rekey(fold, kind, False)), rows.meta)
    if pred is not None:
        return Dataset(pred.table.map(_rekey(fold, kind, False)), pred.meta)
    return Dataset(rows.table.map(_rekey(fold, kind, True)), instances_meta(rows.meta, ["fold_num"], None))
