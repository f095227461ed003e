"""HeteroSecureBoost: vertical gradient boosting; the guest holds labels and the Paillier key.

Hosts see only ciphertexts of the guest's gradients and hessians and the partition of
samples into nodes; the guest sees only decrypted histogram sums of hosts' features
and never a host's feature or threshold (it stores ``(host party id, split id)``).
Each party's model holds only its own part: the guest's the trees, its own splits and
the leaf weights; a host's its split table. Prediction walks the trees together
(see :func:`components.tree.tree.walk`).

FATE's options: ``use_missing``/``zero_as_missing`` (a missing value follows the direction
each split learned, see histogram.py), ``complete_secure`` (the first rounds are the
guest's alone, see plan.py), ``EINI_inference`` (prediction without the walk, see eini.py).
Both parties' models carry ``feature_importance``: a list, highest gain first, of
``{"party", "feature", "split", "importance"}`` (+ ``"gain"`` on the guest, whose host
entries are one per host with ``feature`` None); ``importance`` is the split count or the
gain as ``feature_importance_type`` says (a host: always its split count, as FATE).

With ``input.model`` and no ``train_data`` the component predicts with that model. With
``validate_data`` (on every party) the trained ensemble scores it and the guest logs its
loss (and accuracy) under the ``validate`` metrics; the output data are the training rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, detail_columns, instances_meta
from components.tree.eini import eini_guest_scores, eini_host
from components.tree.guest import GuestTrainer, guest_walk, ids_digest
from components.tree.histogram import missing_mask
from components.tree.host import HostTrainer, check_values, host_walk
from components.tree.objective import Objective, make_objective
from components.tree.params import HeteroSecureBoostParams
from components.tree.plan import TreePlan
from components.tree.tree import Tree, guest_importance, host_importance
from flow.core.errors import ComponentError


def split_table(model: dict) -> list[tuple[int, float, bool]]:
    """A party's stored splits as (feature index, threshold, missing goes left)."""
    header = list(model["header"])
    return [(header.index(s["feature"]), float(s["threshold"]), bool(s.get("missing_left", False)))
            for s in model["splits"]]


def stored_splits(header: list[str], splits: list[tuple[int, float, bool]]) -> list[dict[str, Any]]:
    return [{"feature": header[f], "threshold": thr, "missing_left": m} for f, thr, m in splits]


def missing_of(model: dict, x: np.ndarray) -> np.ndarray | None:
    """The mask of values a model routes by its learned directions (None without use_missing)."""
    return missing_mask(x, bool(model.get("zero_as_missing"))) if model.get("use_missing") else None


def load(ds: Dataset, need_label: bool, component: str) -> tuple[list[Any], list[str], np.ndarray, np.ndarray | None]:
    """Keys, their string forms, features (n, f) and labels, ordered by key so parties agree."""
    pairs = sorted(ds.table.collect(), key=lambda kv: str(kv[0]))
    if not pairs:
        raise ComponentError(f"{component}: input table {ds.meta.name} has no rows")
    keys = [k for k, _ in pairs]
    x = np.stack([np.asarray(v.features, dtype=np.float64) for _, v in pairs])
    y = None
    if need_label:
        labels = [v.label for _, v in pairs]
        if any(v is None for v in labels):
            raise ComponentError(f"{component}: input table {ds.meta.name} has rows without a label")
        y = np.asarray(labels, dtype=np.float64)
    return keys, [str(k) for k in keys], x, y


