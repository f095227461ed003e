"""HomoLR: horizontal logistic regression with secure aggregation at the arbiter.

Guest and hosts hold the same features of different rows, with labels. Each trains on
its own rows from the common model; every ``aggregate_iters`` epochs (and after the
last) each sends ``[n·w, n·b, n·loss, n]`` to the arbiter, masked with pairwise
cancelling masks (:mod:`components.crypto.secure_agg`), so the arbiter learns only
the sums: the sample-weighted average model, the weighted loss and the total count.
It checks convergence and sends the average back. With full batches, plain SGD and
``aggregate_iters`` 1 this is exactly gradient descent on the pooled rows.

Setup, once per run: each contributor sends the arbiter its feature names (all must
agree) and a fresh X25519 public key; the arbiter answers with the initial model and
relays the list of public keys. The arbiter is trusted to relay keys faithfully
(honest but curious), as it is in FATE.

Labels other than 0/1 train one-vs-rest: each party sends the
arbiter its set of labels with its feature names, the arbiter answers with the classes,
and one binary model per class ("this class or not") is trained after the other, each
aggregation round under masks of its own.

Validation (FATE's ``validate_data`` with ``validation_freqs``, or ``callback_param``'s
``validation_freqs``/``metrics``): each party scores its own validate rows with the model
it holds every ``validation_freqs`` epochs (the aggregated model after an aggregation
epoch) and once after training, and logs the metrics as HeteroLR's guest does
(``validate`` and ``validate_iterations``); nothing about them leaves the party. A
one-vs-rest model is validated after training only; early stopping is not done (the
parties would each decide on their own rows). ``test_data`` is scored with the trained
model after training. The output data is the train predictions (what Evaluation reads),
then the validate predictions and the test predictions, in that order, as extra tables.
A predict job takes the model on ``input.model`` and scores ``test_data`` (or ``data``).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.activation import sigmoid
from components.base import (
    Component,
    Context,
    Dataset,
    Inputs,
    Instance,
    Outputs,
    detail_columns,
    instances_meta,
    keys_in,
)
from components.crypto.secure_agg import SecureAggregator, add_words, decode
from components.linear import ovr
from components.linear.hetero_validation import Validator
from components.linear.optimizer import Optimizer, init_weights
from components.linear.params import LinearParams, OptimizerName
from components.masking import contributor, join_masks, relay_mask_keys
from federation.api import Party
from flow.core.errors import ComponentError


class HomoEncryptParam(BaseModel):
    """FATE's homo ``encrypt_param``: updates are protected by secure aggregation, not Paillier."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    method: Literal["none", "None"] | None = None
    key_length: int = 1024


class HomoLRParams(LinearParams):
    #: validation_freqs, metrics and use_first_metric_only act on validate_data
    inert = (LinearParams.inert - {"validation_freqs", "metrics", "use_first_metric_only"}) | {"re_encrypt_batches"}
    optimizer: OptimizerName = "sgd"
    encrypt_param: HomoEncryptParam = HomoEncryptParam()
    aggregate_iters: int = Field(1, ge=1)
    #: pairwise masks on the updates; off only to measure what they cost
    secure_aggregate: bool = True
    #: FedProx: add mu/2·||w - w_global||² to each party's local objective
    use_proximal: bool = False
    mu: float = 0.1
    re_encrypt_batches: int = 2

    def validation_params(self) -> HomoLRParams:
        """These params with FATE's ``callback_param`` validation settings folded in (the
        top-level ``validation_freqs``/``metrics`` win) and no early stopping."""
        cb = self.callback_param or {}
        freqs = self.validation_freqs if self.validation_freqs is not None else cb.get("validation_freqs")
        metrics = self.metrics if self.metrics is not None else cb.get("metrics")
        return self.model_copy(update={
            "validation_freqs": freqs if isinstance(freqs, int) and not isinstance(freqs, bool) and freqs > 0
            else None,
            "metrics": list(metrics) if isinstance(metrics, list) and metrics else None,
            "early_stopping_rounds": None})

    def notices(self) -> dict[str, str]:
        found = super().notices()
        if "callback_param" in found and {"validation_freqs", "metrics"} & set(self.callback_param or {}):
            found["callback_param"] = ("validation_freqs and metrics act on validate_data; callbacks, early "
                                       "stopping and the rest are not acted on")
        return found


