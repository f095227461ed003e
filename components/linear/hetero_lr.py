"""HeteroLR: vertical logistic regression with a Paillier-holding arbiter.

Per batch, with y in {-1, +1} and the Taylor expansion of the logistic loss:

  host    [[wx_h]]                                  -> guest
  guest   [[4d]] = [[wx_h]] + wx_g - 2y             -> host     (d = 0.25 wx - 0.5 y)
  each    [[X^T 4d]] + mask                         -> arbiter, decrypts, returns
  each    removes its mask, divides by 4, steps its own weights
  guest   [[loss]] from [[wx_h]], [[sum wx_h^2]]    -> arbiter (convergence)

The arbiter holds the private key and only ever sees masked gradients and the loss;
guest and hosts only ever see ciphertexts of each other's values. Each party keeps
only its own weights. With several hosts the loss is not computed (its cross terms
would need two parties' values at once): use early_stop "weight_diff" there.
"""

from __future__ import annotations

import math
import secrets
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from components.activation import sigmoid
from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, instances_meta, keys_in
from components.crypto.paillier import PaillierPublicKey, generate_keypair
from components.crypto.vector import encrypted_dot
from components.linear.optimizer import Optimizer, init_weights
from components.linear.params import LinearParams
from flow.errors import ComponentError

MASK_SCALE = 2.0 ** 20
#: fractional bits of the features in the encrypted dot products (error ~1e-7, a third faster than 32)
DOT_PRECISION = 24


class EncryptParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["Paillier", "paillier"] = "Paillier"
    key_length: int = 1024


class HeteroLRParams(LinearParams):
    encrypt_param: EncryptParam = EncryptParam()
    batch_strategy: Literal["full", "random"] = "full"
    floating_point_precision: int | None = 23
    encrypted_mode_calculator_param: dict[str, Any] | None = None
    stepwise_param: dict[str, Any] | None = None
    sqn_param: dict[str, Any] | None = None


# ---- functions shipped to workers (module level: picklable) ------------------------

def _linear(w: np.ndarray, b: float):
    def f(inst: Instance) -> float:
        return float(inst.features @ w) + b
    return f


def _encrypt(pub: PaillierPublicKey):
    def f(v: float):
        return pub.encrypt(v).obfuscate()  # randomise here, on the workers, not when encoding
    return f


def _guest_row(w: np.ndarray, b: float):
    """Instance -> (wx_g, y in {-1, 1}, features)."""
    def f(inst: Instance) -> tuple[float, float, np.ndarray]:
        return float(inst.features @ w) + b, 2.0 * inst.label - 1.0, inst.features
    return f


def _fore4(c, t):
    """[[4d]] = [[wx_h]] + wx_g - 2y: no scalar multiplication on the critical path; the
    factor 1/4 is applied to the decrypted gradients. Re-randomised, so the host cannot
    recognise its own [[wx_h]] inside."""
    return (c + (t[0] - 2.0 * t[1])).obfuscate()


def _guest_columns(c, t):
    """([[4d]], [x_g..., 1, coef]) with coef = 0.25 wx_g - 0.5 y: one dot gives the guest's
    gradient, its intercept and the encrypted share of the loss at once."""
    wx, y, x = t
    return c, np.concatenate([x, [1.0, 0.25 * wx - 0.5 * y]])


def _add(a, b):
    return a + b


def _pair_features(c, inst: Instance):
    return c, inst.features


def _enc_dot(part):
    if not part:
        return None
    return encrypted_dot([c for _, (c, _) in part], np.stack([x for _, (_, x) in part]), DOT_PRECISION)


def _loss_plain(part):
    """The guest's plaintext part of the Taylor loss sum, minus what the [[4d]] column adds."""
    total = 0.0
    for _, (wx, y, _) in part:
        coef = 0.25 * wx - 0.5 * y
        total += -0.5 * y * wx + 0.125 * wx * wx - coef * (wx - 2.0 * y)
    return total


def _square_sum(part):
    return sum(v * v for _, v in part)


def _sum_vectors(parts: list) -> list:
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ComponentError("no rows in this batch")
    total = parts[0]
    for p in parts[1:]:
        total = [a + b for a, b in zip(total, p)]
    return total


def _prediction(threshold: float):
    def f(t) -> Instance:
        (wx_g, y), wx_h = t
        score = float(sigmoid(wx_g + wx_h))
        return Instance(np.array([1.0 if score >= threshold else 0.0, score]), y)
    return f


