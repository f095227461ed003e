"""HeteroSSHELR: vertical logistic regression on secret shares (FATE's SSHE: secret sharing
plus homomorphic encryption), guest and one host, no arbiter.

Both weight vectors stay additively shared between guest and host in Z_2^128 with 24
fractional bits (components/mpc); products run on Beaver triples the two parties make with
their own Paillier keys (components/linear/sshe_protocol.py). The loss, the second-order
Taylor expansion of the logistic loss as HeteroLR's, is revealed to the guest every
``reveal_loss_freq`` iterations; each party's weights are revealed to their owner only
(every iteration with ``reveal_every_iter``, else at the end). The model, its prediction
and a predict job are HeteroLR's: each party keeps its own weights, the host sends its
partial scores ``x_host·w_host`` to the guest. Labels other than 0/1 train one-vs-rest.
HeteroSSHELinR (components/linear/sshe_linr.py) runs the same on squared error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.base import Context, Dataset, Inputs, Outputs
from components.crypto.paillier import PaillierPublicKey, generate_keypair
from components.linear import hetero_rows as rows_fn
from components.linear import warm_start
from components.linear.family import LOGISTIC_TAYLOR, QuadraticLoss
from components.linear.hetero_lr import HeteroLR
from components.linear.hetero_schedule import batch_ids_of, model_scopes, stack_models
from components.linear.hetero_validation import Validator
from components.linear.sshe_params import HeteroSSHELRParams
from components.linear.sshe_protocol import Rows, Trainer
from components.mpc import FixedPoint, Session
from federation.api import Party
from flow.core.errors import ComponentError

#: FATE's 24 fractional bits; 128-bit ring so truncating products practically never fails
SSHE_FIXED_POINT = FixedPoint(precision_bits=24, ring_bits=128)


class FederationPeer:
    """The other party of a two-party :class:`Session`, over the job's federation."""

    def __init__(self, ctx: Context, other: Party, scope: str):
        self.ctx, self.other, self.scope = ctx, other, scope

    def send(self, name: str, obj: Any) -> None:
        self.ctx.federation.remote(obj, "sshe", self.ctx.tag(f"{self.scope}{name}"), [self.other])

    def recv(self, name: str) -> Any:
        return self.ctx.federation.get("sshe", self.ctx.tag(f"{self.scope}{name}"), [self.other])[0]