def aggregation_epochs(p: HomoLRParams) -> list[int]:
    """The epochs after which the models are aggregated (the same list on every party)."""
    k = p.aggregate_iters
    return [e for e in range(p.max_iter) if (e + 1) % k == 0 or e == p.max_iter - 1]



# ---- functions shipped to workers (module level: picklable) ------------------------

def _batch_sums(w: np.ndarray, positive: float | None):
    """Partition -> [X^T(p - y), sum(p - y), sum log-loss, rows] at weights ``w`` (intercept
    last); with ``positive`` (one model of one-vs-rest) y is 1 for that class, else 0."""
    def f(part):
        if not part:
            return None
        x = np.stack([inst.features for _, inst in part])
        y = np.fromiter((inst.label for _, inst in part), dtype=float, count=len(part))
        if positive is not None:
            y = (y == positive).astype(float)
        z = x @ w[:-1] + w[-1]
        r = sigmoid(z) - y
        return np.r_[x.T @ r, r.sum(), float(np.sum(np.logaddexp(0.0, z) - y * z)), len(part)]
    return f


def _prediction(w: np.ndarray, threshold: float, classes: np.ndarray | None):
    """Instance -> [predict_result, predict_score]; with one-vs-rest (``w`` one row per
    class) [class, its probability, each class's probability]."""
    def f(inst: Instance) -> Instance:
        p = sigmoid(np.asarray(w[..., :-1] @ inst.features + w[..., -1], dtype=float))
        if classes is None:
            return Instance(np.array([1.0 if p >= threshold else 0.0, float(p)]), inst.label)
        return Instance(ovr.ovr_row(p, classes), inst.label)
    return f


