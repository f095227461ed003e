"""HeteroSSHELR: vertical logistic regression on secret shares (FATE's SSHE: secret sharing
plus homomorphic encryption), guest and one or more hosts, no arbiter.

Every party's weights stay additively shared in Z_2^128 with 24 fractional bits
(components/mpc; with several hosts between the guest and host 1, components/mpc/group.py);
products' cross terms are made by each pair of parties itself, with their own Paillier keys
or by oblivious transfer (``triple_provider``; components/mpc/beaver.py,
components/linear/sshe_protocol.py). The loss, the second-order Taylor expansion of the
logistic loss as HeteroLR's, is revealed to the guest every ``reveal_loss_freq``
iterations; each party's weights are revealed to their owner only (every iteration with
``reveal_every_iter``, else at the end), or with ``reveal_strategy:
encrypted_reveal_in_host`` a host's encrypted under the guest's key (sshe_reveal.py). The
model, its prediction and a predict job are HeteroLR's: each party keeps its own weights,
the host sends its partial scores ``x_host·w_host`` to the guest. Labels other than 0/1
train one-vs-rest.
HeteroSSHELinR (components/linear/sshe_linr.py) runs the same on squared error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.base import Context, Dataset, Inputs, Outputs
from components.crypto.paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair
from components.linear import hetero_rows as rows_fn
from components.linear import sshe_reveal, warm_start
from components.linear.family import LOGISTIC_TAYLOR, QuadraticLoss
from components.linear.hetero_lr import HeteroLR
from components.linear.hetero_schedule import batch_ids_of, model_scopes, stack_models
from components.linear.hetero_validation import Validator
from components.linear.sshe_params import HeteroSSHELRParams
from components.linear.sshe_protocol import Rows, Trainer
from components.mpc import FixedPoint, Session
from components.mpc.group import Group
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
    _guest_key: PaillierPrivateKey | None = None  # set when the hosts' scores arrive encrypted

    # ---------------------------------------------------------------- shared steps
    @staticmethod
    def _group(ctx: Context, p: HeteroSSHELRParams, parties: list[Party]) -> Group:
        """This party's two-party sessions: the guest with each host, host 1 with each other
        host (components/mpc/group.py). Paillier keys, one per party, are exchanged where the
        triples or an encrypted reveal need them."""
        me = parties.index(ctx.local)
        need = range(1, len(parties)) if me == 0 else [0, *range(2, len(parties))] if me == 1 else [0, 1]
        peers = [parties[o] for o in need]
        keys: list[PaillierPublicKey | None] = [None] * len(peers)
        priv = None
        if p.triple_provider == "paillier" or p.reveal_strategy == "encrypted_reveal_in_host":
            pub, priv = generate_keypair(p.encrypt_param.key_length)
            ctx.federation.remote(pub.n, "sshe_pubkey", ctx.tag(), peers)
            keys = [PaillierPublicKey(int(n)) for n in ctx.federation.get("sshe_pubkey", ctx.tag(), peers)]
        sessions = {o: Session(FederationPeer(ctx, parties[o], "mpc."), 0 if me < o else 1, SSHE_FIXED_POINT, priv,
                               key, triples=p.triple_provider) for o, key in zip(need, keys)}  # fmt: skip
        return Group(me, len(parties), sessions)

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
    def _peer_dims(ctx: Context, got: Any, count: int, sender: Party) -> list[int]:
        """Feature counts as a peer sent them: ``count`` ints in [0, 10**6], else one line naming it."""
        if not (isinstance(got, (list, tuple)) and len(got) == count
                and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 10**6 for d in got)):
            raise ComponentError(f"{ctx.component}: {sender} sent malformed feature counts (want {count} ints "
                                 f"in [0, 10**6]): {str(got)[:100]}")
        return list(got)

    @staticmethod
    def _dims_check(ctx: Context, dims: list[int], hosts: list[Party]) -> None:
        for host, d in zip(hosts, dims[1:]):
            if d == 0:
                raise ComponentError(f"{ctx.component}: host {host.party_id} has no features; HeteroSSHELR needs "
                                     "features on every host")
        if dims[0] == 0:
            raise ComponentError(f"{ctx.component}: the guest has no features and fit_intercept is false: nothing "
                                 "to train on the guest's side")

    @staticmethod
    def _penalized(p: HeteroSSHELRParams, dims: list[int]) -> tuple[np.ndarray, ...]:
        """1 where the penalty applies: everywhere but the guest's intercept."""
        out = [np.ones(d) for d in dims]
        if p.init_param.fit_intercept:
            out[0][-1] = 0.0
        return tuple(out)

    def _host_scores(self, ctx: Context, tables: list) -> list:
        if self._guest_key is None:
            return tables
        decrypt = sshe_reveal.guest_decrypt(self._guest_key, SSHE_FIXED_POINT)
        return [t.map_values(decrypt) for t in tables]

    # ---------------------------------------------------------------- guest
    def guest(self, ctx: Context, p: HeteroSSHELRParams, inputs: Inputs) -> Outputs:  # type: ignore[override]
        if self._predicting(ctx, inputs):
            record = inputs.model[0].get("hosts_key")
            self._guest_key = None if record is None else sshe_reveal.load_guest_key(ctx.component, record)
            return self._predict_job(ctx, p, inputs)
        hosts = ctx.role_parties("host")
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
        ctx.federation.remote((batches, n_models, val is not None), "sshe_setup", ctx.tag(), hosts)
        sent = ctx.federation.get("sshe_dims", ctx.tag(), hosts)
        dims = [len(header) + intercept, *(self._peer_dims(ctx, [d], 1, h)[0] for h, d in zip(hosts, sent))]
        ctx.federation.remote(dims, "sshe_all_dims", ctx.tag(), hosts)
        self._dims_check(ctx, dims, hosts)
        group = self._group(ctx, p, [ctx.local, *hosts])
        x = self._rows(ctx, data, batches, intercept)
        labels = dict((k, inst.label) for k, inst in data.table.collect())
        trainer = Trainer(group, p, self.loss, tuple(dims), self._penalized(p, dims))
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
        hidden = p.reveal_strategy == "encrypted_reveal_in_host"
        self._guest_key = group.canon.private_key if hidden and group.canon is not None else None
        predictions = self._predict_guest(ctx, p, data, w, hosts, classes)
        if val is not None:
            val.log(ctx, val.evaluate(ctx, self._predict_guest(ctx, p, val.data, w, hosts, classes, "validate",
                                                                "validate")))
        if n_models is None:
            predictions.meta.extra["loss_history"] = list(fits[0].losses or [])
        self._log_training(ctx, fits)
        model = {"header": header, "weights": w[..., :-1], "intercept": w[..., -1] if n_models else float(w[-1]),
                 **self._fit_record(fits, n_models)}
        if classes is not None:
            model["classes"] = classes.tolist()
        if self._guest_key is not None:
            model["hosts_key"] = sshe_reveal.guest_key_record(self._guest_key)
        return Outputs(data=[predictions], model=model)

    @staticmethod
    def _progress(ctx: Context, p: HeteroSSHELRParams, index: int, count: int):
        def tell(it: int) -> None:
            ctx.tracker.progress(index * p.max_iter + it + 1, count * p.max_iter)
        return tell

    # ---------------------------------------------------------------- host
    def host(self, ctx: Context, p: HeteroSSHELRParams, inputs: Inputs) -> Outputs:  # type: ignore[override]
        if self._predicting(ctx, inputs):
            return self._host_predict_job(ctx, p, inputs)
        guest, hosts = ctx.role_parties("guest"), ctx.role_parties("host")
        data = self._train_data(ctx, inputs)
        header = data.meta.feature_columns
        ((batches, n_models, validating),) = ctx.federation.get("sshe_setup", ctx.tag(), guest)
        ctx.federation.remote(len(header), "sshe_dims", ctx.tag(), guest)
        (dims,) = ctx.federation.get("sshe_all_dims", ctx.tag(), guest)
        dims = self._peer_dims(ctx, dims, 1 + len(hosts), guest[0])
        self._dims_check(ctx, dims, hosts)
        validate = inputs.data.get("validate_data") if validating else None
        if validating and validate is None:
            raise ComponentError(f"{ctx.component}: the guest validates on validate_data; connect this host's too")
        if validate is not None:
            self._check_header(ctx, validate, header, "validate_data")
        hidden = p.reveal_strategy == "encrypted_reveal_in_host"
        if hidden and warm_start.warm_model(inputs) is not None:
            raise ComponentError(f"{ctx.component}: not supported: a warm start with reveal_strategy "
                                 "'encrypted_reveal_in_host' (the host cannot read its stored weights)")
        group = self._group(ctx, p, [guest[0], *hosts])
        if dims[group.me] != len(header):
            raise ComponentError(f"{ctx.component}: {guest[0]} counts {dims[group.me]} features for this host, "
                                 f"which has {len(header)}")
        x = self._rows(ctx, data, batches, False)
        trainer = Trainer(group, p, self.loss, tuple(dims), self._penalized(p, dims))
        scopes = model_scopes(n_models)
        starts = warm_start.starts(ctx, p.init_param, inputs, header, n_models, dims[group.me], 1, False)
        fits = [trainer.fit(Rows(x), w0, self._progress(ctx, p, i, len(scopes)), start)
                for i, (w0, start) in enumerate(starts)]
        w = stack_models(fits, n_models)
        for stage, rows in (("predict", data), ("validate", validate)):
            if rows is not None:
                scores = (rows.table.map_partitions(sshe_reveal.host_scores(w, SSHE_FIXED_POINT)) if hidden
                          else rows.table.map_values(rows_fn.linear(w, 0.0)))
                ctx.federation.remote(scores, "host_predict_wx", ctx.tag(stage), guest)
        iters = [f.iters for f in fits] if n_models is not None else fits[0].iters
        ctx.logger.info("trained %s iterations", iters)
        weights = sshe_reveal.host_model(w) if hidden else {"weights": w}
        return Outputs(model={"header": header, **weights, "iters": iters})

    def _host_predict_job(self, ctx: Context, p: HeteroSSHELRParams, inputs: Inputs) -> Outputs:
        """HeteroLR's predict job; with encrypted weights the host sends its scores encrypted."""
        model = inputs.model[0]
        if "encrypted_weights" not in model:
            return self._predict_job(ctx, p, inputs)
        data = rows_fn.check_finite(ctx.component, inputs.require(ctx.component, "test_data", "data"))
        self._check_header(ctx, data, model["header"], "input")
        score = sshe_reveal.host_scores(sshe_reveal.load_host(ctx.component, model), SSHE_FIXED_POINT)
        ctx.federation.remote(data.table.map_partitions(score), "host_predict_wx", ctx.tag("predict"),
                              ctx.role_parties("guest"))
        return Outputs()