class HeteroSSHELR(HeteroLR):
    module = "HeteroSSHELR"
    params_model = HeteroSSHELRParams
    roles = ("guest", "host")
    loss: QuadraticLoss = LOGISTIC_TAYLOR

    # ---------------------------------------------------------------- shared steps
    def _one_host(self, ctx: Context) -> Party:
        hosts = ctx.role_parties("host")
        if len(hosts) != 1:
            raise ComponentError(f"{ctx.component}: not supported: {self.module} with {len(hosts)} hosts (the "
                                 "weights are shared between the guest and one host)")
        return hosts[0]

    def _session(self, ctx: Context, p: HeteroSSHELRParams, other: Party) -> Session:
        """Each party's own Paillier key; the public halves are exchanged."""
        pub, priv = generate_keypair(p.encrypt_param.key_length)
        ctx.federation.remote(pub.n, "sshe_pubkey", ctx.tag(), [other])
        (n_other,) = ctx.federation.get("sshe_pubkey", ctx.tag(), [other])
        party = 0 if ctx.role == "guest" else 1
        peer = FederationPeer(ctx, other, "mpc.")
        return Session(peer, party, SSHE_FIXED_POINT, priv, PaillierPublicKey(int(n_other)))

    @staticmethod
    def _rows(ctx: Context, data: Dataset, batches: list[list], intercept: bool) -> list[np.ndarray]:
        """The features of each batch in the guest's order (and a ones column for the intercept)."""
        rows = dict(data.table.collect())
        missing = [k for batch in batches for k in batch if k not in rows]
        if missing:
            raise ComponentError(f"{ctx.component}: the {ctx.role} has no rows for ids {missing[:5]} of the guest's "
                                 "training data; run Intersection first")
        out = []
        for batch in batches:
            x = np.stack([np.asarray(rows[k].features, dtype=float) for k in batch])
            out.append(np.hstack([x, np.ones((len(batch), 1))]) if intercept else x)
        return out

    @staticmethod
    def _dims_check(ctx: Context, dims: tuple[int, int], host: Party) -> None:
        if dims[1] == 0:
            raise ComponentError(f"{ctx.component}: host {host.party_id} has no features; HeteroSSHELR needs "
                                 "features on the host")
        if dims[0] == 0:
            raise ComponentError(f"{ctx.component}: the guest has no features and fit_intercept is false: nothing "
                                 "to train on the guest's side")

    # ---------------------------------------------------------------- guest
    def guest(self, ctx: Context, p: HeteroSSHELRParams, inputs: Inputs) -> Outputs:  # type: ignore[override]
        if self._predicting(ctx, inputs):
            return self._predict_job(ctx, p, inputs)
        host = self._one_host(ctx)
        data = self._train_data(ctx, inputs)
        header = data.meta.feature_columns
        classes = self._classes(ctx, data)
        n_models = None if classes is None else len(classes)
        ids = sorted(k for k, _ in data.table.collect())
        batches = batch_ids_of(p, ids) or [ids]
        task = "multi" if classes is not None else "binary" if self.loss.classifier else "regression"
        val = Validator.for_guest(ctx, p, inputs.data.get("validate_data"), task, per_iteration=False)
        if val is not None:
            self._check_header(ctx, val.data, header, "validate_data")
        intercept = int(p.init_param.fit_intercept)
        ctx.federation.remote((batches, n_models, val is not None, len(header) + intercept), "sshe_setup", ctx.tag(),
                              [host])  # fmt: skip
        (d_host,) = ctx.federation.get("sshe_dims", ctx.tag(), [host])
        dims = (len(header) + intercept, int(d_host))
        self._dims_check(ctx, dims, host)
        sess = self._session(ctx, p, host)
        x = self._rows(ctx, data, batches, intercept)
        labels = dict((k, inst.label) for k, inst in data.table.collect())
        penalized = (np.r_[np.ones(len(header)), np.zeros(intercept)], np.ones(dims[1]))
        trainer = Trainer(sess, p, self.loss, dims, penalized)
        scopes = model_scopes(n_models)
        starts = warm_start.starts(ctx, p.init_param, inputs, header, n_models, dims[0], 0, bool(intercept), classes)
        histories = warm_start.stored(ctx, warm_start.warm_model(inputs), "loss_history", n_models, [])
        fits = []
        for i, _ in enumerate(scopes):
            positive = None if classes is None else classes[i]
            t = [np.array([self.loss.target(labels[k] if positive is None else float(labels[k] == positive))
                           for k in batch]) for batch in batches]  # fmt: skip
            w0, start = starts[i]
            fits.append(trainer.fit(Rows(x, t), w0, self._progress(ctx, p, i, len(scopes)), start))
            fits[-1].losses = [float(v) for v in histories[i]] + (fits[-1].losses or [])  # a warm start's goes on
        w = stack_models(fits, n_models)
        if not intercept:
            w = np.concatenate([w, np.zeros(w.shape[:-1] + (1,))], axis=-1)
        predictions = self._predict_guest(ctx, p, data, w, [host], classes)
        if val is not None:
            val.log(ctx, val.evaluate(ctx, self._predict_guest(ctx, p, val.data, w, [host], classes, "validate",
                                                                "validate")))
        if n_models is None:
            predictions.meta.extra["loss_history"] = list(fits[0].losses or [])
        self._log_training(ctx, fits)
        model = {"header": header, "weights": w[..., :-1], "intercept": w[..., -1] if n_models else float(w[-1]),
                 **self._fit_record(fits, n_models)}
        if classes is not None:
            model["classes"] = classes.tolist()
        return Outputs(data=[predictions], model=model)

    @staticmethod
    def _progress(ctx: Context, p: HeteroSSHELRParams, index: int, count: int):
        def tell(it: int) -> None:
            ctx.tracker.progress(index * p.max_iter + it + 1, count * p.max_iter)
        return tell

    # ---------------------------------------------------------------- host
    def host(self, ctx: Context, p: HeteroSSHELRParams, inputs: Inputs) -> Outputs:  # type: ignore[override]
        if self._predicting(ctx, inputs):
            return self._predict_job(ctx, p, inputs)
        guest = ctx.role_parties("guest")
        self._one_host(ctx)
        data = self._train_data(ctx, inputs)
        header = data.meta.feature_columns
        ((batches, n_models, validating, d_guest),) = ctx.federation.get("sshe_setup", ctx.tag(), guest)
        ctx.federation.remote(len(header), "sshe_dims", ctx.tag(), guest)
        dims = (int(d_guest), len(header))
        self._dims_check(ctx, dims, ctx.local)
        validate = inputs.data.get("validate_data") if validating else None
        if validating and validate is None:
            raise ComponentError(f"{ctx.component}: the guest validates on validate_data; connect this host's too")
        if validate is not None:
            self._check_header(ctx, validate, header, "validate_data")
        sess = self._session(ctx, p, guest[0])
        x = self._rows(ctx, data, batches, False)
        penalized = (np.ones(dims[0]), np.ones(dims[1]))  # the guest's mask matters on the guest only
        if p.init_param.fit_intercept:
            penalized[0][-1] = 0.0
        trainer = Trainer(sess, p, self.loss, dims, penalized)
        scopes = model_scopes(n_models)
        starts = warm_start.starts(ctx, p.init_param, inputs, header, n_models, dims[1], 1, False)
        fits = [trainer.fit(Rows(x), w0, self._progress(ctx, p, i, len(scopes)), start)
                for i, (w0, start) in enumerate(starts)]
        w = stack_models(fits, n_models)
        for stage, rows in (("predict", data), ("validate", validate)):
            if rows is not None:
                ctx.federation.remote(rows.table.map_values(rows_fn.linear(w, 0.0)), "host_predict_wx",
                                      ctx.tag(stage), guest)  # fmt: skip
        iters = [f.iters for f in fits] if n_models is not None else fits[0].iters
        ctx.logger.info("trained %s iterations", iters)
        return Outputs(model={"header": header, "weights": w, "iters": iters})