class HeteroLR(Component):
    module = "HeteroLR"
    params_model = HeteroLRParams
    roles = ("guest", "host", "arbiter")
    input_data = ("train_data", "validate_data", "data", "test_data")
    accepts_model = True
    output_model = True

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _train_data(ctx: Context, inputs: Inputs) -> Dataset:
        return inputs.require(ctx.component, "train_data", "data")

    @staticmethod
    def _optimizer(p: HeteroLRParams, penalized: np.ndarray) -> Optimizer:
        return Optimizer(p.optimizer, p.learning_rate, p.alpha, p.penalty, p.decay, p.decay_sqrt, penalized)

    @staticmethod
    def _batches(ctx: Context, p: HeteroLRParams, data: Dataset, ids: list | None) -> list:
        if not ids:
            return [data.table]
        return [data.table.filter(keys_in(frozenset(batch))) for batch in ids]

    def _unmask(self, ctx: Context, enc: list, name: str, tag: str) -> np.ndarray:
        """Send [[g]] + r to the arbiter and return g."""
        mask = np.array([(secrets.randbits(53) / 2.0 ** 53 - 0.5) * 2 * MASK_SCALE for _ in enc])
        arbiter = ctx.role_parties("arbiter")
        ctx.federation.remote([c + float(r) for c, r in zip(enc, mask)], name, tag, arbiter)
        (plain,) = ctx.federation.get(f"{name}_plain", tag, arbiter)
        return np.asarray(plain, dtype=float) - mask

    # ---------------------------------------------------------------- guest
    def guest(self, ctx: Context, p: HeteroLRParams, inputs: Inputs) -> Outputs:
        if self._predicting(ctx, inputs):
            return self._predict_job(ctx, p, inputs)
        data = self._train_data(ctx, inputs)
        header = data.meta.feature_columns
        hosts, arbiter = ctx.role_parties("host"), ctx.role_parties("arbiter")
        fit_b = p.init_param.fit_intercept
        # no key needed here: the guest only adds plain numbers to the hosts' ciphertexts
        ids = sorted(k for part in data.table.apply_partitions(lambda part: [k for k, _ in part]) for k in part)
        batch_ids = self._batch_ids(p, ids)
        ctx.federation.remote(batch_ids, "batch_info", ctx.tag(), hosts)
        ctx.federation.remote(max(1, len(batch_ids)), "batch_count", ctx.tag(), arbiter)
        batches = self._batches(ctx, p, data, batch_ids)
        sizes = [b.count() for b in batches]
        w = init_weights(p.init_param, len(header) + 1)
        if not fit_b:
            w[-1] = 0.0
        opt = self._optimizer(p, np.r_[np.ones(len(header)), 0.0])
        losses: list[float] = []
        it, converged = 0, False
        for it in range(p.max_iter):
            w_before = w.copy()
            for b, (batch, n) in enumerate(zip(batches, sizes)):
                tag = ctx.tag(f"{it}.{b}")
                rows = batch.map_values(_guest_row(w[:-1], w[-1]))
                enc_h = ctx.federation.get("host_forward", tag, hosts)
                enc_sum = enc_h[0]
                for other in enc_h[1:]:
                    enc_sum = enc_sum.join(other, _add)
                fore = enc_sum.join(rows, _fore4)
                ctx.federation.remote(fore, "fore_gradient", tag, hosts)
                enc = _sum_vectors(fore.join(rows, _guest_columns).apply_partitions(_enc_dot))
                grad = 0.25 * self._unmask(ctx, enc[:-1], "guest_gradient", tag) / n
                if not fit_b:
                    grad[-1] = 0.0
                if len(hosts) == 1:
                    sq, reg = ctx.federation.get("host_loss_terms", tag, hosts)[0]
                    plain = sum(rows.apply_partitions(_loss_plain)) + n * math.log(2)
                    enc_loss = (enc[-1] + sq * 0.125 + plain) * (1.0 / n) + reg + opt.loss_penalty(w)
                    ctx.federation.remote(enc_loss, "loss", tag, arbiter)
                w = opt.step(w, grad, it)
            if converged := self._end_iteration(ctx, p, w - w_before, it):
                break
        losses = ctx.federation.get("loss_history", ctx.tag(), arbiter)[0]
        predictions = self._predict_guest(ctx, p, data, w, hosts)
        predictions.meta.extra["loss_history"] = list(losses)  # Evaluation stores it as the loss curve
        self._log_training(ctx, it + 1, converged, losses)
        model = {"header": header, "weights": w[:-1], "intercept": float(w[-1]), "iters": it + 1,
                 "converged": bool(converged), "loss_history": losses}
        return Outputs(data=[predictions], model=model)

    @staticmethod
    def _batch_ids(p: HeteroLRParams, ids: list) -> list:
        if p.batch_size == -1 or p.batch_size >= len(ids):
            return []
        order = list(ids)
        if p.shuffle:
            seed = p.init_param.random_seed
            np.random.default_rng(seed).shuffle(order)
        return [order[i:i + p.batch_size] for i in range(0, len(order), p.batch_size)]

    def _predict_guest(self, ctx: Context, p: HeteroLRParams, data: Dataset, w: np.ndarray, hosts,
                       kind: str = "train") -> Dataset:
        host_wx = ctx.federation.get("host_predict_wx", ctx.tag("predict"), hosts)
        total = host_wx[0]
        for other in host_wx[1:]:
            total = total.join(other, _add)
        gy = data.table.map_values(lambda inst, w=w: (float(inst.features @ w[:-1]) + w[-1], inst.label))
        table = gy.join(total, lambda a, b: (a, b)).map_values(_prediction(p.predict_param.threshold))
        meta = instances_meta(data.meta, ["predict_result", "predict_score"], "label", type=kind)
        return Dataset(table, meta)

    def _log_training(self, ctx: Context, iters: int, converged: bool, losses: list[float]) -> None:
        ctx.tracker.log_metric("train", "iterations", iters)
        ctx.tracker.log_metric("train", "converged", bool(converged))
        if losses:
            ctx.tracker.log_metric("train", "loss", losses)
        ctx.logger.info("trained %d iterations, converged=%s, last loss=%s", iters, converged,
                        losses[-1] if losses else "n/a")

    @staticmethod
    def _end_iteration(ctx: Context, p: HeteroLRParams, delta: np.ndarray, it: int) -> bool:
        """Report this party's weight change if asked, then learn from the arbiter whether to stop."""
        tag, arbiter = ctx.tag(str(it)), ctx.role_parties("arbiter")
        if p.early_stop == "weight_diff":
            ctx.federation.remote(float(delta @ delta), "weight_diff", tag, arbiter)
        ctx.tracker.progress(it + 1, p.max_iter)
        return bool(ctx.federation.get("converge_flag", tag, arbiter)[0])

    # ---------------------------------------------------------------- predict job
    @staticmethod
    def _predicting(ctx: Context, inputs: Inputs) -> bool:
        if inputs.model and "train_data" in inputs.data:
            raise ComponentError(f"{ctx.component}: warm start from input.model is not supported; "
                                 "connect a model only in a predict job (input data 'test_data')")
        return bool(inputs.model)

    def _predict_job(self, ctx: Context, p: HeteroLRParams, inputs: Inputs) -> Outputs:
        """Each party scores its rows with its stored weights; hosts send their wx to the guest
        in the clear, as at the end of training (the guest alone holds the scores)."""
        model = inputs.model[0]
        data = inputs.require(ctx.component, "test_data", "data")
        if list(data.meta.feature_columns) != list(model["header"]):
            raise ComponentError(f"{ctx.component}: input columns {list(data.meta.feature_columns)} differ from "
                                 f"the model's {list(model['header'])}")
        weights = np.asarray(model["weights"], dtype=float)
        if ctx.role == "host":
            ctx.federation.remote(data.table.map_values(_linear(weights, 0.0)), "host_predict_wx",
                                  ctx.tag("predict"), ctx.role_parties("guest"))
            return Outputs()
        w = np.r_[weights, float(model["intercept"])]
        return Outputs(data=[self._predict_guest(ctx, p, data, w, ctx.role_parties("host"), "predict")])

    # ---------------------------------------------------------------- host
    def host(self, ctx: Context, p: HeteroLRParams, inputs: Inputs) -> Outputs:
        if self._predicting(ctx, inputs):
            return self._predict_job(ctx, p, inputs)
        data = self._train_data(ctx, inputs)
        header = data.meta.feature_columns
        guest, arbiter = ctx.role_parties("guest"), ctx.role_parties("arbiter")
        (n_key,) = ctx.federation.get("paillier_pubkey", ctx.tag(), arbiter)
        pub = PaillierPublicKey(int(n_key))
        (batch_ids,) = ctx.federation.get("batch_info", ctx.tag(), guest)
        batches = self._batches(ctx, p, data, batch_ids)
        sizes = [b.count() for b in batches]
        index = ctx.role_parties("host").index(ctx.local)
        w = init_weights(p.init_param, len(header), seed_offset=1 + index)
        opt = self._optimizer(p, np.ones(len(header)))
        it = 0
        for it in range(p.max_iter):
            w_before = w.copy()
            for b, (batch, n) in enumerate(zip(batches, sizes)):
                tag = ctx.tag(f"{it}.{b}")
                wx = batch.map_values(_linear(w, 0.0))
                ctx.federation.remote(wx.map_values(_encrypt(pub)), "host_forward", tag, guest)
                if len(ctx.role_parties("host")) == 1:
                    sq = sum(wx.apply_partitions(_square_sum))
                    terms = [pub.encrypt(sq), pub.encrypt(opt.loss_penalty(w))]
                    ctx.federation.remote(terms, "host_loss_terms", tag, guest)
                (fore,) = ctx.federation.get("fore_gradient", tag, guest)
                enc_grad = _sum_vectors(fore.join(batch, _pair_features).apply_partitions(_enc_dot))
                grad = 0.25 * self._unmask(ctx, enc_grad, "host_gradient", tag) / n
                w = opt.step(w, grad, it)
            if self._end_iteration(ctx, p, w - w_before, it):
                break
        ctx.federation.remote(data.table.map_values(_linear(w, 0.0)), "host_predict_wx", ctx.tag("predict"), guest)
        ctx.logger.info("trained %d iterations", it + 1)
        return Outputs(model={"header": header, "weights": w, "iters": it + 1})

    # ---------------------------------------------------------------- arbiter
    def arbiter(self, ctx: Context, p: HeteroLRParams, inputs: Inputs) -> Outputs:
        if inputs.model:  # a predict job: guest and hosts score with their own weights, no key needed
            return Outputs()
        guest, hosts = ctx.role_parties("guest"), ctx.role_parties("host")
        pub, priv = generate_keypair(p.encrypt_param.key_length)
        ctx.federation.remote(pub.n, "paillier_pubkey", ctx.tag(), hosts)
        (n_batches,) = ctx.federation.get("batch_count", ctx.tag(), guest)
        losses: list[float] = []
        it, converged = 0, False
        for it in range(p.max_iter):
            loss_sum = 0.0
            for b in range(n_batches):
                tag = ctx.tag(f"{it}.{b}")
                for name, party in [("guest_gradient", guest[0])] + [("host_gradient", h) for h in hosts]:
                    (enc,) = ctx.federation.get(name, tag, [party])
                    ctx.federation.remote(priv.decrypt_many(enc), f"{name}_plain", tag, [party])
                if len(hosts) == 1:
                    (enc_loss,) = ctx.federation.get("loss", tag, guest)
                    loss_sum += priv.decrypt(enc_loss)
            converged = self._converged(ctx, p, it, loss_sum / n_batches, losses, guest + hosts, len(hosts))
            ctx.federation.remote(converged, "converge_flag", ctx.tag(str(it)), guest + hosts)
            ctx.tracker.progress(it + 1, p.max_iter)
            if converged:
                break
        ctx.federation.remote(losses, "loss_history", ctx.tag(), guest)
        self._log_training(ctx, it + 1, converged, losses)
        return Outputs(model={"iters": it + 1, "converged": bool(converged), "loss_history": losses,
                              "key_length": p.encrypt_param.key_length})

    @staticmethod
    def _converged(ctx: Context, p: HeteroLRParams, it: int, loss: float, losses: list[float],
                   parties, n_hosts: int) -> bool:
        if n_hosts == 1:
            losses.append(loss)
            ctx.logger.info("iteration %d loss %.6f", it, loss)
        if p.early_stop == "weight_diff":
            diffs = ctx.federation.get("weight_diff", ctx.tag(str(it)), parties)
            return math.sqrt(sum(diffs)) < p.tol
        if n_hosts != 1:
            raise ComponentError(f"{ctx.component}: early_stop '{p.early_stop}' needs the loss, which is not "
                                 "computed with several hosts; use early_stop 'weight_diff'")
        if p.early_stop == "abs":
            return loss < p.tol
        return len(losses) > 1 and abs(losses[-2] - loss) < p.tol
