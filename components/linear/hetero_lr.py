"""HeteroLR: vertical logistic regression with a key-holding arbiter; HeteroLinR
(components/linear/hetero_linr.py) runs the same protocol on squared error.

Per batch, with the loss's target t (y in {-1, +1} and the Taylor expansion of the
logistic loss for HeteroLR; components/linear/family.py):

  host    [[wx_h]]                                  -> guest
  guest   [[D]] = [[wx_h]] + wx_g + k·t             -> host     (HeteroLR: k = -2, 4d)
  each    [[X^T D]] + mask                          -> arbiter, decrypts, returns
  each    removes its mask, scales (1/4 for HeteroLR), steps its own weights
  guest   [[loss]] from [[D]], [[sum wx_h^2]]       -> arbiter (convergence)

The key is Paillier's, or with ``encrypt_param.method`` ``ou`` Okamoto–Uchiyama's, one
ciphertext per row; or with ``ckks`` CKKS's, 8,192 rows to a ciphertext. A batch's
messages are the cipher's (components/linear/hetero_cipher.py, hetero_packed.py); the
loops below do not depend on which. The arbiter holds the private key and only ever sees
masked gradients and the loss; guest and hosts only ever see ciphertexts of each other's
values. Each party keeps only its own weights. With several hosts the loss is not
computed (its cross terms would need two parties' values at once): use early_stop
"weight_diff" there.

Sample weights (SampleWeight, on the guest) weight the gradient as FATE does: each row's
[[D]] is multiplied by its weight v before it goes to the hosts, the guest multiplies v
into its own columns, the mean stays over n rows; the loss stays unweighted (FATE's).

Labels other than 0/1 train one-vs-rest (FATE's ``multi_class: ovr``): one binary model
per class, one after the other, with the label 1 for that class; the guest tells the
others how many models, never which classes.

A model on input.model with train_data is a warm start (components/linear/warm_start.py):
each party goes on from its own part of it; with test_data it is a predict job, which the
guest announces to the arbiter (whose inputs hold no data to tell them apart).
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np

from components.base import SAMPLE_WEIGHT, Component, Context, Dataset, Inputs, Outputs, detail_columns, instances_meta
from components.crypto.params import LinearEncryptParam
from components.linear import hetero_rows as rows_fn
from components.linear import ovr, warm_start
from components.linear.family import LOGISTIC_TAYLOR, QuadraticLoss
from components.linear.hetero_cipher import BatchCipher, arbiter_key, cipher_for
from components.linear.hetero_schedule import Batches, Fit, batch_ids_of, model_scopes, stack_models
from components.linear.hetero_validation import Validator
from components.linear.optimizer import Optimizer
from components.linear.params import LinearParams
from flow.core.errors import ComponentError


class HeteroLRParams(LinearParams):
    #: validation_freqs, early_stopping_rounds, metrics, use_first_metric_only act on validate_data
    inert = (LinearParams.inert - {"validation_freqs", "early_stopping_rounds", "metrics", "use_first_metric_only"}) | {
        "batch_strategy", "floating_point_precision", "encrypted_mode_calculator_param", "stepwise_param", "sqn_param"}
    encrypt_param: LinearEncryptParam = LinearEncryptParam()
    batch_strategy: Literal["full", "random"] = "full"
    floating_point_precision: int | None = 23
    encrypted_mode_calculator_param: dict[str, Any] | None = None
    stepwise_param: dict[str, Any] | None = None
    sqn_param: dict[str, Any] | None = None


class HeteroLR(Component):
    module = "HeteroLR"
    params_model = HeteroLRParams
    roles = ("guest", "host", "arbiter")
    input_data = ("train_data", "validate_data", "data", "test_data")
    accepts_model = True
    output_model = True
    #: the loss trained on (HeteroLinR: squared error)
    loss: QuadraticLoss = LOGISTIC_TAYLOR
    #: the guest's sample weights (SampleWeight) weight the gradient
    uses_sample_weight = True

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _train_data(ctx: Context, inputs: Inputs) -> Dataset:
        return rows_fn.check_finite(ctx.component, inputs.require(ctx.component, "train_data", "data"))

    @staticmethod
    def _optimizer(p: HeteroLRParams, penalized: np.ndarray) -> Optimizer:
        return Optimizer(p.optimizer, p.learning_rate, p.alpha, p.penalty, p.decay, p.decay_sqrt, penalized)

    def _cipher(self, ctx: Context) -> BatchCipher:
        """The batch cipher of the arbiter's public key (sent to guest and hosts)."""
        (message,) = ctx.federation.get("paillier_pubkey", ctx.tag(), ctx.role_parties("arbiter"))
        return cipher_for(ctx, self.loss, message)

    def _classes(self, ctx: Context, data: Dataset) -> np.ndarray | None:
        """The classes of a one-vs-rest model; None for one model on the label as it is."""
        if data.meta.label_column is None:
            raise ComponentError(f"{ctx.component}: the guest's training data has no label "
                                 "(set with_label in DataTransform)")
        if not self.loss.classifier:
            return None
        return ovr.ovr_classes(set().union(*data.table.apply_partitions(ovr.labels)), ctx.component)

    # ---------------------------------------------------------------- guest
    def guest(self, ctx: Context, p: HeteroLRParams, inputs: Inputs) -> Outputs:
        hosts, arbiter = ctx.role_parties("host"), ctx.role_parties("arbiter")
        if self._predicting(ctx, inputs):
            if arbiter:
                ctx.federation.remote(None, "batch_count", ctx.tag(), arbiter)  # no training: nothing to decrypt
            return self._predict_job(ctx, p, inputs)
        data = self._train_data(ctx, inputs)
        header = data.meta.feature_columns
        classes = self._classes(ctx, data)
        weighted = rows_fn.check_weights(ctx.component, data)
        n_models = None if classes is None else len(classes)
        ids = sorted(data.table.keys())
        batch_ids = batch_ids_of(p, ids)
        task = "multi" if classes is not None else "binary" if self.loss.classifier else "regression"
        val = Validator.for_guest(ctx, p, inputs.data.get("validate_data"), task, per_iteration=n_models is None)
        if val is not None:
            self._check_header(ctx, val.data, header, "validate_data")
        every = val.every if val is not None else None
        starts = warm_start.starts(ctx, p.init_param, inputs, header, n_models, len(header) + 1, 0, True, classes)
        first = [it for _, it in starts] if inputs.model else None  # the others check theirs against it
        ctx.federation.remote((batch_ids, n_models, val is not None, every, first), "batch_info", ctx.tag(), hosts)
        stop_every = every if val is not None and val.patience else None
        ctx.federation.remote((max(1, len(batch_ids)), n_models, stop_every, first), "batch_count", ctx.tag(),
                              arbiter)  # fmt: skip
        batches = Batches.of(data, batch_ids)
        scopes = model_scopes(n_models)
        cipher = self._cipher(ctx)
        started = time.perf_counter()
        with ctx.federation.spare_work(cipher.spare_work(max(batches.sizes, default=0))):
            fits = [self._guest_fit(ctx, p, cipher, batches, starts[i], None if classes is None else classes[i],
                                    scope, i, len(scopes), val, weighted) for i, scope in enumerate(scopes)]
        iterations = sum(f.iters - s[1] for f, s in zip(fits, starts))
        ctx.logger.info("training: %d iterations in %.2f s", iterations, time.perf_counter() - started)
        w = stack_models(fits, n_models)
        predictions = self._predict_guest(ctx, p, data, w, hosts, classes)
        if val is not None:  # the trained model on validate_data
            val.log(ctx, val.evaluate(ctx, self._predict_guest(ctx, p, val.data, w, hosts, classes, "validate",
                                                                "validate")))
        if n_models is None:
            predictions.meta.extra["loss_history"] = list(fits[0].losses)  # Evaluation's loss curve
        self._log_training(ctx, fits)
        model = {"header": header, "weights": w[..., :-1], "intercept": w[..., -1] if n_models else float(w[-1]),
                 **self._fit_record(fits, n_models)}
        if classes is not None:
            model["classes"] = classes.tolist()
        return Outputs(data=[predictions], model=model)

    @staticmethod
    def _fit_record(fits: list[Fit], n_models: int | None) -> dict[str, Any]:
        """iters, converged and loss_history of the model(s), as the model records store them."""
        return {"iters": ovr.per_model([f.iters for f in fits], n_models),
                "converged": ovr.per_model([f.converged for f in fits], n_models),
                "loss_history": ovr.per_model([f.losses for f in fits], n_models)}

    def _guest_fit(self, ctx: Context, p: HeteroLRParams, cipher: BatchCipher, batches: Batches,
                   start: tuple[np.ndarray, int], positive: float | None, scope: str, index: int, count: int,
                   val: Validator | None, weighted: bool = False) -> Fit:  # fmt: skip
        """One model from ``start``: its weights (the intercept last) and first iteration."""
        hosts, arbiter = ctx.role_parties("host"), ctx.role_parties("arbiter")
        w, first = start
        opt = self._optimizer(p, np.r_[np.ones(len(w) - 1), 0.0])
        it, converged = first - 1, False
        for it in range(first, p.max_iter):
            w_before = w.copy()
            for b, (batch, n) in enumerate(zip(batches.tables, batches.sizes)):
                tag = ctx.tag(f"{scope}{it}.{b}")
                sums = cipher.guest_step(ctx, tag, b, batch, w, n, opt.loss_penalty(w), positive, weighted)
                grad = self.loss.scale * sums / n
                if not p.init_param.fit_intercept:
                    grad[-1] = 0.0
                w = opt.step(w, grad, it)
            if val is not None and val.due(it):  # only with one model: scope is ""
                scored = self._predict_guest(ctx, p, val.data, w, hosts, None, "validate", f"validate.{it}")
                stop = val.record(ctx, it, val.evaluate(ctx, scored))
                if val.patience:
                    ctx.federation.remote(stop, "validation_stop", ctx.tag(f"{scope}{it}"), arbiter)
            if converged := self._end_iteration(ctx, p, w - w_before, it, scope, index, count):
                break
        losses = ctx.federation.get("loss_history", ctx.tag(f"{scope}losses"), arbiter)[0]
        return Fit(w, it + 1, converged, list(losses))

    @staticmethod
    def _check_header(ctx: Context, data: Dataset, header: list[str], port: str) -> None:
        if list(data.meta.feature_columns) != list(header):
            raise ComponentError(f"{ctx.component}: {port} columns {list(data.meta.feature_columns)} differ from "
                                 f"the model's {list(header)}")

    def _predict_guest(self, ctx: Context, p: HeteroLRParams, data: Dataset, w: np.ndarray, hosts,
                       classes: np.ndarray | None, kind: str = "train", stage: str = "predict") -> Dataset:  # fmt: skip
        """The guest's predictions of ``data`` (a table of type ``kind``); the hosts send
        their wx under the tag ``stage``."""
        host_wx = self._host_scores(ctx, ctx.federation.get("host_predict_wx", ctx.tag(stage), hosts))
        total = host_wx[0]
        for other in host_wx[1:]:
            total = total.join(other, rows_fn.add)
        score = rows_fn.linear(w[..., :-1], w[..., -1])
        gy = data.table.map_values(lambda inst, f=score: (f(inst), inst.label))
        table = gy.join(total, lambda a, b: (a, b)).map_values(
            rows_fn.prediction(self.loss, p.predict_param.threshold, classes))
        columns = ["predict_result", "predict_score"]
        if classes is not None:
            columns += detail_columns(classes)
        meta = instances_meta(data.meta, columns, "label", type=kind)
        meta.extra.pop(SAMPLE_WEIGHT, None)  # predictions: the weights stay with the training rows
        return Dataset(table, meta)

    def _host_scores(self, ctx: Context, tables: list) -> list:
        """The hosts' wx tables as they arrive (a subclass whose hosts send them encrypted decrypts here)."""
        return tables

    def _log_training(self, ctx: Context, fits: list[Fit]) -> None:
        for i, fit in enumerate(fits):
            where = "train" if len(fits) == 1 else f"train_ovr{i}"
            ctx.tracker.log_metric(where, "iterations", fit.iters)
            ctx.tracker.log_metric(where, "converged", bool(fit.converged))
            if fit.losses:
                ctx.tracker.log_metric(where, "loss", fit.losses)
            ctx.logger.info("model %d of %d: trained %d iterations, converged=%s, last loss=%s", i + 1, len(fits),
                            fit.iters, fit.converged, fit.losses[-1] if fit.losses else "n/a")  # fmt: skip

    @staticmethod
    def _end_iteration(ctx: Context, p: HeteroLRParams, delta: np.ndarray, it: int, scope: str, index: int,
                       count: int) -> bool:  # fmt: skip
        """Report this party's weight change if asked, then learn from the arbiter whether to stop."""
        tag, arbiter = ctx.tag(f"{scope}{it}"), ctx.role_parties("arbiter")
        if p.early_stop == "weight_diff":
            ctx.federation.remote(float(delta @ delta), "weight_diff", tag, arbiter)
        ctx.tracker.progress(index * p.max_iter + it + 1, count * p.max_iter)
        return bool(ctx.federation.get("converge_flag", tag, arbiter)[0])

    # ---------------------------------------------------------------- predict job
    @staticmethod
    def _predicting(ctx: Context, inputs: Inputs) -> bool:
        """A predict job: a model and no train_data (a model with train_data is a warm start)."""
        return bool(inputs.model) and "train_data" not in inputs.data

    def _predict_job(self, ctx: Context, p: HeteroLRParams, inputs: Inputs) -> Outputs:
        """Each party scores its rows with its stored weights; hosts send their wx to the guest
        in the clear, as at the end of training (the guest alone holds the scores)."""
        model = inputs.model[0]
        data = rows_fn.check_finite(ctx.component, inputs.require(ctx.component, "test_data", "data"))
        self._check_header(ctx, data, model["header"], "input")
        weights = np.asarray(model["weights"], dtype=float)
        if ctx.role == "host":
            ctx.federation.remote(data.table.map_values(rows_fn.linear(weights, 0.0)), "host_predict_wx",
                                  ctx.tag("predict"), ctx.role_parties("guest"))
            return Outputs()
        w = np.concatenate([weights, np.asarray(model["intercept"], dtype=float)[..., None]], axis=-1)
        classes = np.asarray(model["classes"], dtype=float) if "classes" in model else None
        return Outputs(data=[self._predict_guest(ctx, p, data, w, ctx.role_parties("host"), classes, "predict")])

    # ---------------------------------------------------------------- host
    def host(self, ctx: Context, p: HeteroLRParams, inputs: Inputs) -> Outputs:
        if self._predicting(ctx, inputs):
            return self._predict_job(ctx, p, inputs)
        data = self._train_data(ctx, inputs)
        header = data.meta.feature_columns
        guest = ctx.role_parties("guest")
        if data.meta.extra.get(SAMPLE_WEIGHT):
            ctx.logger.warning("%s: this host's sample weights are not used; the guest's weight the rows",
                               ctx.component)
        cipher = self._cipher(ctx)  # Paillier, OU or CKKS, as the arbiter's encrypt_param says
        ((batch_ids, n_models, validating, every, first),) = ctx.federation.get("batch_info", ctx.tag(), guest)
        starts = warm_start.starts(ctx, p.init_param, inputs, header, n_models, len(header),
                                   1 + ctx.role_parties("host").index(ctx.local), False)  # fmt: skip
        warm_start.agree(ctx, [it for _, it in starts], first)
        validate = inputs.data.get("validate_data") if validating else None
        if validating and validate is None:
            raise ComponentError(f"{ctx.component}: the guest validates on validate_data; connect this host's too")
        if validate is not None:
            self._check_header(ctx, validate, header, "validate_data")
        batches = Batches.of(data, batch_ids)
        scopes = model_scopes(n_models)
        with ctx.federation.spare_work(cipher.spare_work(max(batches.sizes, default=0))):
            fits = [self._host_fit(ctx, p, cipher, batches, starts[i], scope, i, len(scopes), validate, every)
                    for i, scope in enumerate(scopes)]
        w = stack_models(fits, n_models)
        for stage, rows in (("predict", data), ("validate", validate)):
            if rows is not None:
                ctx.federation.remote(rows.table.map_values(rows_fn.linear(w, 0.0)), "host_predict_wx",
                                      ctx.tag(stage), guest)  # fmt: skip
        iters = ovr.per_model([f.iters for f in fits], n_models)
        ctx.logger.info("trained %s iterations", iters)
        return Outputs(model={"header": header, "weights": w, "iters": iters})

    def _host_fit(self, ctx: Context, p: HeteroLRParams, cipher: BatchCipher, batches: Batches,
                  start: tuple[np.ndarray, int], scope: str, index: int, count: int, validate: Dataset | None,
                  every: int | None) -> Fit:  # fmt: skip
        guest = ctx.role_parties("guest")
        w, first = start
        opt = self._optimizer(p, np.ones(len(w)))
        it = first - 1
        for it in range(first, p.max_iter):
            w_before = w.copy()
            for b, (batch, n) in enumerate(zip(batches.tables, batches.sizes)):
                tag = ctx.tag(f"{scope}{it}.{b}")
                sums = cipher.host_step(ctx, tag, b, batch, w, n, opt.loss_penalty(w))
                grad = self.loss.scale * sums / n
                w = opt.step(w, grad, it)
            if validate is not None and every and (it + 1) % every == 0:
                ctx.federation.remote(validate.table.map_values(rows_fn.linear(w, 0.0)), "host_predict_wx",
                                      ctx.tag(f"validate.{it}"), guest)  # fmt: skip
            if self._end_iteration(ctx, p, w - w_before, it, scope, index, count):
                break
        return Fit(w, it + 1)

    # ---------------------------------------------------------------- arbiter
    def arbiter(self, ctx: Context, p: HeteroLRParams, inputs: Inputs) -> Outputs:
        guest, hosts = ctx.role_parties("guest"), ctx.role_parties("host")
        (info,) = ctx.federation.get("batch_count", ctx.tag(), guest)
        if info is None:  # a predict job: guest and hosts score with their own weights, no key needed
            return Outputs()
        n_batches, n_models, stop_every, first = info
        message, priv = arbiter_key(p.encrypt_param)
        ctx.federation.remote(message, "paillier_pubkey", ctx.tag(), guest + hosts)
        model = warm_start.warm_model(inputs)
        iters = [int(i) for i in warm_start.stored(ctx, model, "iters", n_models, 0)]
        warm_start.agree(ctx, iters, first)
        histories = warm_start.stored(ctx, model, "loss_history", n_models, [])
        scopes = model_scopes(n_models)
        fits = [self._arbiter_fit(ctx, p, priv, n_batches, scope, i, len(scopes), stop_every, iters[i],
                                  [float(v) for v in histories[i]]) for i, scope in enumerate(scopes)]  # fmt: skip
        self._log_training(ctx, fits)
        return Outputs(model={**self._fit_record(fits, n_models), "key_length": p.encrypt_param.key_length})

    def _arbiter_fit(self, ctx: Context, p: HeteroLRParams, priv: Any, n_batches: int, scope: str, index: int,
                     count: int, stop_every: int | None, first: int = 0,
                     losses: list[float] | None = None) -> Fit:  # fmt: skip
        """One model's decryptions and convergence, from iteration ``first`` on the loss history ``losses``."""
        guest, hosts = ctx.role_parties("guest"), ctx.role_parties("host")
        losses = [] if losses is None else losses
        it, converged = first - 1, False
        for it in range(first, p.max_iter):
            loss_sum = 0.0
            for b in range(n_batches):
                tag = ctx.tag(f"{scope}{it}.{b}")
                for name, party in [("guest_gradient", guest[0])] + [("host_gradient", h) for h in hosts]:
                    (enc,) = ctx.federation.get(name, tag, [party])
                    ctx.federation.remote(priv.decrypt_many(enc), f"{name}_plain", tag, [party])
                if len(hosts) == 1:
                    (enc_loss,) = ctx.federation.get("loss", tag, guest)
                    loss_sum += priv.decrypt(enc_loss)
            converged = self._converged(ctx, p, f"{scope}{it}", loss_sum / n_batches, losses, guest + hosts,
                                        len(hosts))  # fmt: skip
            if stop_every and (it + 1) % stop_every == 0:  # the guest's early stop on validate_data
                converged = bool(ctx.federation.get("validation_stop", ctx.tag(f"{scope}{it}"), guest)[0]) or converged
            ctx.federation.remote(converged, "converge_flag", ctx.tag(f"{scope}{it}"), guest + hosts)
            ctx.tracker.progress(index * p.max_iter + it + 1, count * p.max_iter)
            if converged:
                break
        ctx.federation.remote(losses, "loss_history", ctx.tag(f"{scope}losses"), guest)
        return Fit(np.zeros(0), it + 1, converged, losses)

    @staticmethod
    def _converged(ctx: Context, p: HeteroLRParams, tag: str, loss: float, losses: list[float],
                   parties, n_hosts: int) -> bool:  # fmt: skip
        if n_hosts == 1:
            losses.append(loss)
            ctx.logger.info("iteration %s loss %.6f", tag, loss)
        if p.early_stop == "weight_diff":
            diffs = ctx.federation.get("weight_diff", ctx.tag(tag), parties)
            return math.sqrt(sum(diffs)) < p.tol
        if n_hosts != 1:
            raise ComponentError(f"{ctx.component}: early_stop '{p.early_stop}' needs the loss, which is not "
                                 "computed with several hosts; use early_stop 'weight_diff'")
        if p.early_stop == "abs":
            return loss < p.tol
        return len(losses) > 1 and abs(losses[-2] - loss) < p.tol