class HomoLR(Component):
    module = "HomoLR"
    params_model = HomoLRParams
    roles = ("guest", "host", "arbiter")
    input_data = ("train_data", "validate_data", "data", "test_data")
    accepts_model = True
    output_model = True

    # ------------------------------------------------------------ guest / host
    def _party(self, ctx: Context, p: HomoLRParams, inputs: Inputs) -> Outputs:
        if inputs.model and "train_data" not in inputs.data:
            return self._predict_only(ctx, p, inputs)
        if inputs.model:
            raise ComponentError(f"{ctx.component}: not supported: warm start (input.model with train_data) for "
                                 "HomoLR; connect the model only in a predict job (input data 'data')")
        data = inputs.require(ctx.component, "train_data", "data")
        header = data.meta.feature_columns
        for port in ("validate_data", "test_data"):
            if port in inputs.data:
                self._check_header(ctx, inputs.data[port], header, port)
        n, labels = self._check_labels(ctx, data)
        arbiter = ctx.role_parties("arbiter")
        ctx.federation.remote((header, sorted(labels)), "model_header", ctx.tag(), arbiter)
        ((w0, classes),) = ctx.federation.get("init_model", ctx.tag(), arbiter)
        classes = None if classes is None else np.asarray(classes, dtype=float)
        vp = p.validation_params()
        if p.early_stopping_rounds or (p.callback_param or {}).get("early_stopping_rounds"):
            ctx.logger.warning("HomoLR does not stop early on validate_data; training runs its max_iter epochs")
        val = Validator.for_guest(ctx, vp, inputs.data.get("validate_data"),
                                  "binary" if classes is None else "multi", per_iteration=classes is None)
        masker = join_masks(ctx) if p.secure_aggregate else None
        batches = self._batches(p, data)
        positives = [None] if classes is None else list(classes)
        fits = [self._fit(ctx, p, batches, n, np.asarray(w0, dtype=float), masker, positive, i, len(positives), val)
                for i, positive in enumerate(positives)]  # fmt: skip
        w = fits[0][0] if classes is None else np.stack([f[0] for f in fits])
        epochs, losses, converged = (ovr.per_model(list(v), classes) for v in zip(*[f[1:] for f in fits]))
        ctx.logger.info("trained %s epochs on %d rows, converged=%s", epochs, n, converged)
        ctx.tracker.log_metric("train", "iterations", epochs)
        ctx.tracker.log_metric("train", "converged", converged)
        ctx.tracker.log_metric("train", "loss", losses)
        intercept = float(w[-1]) if classes is None else w[:, -1]
        model = {"header": header, "weights": w[..., :-1], "intercept": intercept, "iters": epochs,
                 "converged": converged, "loss_history": losses,
                 "aggregate_rounds": ovr.per_model([len(f[2]) for f in fits], classes)}
        if classes is not None:
            model["classes"] = classes.tolist()
        predictions = self._predict(p, data, w, "train", classes)
        if classes is None:
            predictions.meta.extra["loss_history"] = list(losses)  # Evaluation stores it as the loss curve
        out = [predictions]
        if val is not None:  # the trained model on this party's validate rows
            scored = self._predict(p, val.data, w, "validate", classes)
            val.log(ctx, val.evaluate(ctx, scored))
            out.append(scored)
        if "test_data" in inputs.data:
            out.append(self._predict(p, inputs.data["test_data"], w, "test", classes))
            ctx.logger.info("scored %d test_data rows", out[-1].table.count())
        return Outputs(data=out, model=model)

    @staticmethod
    def _check_header(ctx: Context, data: Dataset, header: list[str], what: str) -> None:
        if list(data.meta.feature_columns) != list(header):
            raise ComponentError(f"{ctx.component} on {ctx.role} {ctx.local.party_id}: the {what} features "
                                 f"{list(data.meta.feature_columns)[:8]} differ from the model's {list(header)[:8]}")

    def _fit(self, ctx: Context, p: HomoLRParams, batches: list, n: int, w: np.ndarray,
             masker: SecureAggregator | None, positive: float | None, index: int,
             count: int, val: Validator | None = None) -> tuple[np.ndarray, int, list[float], bool]:  # fmt: skip
        """One model from the arbiter's start ``w``: (weights, epochs, losses, converged)."""
        arbiter = ctx.role_parties("arbiter")
        opt = Optimizer(p.optimizer, p.learning_rate, p.alpha, p.penalty, p.decay, p.decay_sqrt,
                        np.r_[np.ones(len(w) - 1), 0.0])
        epochs = aggregation_epochs(p)
        rounds = {e: index * len(epochs) + r for r, e in enumerate(epochs)}  # a fresh mask per round and model
        w_global, losses, converged, epoch = w.copy(), [], False, 0
        for epoch in range(p.max_iter):
            loss_sum, start = 0.0, w.copy()
            for batch in batches:
                sums = sum(s for s in batch.apply_partitions(_batch_sums(w, positive)) if s is not None)
                rows = sums[-1]
                grad = sums[:-2] / rows
                if p.use_proximal:
                    grad = grad + p.mu * (w - w_global)
                if not p.init_param.fit_intercept:
                    grad[-1] = 0.0
                loss_sum += sums[-2]
                w = opt.step(w, grad, epoch)
            ctx.tracker.progress(index * p.max_iter + epoch + 1, count * p.max_iter)
            if epoch not in rounds:
                self._validate(ctx, p, val, w, epoch)
                continue
            # the loss of the model this epoch started from, as a centralised run would log it
            loss = loss_sum / n + opt.loss_penalty(start)
            update = np.r_[n * w, n * loss, float(n)]
            sent = masker.mask(update, rounds[epoch]) if masker is not None else update
            tag = ctx.tag(f"agg.{rounds[epoch]}")
            ctx.federation.remote(sent, "model_update", tag, arbiter)
            (reply,) = ctx.federation.get("aggregated_model", tag, arbiter)
            w = w_global = np.asarray(reply["model"], dtype=float)
            losses.append(float(reply["loss"]))
            self._validate(ctx, p, val, w, epoch)
            if converged := bool(reply["converged"]):
                break
        return w, epoch + 1, losses, converged

    def _validate(self, ctx: Context, p: HomoLRParams, val: Validator | None, w: np.ndarray, epoch: int) -> None:
        """Score this party's validate rows with the model it holds after ``epoch`` (the
        aggregated one after an aggregation epoch), every ``validation_freqs`` epochs."""
        if val is not None and val.due(epoch):
            val.record(ctx, epoch, val.evaluate(ctx, self._predict(p, val.data, w, "validate", None)))

    guest = host = _party

    @staticmethod
    def _check_labels(ctx: Context, data: Dataset) -> tuple[int, set[float]]:
        where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
        if data.meta.label_column is None:
            raise ComponentError(f"{where}: HomoLR needs labelled rows on every party, but table "
                                 f"{data.meta.name} has no label (set with_label in DataTransform)")
        n = data.table.count()
        if n == 0:
            raise ComponentError(f"{where}: the training table {data.meta.name} is empty")
        return n, set(ovr.numeric_labels(set().union(*data.table.apply_partitions(ovr.labels)), where))

    @staticmethod
    def _batches(p: HomoLRParams, data: Dataset) -> list:
        if p.batch_size == -1:
            return [data.table]
        if p.batch_size <= 0:
            raise ComponentError(f"HomoLR: batch_size must be -1 (full batch) or positive, got {p.batch_size}")
        ids = sorted(data.table.keys(), key=str)
        if p.shuffle:
            np.random.default_rng(p.init_param.random_seed).shuffle(ids)
        return [data.table.filter(keys_in(frozenset(ids[i:i + p.batch_size])))
                for i in range(0, len(ids), p.batch_size)]

    @staticmethod
    def _predict(p: HomoLRParams, data: Dataset, w: np.ndarray, kind: str, classes: np.ndarray | None) -> Dataset:
        table = data.table.map_values(_prediction(w, p.predict_param.threshold, classes))
        columns = ["predict_result", "predict_score"] + ([] if classes is None else detail_columns(classes))
        return Dataset(table, instances_meta(data.meta, columns, "label", type=kind))

    def _predict_only(self, ctx: Context, p: HomoLRParams, inputs: Inputs) -> Outputs:
        model = inputs.model[0]
        data = inputs.require(ctx.component, "test_data", "data")
        if list(data.meta.feature_columns) != list(model["header"]):
            raise ComponentError(f"{ctx.component}: the data's features {data.meta.feature_columns} differ from "
                                 f"the model's {list(model['header'])}")
        w = np.concatenate([np.asarray(model["weights"], dtype=float),
                            np.asarray(model["intercept"], dtype=float)[..., None]], axis=-1)
        classes = np.asarray(model["classes"], dtype=float) if "classes" in model else None
        return Outputs(data=[self._predict(p, data, w, "predict", classes)], model=model)

    # ---------------------------------------------------------------- arbiter
    def arbiter(self, ctx: Context, p: HomoLRParams, inputs: Inputs) -> Outputs:
        if inputs.model:  # a predict job: the parties score their own rows
            return Outputs(model=inputs.model[0])
        parties = ctx.role_parties("guest") + ctx.role_parties("host")
        if len(parties) < 2:
            raise ComponentError(f"{ctx.component}: HomoLR needs at least two parties with data (guest and host)")
        size, classes = self._agree_header(ctx, parties)
        size += 1
        w = init_weights(p.init_param, size)
        if not p.init_param.fit_intercept:
            w[-1] = 0.0
        ctx.federation.remote((w, classes), "init_model", ctx.tag(), parties)
        if p.secure_aggregate:
            relay_mask_keys(ctx, parties)
        count = 1 if classes is None else len(classes)
        fits = [self._aggregate(ctx, p, parties, w, size, i, count) for i in range(count)]
        losses, converged = (ovr.per_model([f[i] for f in fits], classes) for i in (0, 1))
        ctx.tracker.log_metric("train", "loss", losses)
        ctx.tracker.log_metric("train", "converged", converged)
        model = {"aggregate_rounds": ovr.per_model([len(f[0]) for f in fits], classes), "converged": converged,
                 "loss_history": losses, "secure_aggregate": p.secure_aggregate}
        return Outputs(model=model if classes is None else {**model, "classes": classes})

    def _aggregate(self, ctx: Context, p: HomoLRParams, parties: list[Party], w: np.ndarray, size: int, index: int,
                   count: int) -> tuple[list[float], bool]:  # fmt: skip
        """Average one model's updates round by round: (losses, converged)."""
        losses: list[float] = []
        converged, epochs = False, aggregation_epochs(p)
        for r, epoch in enumerate(epochs):
            tag = ctx.tag(f"agg.{index * len(epochs) + r}")
            total = self._sum(ctx, p, ctx.federation.get("model_update", tag, parties), parties, size + 2)
            count = total[-1]
            w_new, loss = total[:size] / count, float(total[size] / count)
            losses.append(loss)
            converged = self._converged(p, losses, w_new - w)
            w = w_new
            ctx.logger.info("aggregation %d (epoch %d): %d rows, loss %.6f", r, epoch, round(count), loss)
            ctx.federation.remote({"model": w, "loss": loss, "converged": converged}, "aggregated_model", tag,
                                  parties)
            ctx.tracker.progress(index * len(epochs) + r + 1, count * len(epochs))
            if converged:
                break
        return losses, converged

    @staticmethod
    def _agree_header(ctx: Context, parties: list[Party]) -> tuple[int, list[float] | None]:
        """The common feature count, and the classes for one-vs-rest (None: labels 0/1 only).
        Each party's set of labels is what one-vs-rest needs from it."""
        messages = ctx.federation.get("model_header", ctx.tag(), parties)
        headers = [list(h) for h, _ in messages]
        first = headers[0]
        for party, header in zip(parties[1:], headers[1:]):
            if header != first:
                diff = sorted(set(first) ^ set(header))[:5]
                raise ComponentError(
                    f"{ctx.component}: {contributor(party)} has features {list(header)[:8]}"
                    f"{'...' if len(header) > 8 else ''}, {contributor(parties[0])} has {first[:8]}"
                    f"{'...' if len(first) > 8 else ''}; HomoLR needs the same columns in the same order"
                    + (f" (differing: {diff})" if diff else " (same names, other order)"))
        classes = ovr.ovr_classes(set().union(*(ls for _, ls in messages)), ctx.component)
        return len(first), None if classes is None else classes.tolist()

    @staticmethod
    def _sum(ctx: Context, p: HomoLRParams, updates: list, parties: list[Party], size: int) -> np.ndarray:
        for party, u in zip(parties, updates):
            arr = np.asarray(u)
            want = np.uint64 if p.secure_aggregate else np.float64
            if arr.shape != (size,) or arr.dtype != want:
                raise ComponentError(f"{ctx.component}: update of {contributor(party)} is {arr.dtype} "
                                     f"{arr.shape}, expected {np.dtype(want)} ({size},)")
        if p.secure_aggregate:
            return decode(add_words(updates))
        return np.sum(updates, axis=0)

    @staticmethod
    def _converged(p: HomoLRParams, losses: list[float], delta: np.ndarray) -> bool:
        if p.early_stop == "weight_diff":
            return math.sqrt(float(delta @ delta)) < p.tol
        if p.early_stop == "abs":
            return losses[-1] < p.tol
        return len(losses) > 1 and abs(losses[-2] - losses[-1]) < p.tol
