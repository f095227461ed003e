"""HeteroPoisson: vertical Poisson regression (FATE's HeteroPoisson), log link, with a
Paillier-holding arbiter, one guest (label and exposure) and one host.

HeteroLR's additive protocol needs a loss quadratic in the score; the Poisson gradient
needs mu = exp(wx_g + wx_h + log exposure), a product of the parties' parts, so the
host sends its part already exponentiated, encrypted (components/linear/family.py):

  host    [[exp(wx_h)]], [[wx_h]], [[penalty_h]]                 -> guest
  guest   [[D]] = exp(wx_g + b + log e)·[[exp(wx_h)]] - y        -> host   ([[v·D]] weighted)
  each    [[X^T D]] + mask -> arbiter, decrypts, returns; each unmasks and steps
  guest   [[loss]] = (Σ[[D]] + Σ y - Σ y·eta_g - Σ y·[[wx_h]]) / n + penalties -> arbiter

The guest only ever holds ciphertexts of the host's values, the host ciphertexts of the
guest's, the arbiter masked gradients and the loss. Paillier cannot multiply two
ciphertexts, so a second host's [[exp(wx_h')]] cannot join in: one host only (FATE's
limit too). Predictions: the host sends wx_h of each row to the guest in the clear, as
HeteroLR's hosts do, and the guest outputs mu as predict_result (Evaluation regression).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from components.base import SAMPLE_WEIGHT, Component, Context, Dataset, Inputs, Instance, Outputs, instances_meta
from components.crypto.paillier import PaillierPublicKey, generate_keypair
from components.crypto.params import EncryptParam
from components.linear import hetero_rows as rows_fn
from components.linear.family import POISSON
from components.linear.hetero_cipher import unmask
from components.linear.hetero_schedule import Batches, Fit, batch_ids_of
from components.linear.hetero_validation import Validator
from components.linear.optimizer import Optimizer, init_weights
from components.linear.params import LinearParams
from flow.core.errors import ComponentError


class HeteroPoissonParams(LinearParams):
    """FATE's PoissonParam: LinearParams with 20 iterations and the guest's exposure column."""

    inert = (LinearParams.inert - {"validation_freqs", "early_stopping_rounds", "metrics", "use_first_metric_only"}) | {
        "floating_point_precision", "encrypted_mode_calculator_param", "stepwise_param"}
    max_iter: int = Field(20, ge=1)
    exposure_colname: str | None = None
    encrypt_param: EncryptParam = EncryptParam()
    floating_point_precision: int | None = 23
    encrypted_mode_calculator_param: dict[str, Any] | None = None
    stepwise_param: dict[str, Any] | None = None


# ---------------------------------------------------------------- rows (on the workers)
def with_offset(index: int | None, where: str):
    """Instance -> (the Instance without the exposure column, log(exposure)); offset 0
    without an exposure column."""
    def f(inst: Instance) -> tuple[Instance, float]:
        if index is None:
            return inst, 0.0
        e = float(inst.features[index])
        if not e >= 0.0:
            raise ComponentError(f"{where}: exposure {e} is negative or missing; exposures must be >= 0")
        return Instance(np.delete(inst.features, index), inst.label, inst.weight), POISSON.offset(e)
    return f


def guest_row(w: np.ndarray, b: float):
    """(Instance, offset) -> (eta_g = w·x + b + offset, y, x, sample weight or 1)."""
    def f(t: tuple[Instance, float]) -> tuple[float, Any, np.ndarray, float]:
        inst, off = t
        weight = 1.0 if inst.weight is None else float(inst.weight)
        return float(inst.features @ w) + b + off, inst.label, inst.features, weight
    return f


def eta_label(w: np.ndarray, b: float):
    """(Instance, offset) -> (eta_g, y) for predictions (y None on unlabelled rows)."""
    row = guest_row(w, b)

    def f(t: tuple[Instance, float]) -> tuple[float, Any]:
        eta, y, _, _ = row(t)
        return eta, y
    return f


def fore(c, t):
    """[[exp(wx_h)]], guest row -> [[mu - y]], re-randomised."""
    eta, y = t[0], t[1]
    return (c * math.exp(eta) - y).obfuscate()


def guest_columns(c, t):
    """([[D]], [v·x_g..., v, 1]): the weighted gradient, its intercept and Σ D in one dot."""
    _, _, x, v = t
    return c, np.concatenate([x * v if v != 1.0 else x, [v, 1.0]])


def label_column(c, t):
    return c, np.array([t[1]])


def loss_plain(part) -> float:
    """Σ (y - y·eta_g): with Σ D and -Σ y·wx_h it makes Σ (mu - y·eta)."""
    return sum(y - y * eta for _, (eta, y, *_) in part)


def exp_encrypt(pub: PaillierPublicKey):
    def f(v: float):
        return pub.encrypt(math.exp(v)).obfuscate()
    return f


def prediction(t) -> Instance:
    """((eta_g, y), wx_h) -> [mu, mu]."""
    (eta, y), wx_h = t
    return Instance(np.array(POISSON.output(eta + wx_h)), y)


class HeteroPoisson(Component):
    module = "HeteroPoisson"
    params_model = HeteroPoissonParams
    roles = ("guest", "host", "arbiter")
    input_data = ("train_data", "validate_data", "data", "test_data")
    accepts_model = True
    output_model = True
    uses_sample_weight = True
    loss = POISSON

    # ---------------------------------------------------------------- helpers
    def _host(self, ctx: Context) -> list:
        hosts = ctx.role_parties("host")
        if len(hosts) != 1:
            raise ComponentError(f"{ctx.component}: not supported: {self.module} with {len(hosts)} hosts (the guest "
                                 "multiplies one host's encrypted exp(wx); Paillier cannot multiply two ciphertexts)")
        return hosts

    @staticmethod
    def _optimizer(p: HeteroPoissonParams, penalized: np.ndarray) -> Optimizer:
        return Optimizer(p.optimizer, p.learning_rate, p.alpha, p.penalty, p.decay, p.decay_sqrt, penalized)

    def _offsets(self, ctx: Context, data: Dataset, exposure: str | None, header: list[str] | None,
                 port: str, labelled: bool = True) -> tuple[Dataset, list[str]]:  # fmt: skip
        """The guest's rows as (Instance without the exposure column, log exposure), and
        the model's header; ``header`` (a stored model's) must match."""
        columns = list(data.meta.feature_columns)
        if exposure is not None and exposure not in columns:
            raise ComponentError(f"{ctx.component}: exposure_colname '{exposure}' is not a column of the guest's "
                                 f"{port} (columns: {columns})")
        index = None if exposure is None else columns.index(exposure)
        mine = [c for c in columns if c != exposure]
        if header is not None and mine != list(header):
            raise ComponentError(f"{ctx.component}: {port} columns {mine} differ from the model's {list(header)}")
        if labelled and data.meta.label_column is None:
            raise ComponentError(f"{ctx.component}: the guest's {port} has no label (set with_label in "
                                 "DataTransform)")
        where = f"{ctx.component} (guest {port}, column '{exposure}')"
        return Dataset(data.table.map_values(with_offset(index, where)), data.meta), mine

    @staticmethod
    def _check_header(ctx: Context, data: Dataset, header: list[str], port: str) -> None:
        if list(data.meta.feature_columns) != list(header):
            raise ComponentError(f"{ctx.component}: {port} columns {list(data.meta.feature_columns)} differ from "
                                 f"the model's {list(header)}")

    def _end_iteration(self, ctx: Context, p: HeteroPoissonParams, delta: np.ndarray, it: int) -> bool:
        """Report this party's weight change if asked; learn from the arbiter whether to stop."""
        arbiter = ctx.role_parties("arbiter")
        if p.early_stop == "weight_diff":
            ctx.federation.remote(float(delta @ delta), "weight_diff", ctx.tag(str(it)), arbiter)
        ctx.tracker.progress(it + 1, p.max_iter)
        return bool(ctx.federation.get("converge_flag", ctx.tag(str(it)), arbiter)[0])

    def _predicting(self, ctx: Context, inputs: Inputs) -> bool:
        if inputs.model and "train_data" in inputs.data:
            raise ComponentError(f"{ctx.component}: not supported: {self.module} warm start (input.model with "
                                 "train_data); connect a model only in a predict job (input data 'test_data')")
        return bool(inputs.model)

    # ---------------------------------------------------------------- guest
    def guest(self, ctx: Context, p: HeteroPoissonParams, inputs: Inputs) -> Outputs:
        hosts, arbiter = self._host(ctx), ctx.role_parties("arbiter")
        if self._predicting(ctx, inputs):
            model = inputs.model[0]
            test = inputs.require(ctx.component, "test_data", "data")
            data, _ = self._offsets(ctx, test, model.get("exposure_colname"), model["header"], "input data",
                                    labelled=False)
            w = np.r_[np.asarray(model["weights"], dtype=float), float(model["intercept"])]
            return Outputs(data=[self._predict_guest(ctx, test, data, w, "predict", "predict")])
        raw = inputs.require(ctx.component, "train_data", "data")
        weighted = rows_fn.check_weights(ctx.component, raw)
        data, header = self._offsets(ctx, raw, p.exposure_colname, None, "train_data")
        val = Validator.for_guest(ctx, p, inputs.data.get("validate_data"), "regression", per_iteration=True)
        val_rows = None
        if val is not None:
            val_rows = self._offsets(ctx, val.data, p.exposure_colname, header, "validate_data")[0]
        ids = sorted(data.table.keys())
        batch_ids = batch_ids_of(p, ids)
        every = val.every if val is not None else None
        ctx.federation.remote((batch_ids, val is not None, every), "batch_info", ctx.tag(), hosts)
        stop_every = every if val is not None and val.patience else None
        ctx.federation.remote((max(1, len(batch_ids)), stop_every), "batch_count", ctx.tag(), arbiter)
        batches = Batches.of(data, batch_ids)
        w = init_weights(p.init_param, len(header) + 1)
        if not p.init_param.fit_intercept:
            w[-1] = 0.0
        opt = self._optimizer(p, np.r_[np.ones(len(header)), 0.0])
        it, converged = 0, False
        for it in range(p.max_iter):
            w_before = w.copy()
            for b, (batch, n) in enumerate(zip(batches.tables, batches.sizes)):
                w = opt.step(w, self._guest_batch(ctx, p, opt, w, batch, n, f"{it}.{b}", weighted), it)
            if val is not None and val_rows is not None and val.due(it):
                scored = self._predict_guest(ctx, val.data, val_rows, w, "validate", f"validate.{it}")
                stop = val.record(ctx, it, val.evaluate(ctx, scored))
                if val.patience:
                    ctx.federation.remote(stop, "validation_stop", ctx.tag(str(it)), arbiter)
            if converged := self._end_iteration(ctx, p, w - w_before, it):
                break
        losses = list(ctx.federation.get("loss_history", ctx.tag("losses"), arbiter)[0])
        predictions = self._predict_guest(ctx, raw, data, w, "train", "predict")
        if val is not None and val_rows is not None:
            val.log(ctx, val.evaluate(ctx, self._predict_guest(ctx, val.data, val_rows, w, "validate", "validate")))
        predictions.meta.extra["loss_history"] = losses  # Evaluation's loss curve
        self._log_training(ctx, Fit(w, it + 1, converged, losses))
        model = {"header": header, "weights": w[:-1], "intercept": float(w[-1]),
                 "exposure_colname": p.exposure_colname, "iters": it + 1, "converged": converged,
                 "loss_history": losses}
        return Outputs(data=[predictions], model=model)

    def _guest_batch(self, ctx: Context, p: HeteroPoissonParams, opt: Optimizer, w: np.ndarray, batch: Any, n: int,
                     step: str, weighted: bool) -> np.ndarray:  # fmt: skip
        """One batch's exchange; returns the guest's mean gradient (intercept last)."""
        hosts, arbiter, tag = ctx.role_parties("host"), ctx.role_parties("arbiter"), ctx.tag(step)
        rows = batch.map_values(guest_row(w[:-1], w[-1]))
        (exp_h,) = ctx.federation.get("host_forward", tag, hosts)
        (wx_h,) = ctx.federation.get("host_wx", tag, hosts)
        d = exp_h.join(rows, fore)
        ctx.federation.remote(d.join(rows, rows_fn.weigh) if weighted else d, "fore_gradient", tag, hosts)
        enc = rows_fn.sum_vectors(d.join(rows, guest_columns).apply_partitions(rows_fn.enc_dot))
        grad = unmask(ctx, enc[:-1], "guest_gradient", tag) / n
        if not p.init_param.fit_intercept:
            grad[-1] = 0.0
        (yh,) = rows_fn.sum_vectors(wx_h.join(rows, label_column).apply_partitions(rows_fn.enc_dot))
        (reg,) = ctx.federation.get("host_loss_terms", tag, hosts)[0]
        plain = sum(rows.apply_partitions(loss_plain))
        ctx.federation.remote((enc[-1] - yh + plain) * (1.0 / n) + reg + opt.loss_penalty(w), "loss", tag, arbiter)
        return grad

    def _predict_guest(self, ctx: Context, raw: Dataset, data: Dataset, w: np.ndarray, kind: str,
                       stage: str) -> Dataset:  # fmt: skip
        """mu of each row of ``data`` ((Instance, offset) rows of ``raw``); the host sends its
        wx under the tag ``stage``."""
        (host_wx,) = ctx.federation.get("host_predict_wx", ctx.tag(stage), ctx.role_parties("host"))
        eta = data.table.map_values(eta_label(w[:-1], w[-1]))
        table = eta.join(host_wx, lambda a, b: (a, b)).map_values(prediction)
        meta = instances_meta(raw.meta, ["predict_result", "predict_score"], "label", type=kind)
        meta.extra.pop(SAMPLE_WEIGHT, None)  # predictions: the weights stay with the training rows
        return Dataset(table, meta)

    @staticmethod
    def _log_training(ctx: Context, fit: Fit) -> None:
        ctx.tracker.log_metric("train", "iterations", fit.iters)
        ctx.tracker.log_metric("train", "converged", bool(fit.converged))
        if fit.losses:
            ctx.tracker.log_metric("train", "loss", fit.losses)
        ctx.logger.info("trained %d iterations, converged=%s, last loss=%s", fit.iters, fit.converged,
                        fit.losses[-1] if fit.losses else "n/a")

    # ---------------------------------------------------------------- host
    def host(self, ctx: Context, p: HeteroPoissonParams, inputs: Inputs) -> Outputs:
        guest, arbiter = ctx.role_parties("guest"), ctx.role_parties("arbiter")
        self._host(ctx)
        if self._predicting(ctx, inputs):
            model = inputs.model[0]
            test = inputs.require(ctx.component, "test_data", "data")
            self._check_header(ctx, test, model["header"], "input data")
            weights = np.asarray(model["weights"], dtype=float)
            ctx.federation.remote(test.table.map_values(rows_fn.linear(weights, 0.0)), "host_predict_wx",
                                  ctx.tag("predict"), guest)  # fmt: skip
            return Outputs()
        data = inputs.require(ctx.component, "train_data", "data")
        header = data.meta.feature_columns
        if data.meta.extra.get(SAMPLE_WEIGHT):
            ctx.logger.warning("%s: this host's sample weights are not used; the guest's weight the rows",
                               ctx.component)
        (n_key,) = ctx.federation.get("paillier_pubkey", ctx.tag(), arbiter)
        pub = PaillierPublicKey(int(n_key))
        ((batch_ids, validating, every),) = ctx.federation.get("batch_info", ctx.tag(), guest)
        validate = inputs.data.get("validate_data") if validating else None
        if validating and validate is None:
            raise ComponentError(f"{ctx.component}: the guest validates on validate_data; connect this host's too")
        if validate is not None:
            self._check_header(ctx, validate, header, "validate_data")
        batches = Batches.of(data, batch_ids)
        w = init_weights(p.init_param, len(header), seed_offset=1)
        opt = self._optimizer(p, np.ones(len(header)))
        it = 0
        for it in range(p.max_iter):
            w_before = w.copy()
            for b, (batch, n) in enumerate(zip(batches.tables, batches.sizes)):
                tag = ctx.tag(f"{it}.{b}")
                wx = batch.map_values(rows_fn.linear(w, 0.0))
                ctx.federation.remote(wx.map_values(exp_encrypt(pub)), "host_forward", tag, guest)
                ctx.federation.remote(wx.map_values(rows_fn.encrypt(pub)), "host_wx", tag, guest)
                ctx.federation.remote([pub.encrypt(opt.loss_penalty(w))], "host_loss_terms", tag, guest)
                (d,) = ctx.federation.get("fore_gradient", tag, guest)
                enc = rows_fn.sum_vectors(d.join(batch, rows_fn.pair_features).apply_partitions(rows_fn.enc_dot))
                w = opt.step(w, unmask(ctx, enc, "host_gradient", tag) / n, it)
            if validate is not None and every and (it + 1) % every == 0:
                ctx.federation.remote(validate.table.map_values(rows_fn.linear(w, 0.0)), "host_predict_wx",
                                      ctx.tag(f"validate.{it}"), guest)  # fmt: skip
            if self._end_iteration(ctx, p, w - w_before, it):
                break
        for stage, rows in (("predict", data), ("validate", validate)):
            if rows is not None:
                ctx.federation.remote(rows.table.map_values(rows_fn.linear(w, 0.0)), "host_predict_wx",
                                      ctx.tag(stage), guest)  # fmt: skip
        ctx.logger.info("trained %d iterations", it + 1)
        return Outputs(model={"header": header, "weights": w, "iters": it + 1})

    # ---------------------------------------------------------------- arbiter
    def arbiter(self, ctx: Context, p: HeteroPoissonParams, inputs: Inputs) -> Outputs:
        hosts = self._host(ctx)
        if inputs.model:  # a predict job: guest and host score with their own weights, no key needed
            return Outputs()
        guest = ctx.role_parties("guest")
        pub, priv = generate_keypair(p.encrypt_param.key_length)
        ctx.federation.remote(pub.n, "paillier_pubkey", ctx.tag(), hosts)
        ((n_batches, stop_every),) = ctx.federation.get("batch_count", ctx.tag(), guest)
        losses: list[float] = []
        it, converged = 0, False
        for it in range(p.max_iter):
            loss_sum = 0.0
            for b in range(n_batches):
                tag = ctx.tag(f"{it}.{b}")
                for name, party in (("guest_gradient", guest[0]), ("host_gradient", hosts[0])):
                    (enc,) = ctx.federation.get(name, tag, [party])
                    ctx.federation.remote(priv.decrypt_many(enc), f"{name}_plain", tag, [party])
                loss_sum += priv.decrypt(ctx.federation.get("loss", tag, guest)[0])
            losses.append(loss_sum / n_batches)
            ctx.logger.info("iteration %d loss %.6f", it, losses[-1])
            converged = self._converged(ctx, p, it, losses, guest + hosts)
            if stop_every and (it + 1) % stop_every == 0:  # the guest's early stop on validate_data
                converged = bool(ctx.federation.get("validation_stop", ctx.tag(str(it)), guest)[0]) or converged
            ctx.federation.remote(converged, "converge_flag", ctx.tag(str(it)), guest + hosts)
            ctx.tracker.progress(it + 1, p.max_iter)
            if converged:
                break
        ctx.federation.remote(losses, "loss_history", ctx.tag("losses"), guest)
        self._log_training(ctx, Fit(np.zeros(0), it + 1, converged, losses))
        return Outputs(model={"iters": it + 1, "converged": converged, "loss_history": losses,
                              "key_length": p.encrypt_param.key_length})

    @staticmethod
    def _converged(ctx: Context, p: HeteroPoissonParams, it: int, losses: list[float], parties: list) -> bool:
        if p.early_stop == "weight_diff":
            return math.sqrt(sum(ctx.federation.get("weight_diff", ctx.tag(str(it)), parties))) < p.tol
        if p.early_stop == "abs":
            return losses[-1] < p.tol
        return len(losses) > 1 and abs(losses[-2] - losses[-1]) < p.tol