class HeteroSecureBoost(Component):
    module = "HeteroSecureBoost"
    params_model = HeteroSecureBoostParams
    roles = ("guest", "host")
    input_data = ("train_data", "validate_data", "data", "test_data")
    accepts_model = True
    output_model = True

    @staticmethod
    def plan(p: HeteroSecureBoostParams, hosts: tuple[str, ...], tree_dim: int) -> TreePlan:
        """Who may split where (see components/tree/plan.py); HeteroFastSecureBoost overrides."""
        return TreePlan(hosts, tree_dim, guest_only_rounds=p.guest_only_rounds)

    @staticmethod
    def _mode(ctx: Context, inputs: Inputs) -> tuple[Dataset, dict | None]:
        """(data, model to predict with, or None to train)."""
        if "train_data" in inputs.data or not inputs.model:
            return inputs.require(ctx.component, "train_data", "data"), None
        return inputs.require(ctx.component, "test_data", "data"), inputs.model[0]

    # ------------------------------------------------------------------ guest
    def guest(self, ctx: Context, p: HeteroSecureBoostParams, inputs: Inputs) -> Outputs:
        data, model = self._mode(ctx, inputs)
        keys, ids, x, y = load(data, model is None, ctx.component)
        if model is not None:
            return self._guest_predict(ctx, p, data, model, keys, ids, x)
        check_values(x, p.missing[0], ctx.component, "train_data")
        header = data.meta.feature_columns
        task, classes = p.task, np.unique(y)
        if task == "classification":
            task = "binary" if len(classes) <= 2 else "multiclass"
        objective = make_objective(task, len(classes), ctx.component)
        y_fit = np.searchsorted(classes, y).astype(np.float64) if objective.classifier else y
        hosts = tuple(h.party_id for h in ctx.role_parties("host"))
        trainer = GuestTrainer(ctx, p, x, y_fit, objective, ids, self.plan(p, hosts, objective.tree_dim))
        trees, init, scores, losses = trainer.fit()
        model = {
            "header": header, "task": task, "classes": classes.tolist() if objective.classifier else [],
            "learning_rate": p.learning_rate, "init_score": init, "tree_dim": objective.tree_dim,
            "trees": [t.to_json() for t in trees], "hosts": [h.party_id for h in ctx.role_parties("host")],
            "splits": stored_splits(header, trainer.splits),
            "loss_history": losses, "threshold": p.predict_param.threshold,
            "use_missing": trainer.use_missing, "zero_as_missing": trainer.zero_as_missing,
            "feature_importance_type": p.tree_param.feature_importance_type,
        }
        model["feature_importance"] = guest_importance(trees, [header[f] for f, _, _ in trainer.splits],
                                                       p.tree_param.feature_importance_type)
        predicted = self._walk_scores(ctx, model, x, "predict")
        if not np.allclose(predicted, scores, atol=1e-9):  # the walk must reproduce the training positions
            raise ComponentError(f"{ctx.component}: the prediction walk disagrees with training")
        ctx.tracker.log_metric("train", "loss", losses)
        ctx.tracker.log_metric("train", "trees", len(trees))
        self._guest_validate(ctx, inputs, model, objective)
        out = self._output(ctx, data, model, keys, y, scores, "train")
        out.meta.extra["loss_history"] = list(losses)
        return Outputs(data=[out], model=model)

    def _guest_validate(self, ctx: Context, inputs: Inputs, model: dict, objective: Objective) -> None:
        """With ``validate_data``: score it with the trained ensemble (the walk) and log its metrics."""
        hosts = ctx.role_parties("host")
        data = inputs.data.get("validate_data")
        if data is None:
            ctx.federation.remote({"ids": None}, "sbt_validate", ctx.tag(), hosts)
            return
        self._check_header(ctx, data, model)
        _, ids, x, y = load(data, True, ctx.component)
        check_values(x, bool(model["use_missing"]), ctx.component, "validate_data")
        ctx.federation.remote({"ids": ids_digest(ids)}, "sbt_validate", ctx.tag(), hosts)
        pred = objective.predict(self._walk_scores(ctx, model, x, "validate"))
        if objective.classifier:
            classes = np.asarray(model["classes"])
            known = np.isin(y, classes)
            p_true = pred[known, np.searchsorted(classes, y[known])]
            metrics = {"accuracy": float((classes[pred.argmax(axis=1)] == y).mean()),
                       "loss": float(-np.mean(np.log(np.clip(p_true, 1e-15, None)))) if known.any() else None}
        else:
            metrics = {"loss": float(np.mean((pred - y) ** 2))}
        for name, value in metrics.items():
            ctx.tracker.log_metric("validate", name, value)
        ctx.logger.info("validation: %s", metrics)

    def _guest_predict(self, ctx: Context, p: HeteroSecureBoostParams, data: Dataset, model: dict,
                       keys: list, ids: list[str], x: np.ndarray) -> Outputs:
        self._check_header(ctx, data, model)
        hosts = ctx.role_parties("host")
        if [h.party_id for h in hosts] != list(model["hosts"]):
            raise ComponentError(f"{ctx.component}: the model was trained with hosts {model['hosts']}, "
                                 f"this job has {[h.party_id for h in hosts]}")
        check_values(x, bool(model.get("use_missing")), ctx.component, "the data to predict")
        ctx.federation.remote({"ids": ids_digest(ids), "eini": p.EINI_inference}, "sbt_predict_setup", ctx.tag(), hosts)
        if p.EINI_inference:
            scores = eini_guest_scores(ctx, p, model, x, split_table(model), missing_of(model, x))
        else:
            scores = self._walk_scores(ctx, model, x, "predict")
        labels = np.array([np.nan if inst.label is None else inst.label for _, inst in
                           sorted(data.table.collect(), key=lambda kv: str(kv[0]))], dtype=np.float64)
        return Outputs(data=[self._output(ctx, data, model, keys, labels, scores, "predict")], model=model)

    @staticmethod
    def _check_header(ctx: Context, data: Dataset, model: dict) -> None:
        if list(data.meta.feature_columns) != list(model.get("header", [])):
            raise ComponentError(f"{ctx.component}: the data's features {data.meta.feature_columns} are not the "
                                 f"model's {model.get('header')}")

    @staticmethod
    def _walk_scores(ctx: Context, model: dict, x: np.ndarray, prefix: str) -> np.ndarray:
        trees = [Tree.from_json(t) for t in model["trees"]]
        leaves = guest_walk(ctx, trees, x, split_table(model), prefix, missing_of(model, x))
        scores = np.tile(np.asarray(model["init_score"], dtype=np.float64), (len(x), 1))
        for t, tree in enumerate(trees):
            scores[:, tree.dim] += float(model["learning_rate"]) * tree.weights()[leaves[t]]
        return scores

    def _output(self, ctx: Context, data: Dataset, model: dict, keys: list, y: np.ndarray,
                scores: np.ndarray, kind: str) -> Dataset:
        objective: Objective = make_objective(model["task"], max(len(model["classes"]), 1), ctx.component)
        pred = objective.predict(scores)
        classes = np.asarray(model["classes"], dtype=np.float64)
        if model["task"] == "regression":
            cols, rows = ["predict_result", "predict_score"], np.stack([pred, pred], axis=1)
        elif model["task"] == "binary":
            result = np.where(pred[:, 1] >= model["threshold"], classes[-1], classes[0])
            cols, rows = ["predict_result", "predict_score"], np.stack([result, pred[:, 1]], axis=1)
        else:
            best = pred.argmax(axis=1)
            cols = ["predict_result", "predict_score"] + detail_columns(classes)
            rows = np.column_stack([classes[best], pred[np.arange(len(best)), best], pred])
        items = [(k, Instance(r, None if np.isnan(lab) else float(lab))) for k, r, lab in zip(keys, rows, y)]
        table = ctx.computing.parallelize(items, data.table.partitions)
        return Dataset(table, instances_meta(data.meta, cols, "label", type=kind))

    # ------------------------------------------------------------------ host
    def host(self, ctx: Context, p: HeteroSecureBoostParams, inputs: Inputs) -> Outputs:
        data, model = self._mode(ctx, inputs)
        training = model is None
        _, ids, x, _ = load(data, False, ctx.component)
        header = data.meta.feature_columns
        if model is None:
            trainer = HostTrainer(ctx, p, x, ids)
            splits = trainer.fit()
            model = {"header": header, "splits": stored_splits(header, splits),
                     "use_missing": trainer.use_missing, "zero_as_missing": trainer.zero_as_missing,
                     # as FATE since 1.7.2: a host counts its splits; gains stay with the guest
                     "feature_importance_type": "split",
                     "feature_importance": host_importance(ctx.local.party_id, [header[f] for f, _, _ in splits])}
        else:
            self._check_header(ctx, data, model)
            (setup,) = ctx.federation.get("sbt_predict_setup", ctx.tag(), ctx.role_parties("guest"))
            if setup.get("ids") != ids_digest(ids):
                raise ComponentError(f"{ctx.component}: this host's samples differ from the guest's; "
                                     "run Intersection before HeteroSecureBoost")
            check_values(x, bool(model.get("use_missing")), ctx.component, "the data to predict")
            if setup.get("eini"):
                eini_host(ctx, x, split_table(model), missing_of(model, x))
                return Outputs(model=model)
        host_walk(ctx, x, split_table(model), "predict", missing_of(model, x))
        if training:
            self._host_validate(ctx, inputs, model)
        return Outputs(model=model)

    def _host_validate(self, ctx: Context, inputs: Inputs, model: dict) -> None:
        (msg,) = ctx.federation.get("sbt_validate", ctx.tag(), ctx.role_parties("guest"))
        data = inputs.data.get("validate_data")
        if msg["ids"] is None:
            return
        if data is None:
            raise ComponentError(f"{ctx.component}: the guest validates on validate_data; connect this host's too")
        self._check_header(ctx, data, model)
        _, ids, x, _ = load(data, False, ctx.component)
        if msg["ids"] != ids_digest(ids):
            raise ComponentError(f"{ctx.component}: this host's validate_data samples differ from the guest's; "
                                 "run Intersection on them first")
        check_values(x, bool(model["use_missing"]), ctx.component, "validate_data")
        host_walk(ctx, x, split_table(model), "validate", missing_of(model, x))
