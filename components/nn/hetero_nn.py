"""HeteroNN: a vertically split PyTorch network, the guest holding the label.

Guest and host each run a bottom model on their own features (``bottom_nn_define`` or
``bottom_model``, set per role); the interactive layer ``z = act(a_g·W_g + b + a_h·W_h)``
joins them; the top model (``top_nn_define`` / ``top_model``) and the loss run at the guest.
``W_g`` and ``b`` are the guest's; ``W_h`` exists only as additive shares of both parties and
every product with it runs under Paillier (:mod:`components.nn.interactive`): the guest
learns ``a_h·W_h`` but never ``a_h``, the host learns ``∂L/∂a_h`` (to train its bottom
model) but never the labels, ``∂L/∂z`` or the top model. The interactive layer is trained
by plain SGD at ``interactive_layer_lr`` (its host part is updated share by share), the
bottom and top models by ``optimizer``.

Batches: both parties sort the common ids as strings and take each epoch's rows in the order
``numpy.random.default_rng([torch_seed, epoch]).permutation(n)`` (as HomoNN). Initial
weights: the models by torch's defaults under ``torch_seed``; ``W_g``, ``b`` and ``W_h``
uniform in ``±1/sqrt(fan_in)`` from ``default_rng([torch_seed, 1])`` (guest) and
``default_rng([torch_seed, 2])`` (host). Binary and multiclass; one host.

Each party's model keeps its own part only (specs, bottom model, its share of ``W_h``; the
guest also ``W_g``, ``b`` and the top model); a predict job (``input.model`` with
``test_data`` or ``data``) scores with them through the same masked cross products
(:mod:`components.nn.hetero_parts`). A model with ``train_data`` (warm start) is refused.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Inputs, Outputs, TrainingParams
from components.crypto.params import EncryptParam
from components.linear.params import PredictParam
from components.nn.hetero_parts import (
    GuestNet,
    guest_scorer,
    host_scorer,
    predict_guest,
    predict_host,
    share_record,
    spec_of,
)
from components.nn.homo_nn import HomoNN, read_rows
from components.nn.params import LAYERS, LOSSES, HomoNNParams, ModelSpec, ordered_layers
from flow.core.errors import ComponentError

ACTIVATIONS = frozenset({"ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "GELU", "SiLU", "SELU", "Softplus"})
#: keys of an interactive layer spec: FATE 1.10's InteractiveLayer, or a Linear in an nn_define
INTERACTIVE_KEYS = {"layer", "out_dim", "out_features", "guest_dim", "host_dim", "host_num", "in_features",
                    "activation", "bias", "initializer", "need_guest"}


def _refuse(what: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("not_supported", "not supported: " + what, ctx)


class HeteroNNParams(TrainingParams):
    inert = TrainingParams.inert | {"config_type", "floating_point_precision"}

    task_type: Literal["classification", "regression"] = "classification"
    bottom_nn_define: dict[str, Any] | list[Any] | None = None
    bottom_model: dict[str, Any] | None = None
    interactive_layer_define: dict[str, Any] | None = None
    top_nn_define: dict[str, Any] | list[Any] | None = None
    top_model: dict[str, Any] | None = None
    interactive_layer_lr: float = Field(0.1, gt=0)
    loss: dict[str, Any] | str | None = None
    optimizer: dict[str, Any] | str = {"optimizer": "SGD", "lr": 0.01}
    epochs: int | None = Field(None, ge=1)
    max_iter: int | None = Field(None, ge=1)
    batch_size: int = -1
    shuffle: bool = True
    early_stop: Literal["diff", "abs"] | dict[str, Any] | None = None
    tol: float = 1e-4
    torch_seed: int = 100
    seed: int | None = None
    device: str = "cpu"
    encrypt_param: EncryptParam = EncryptParam()
    predict_param: PredictParam = PredictParam()
    config_type: Literal["pytorch", "nn", "keras"] = "pytorch"
    floating_point_precision: int | None = 23
    selector_param: dict[str, Any] | None = None
    coae_param: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> HeteroNNParams:
        if self.config_type == "keras":
            raise _refuse("HeteroNN config_type 'keras' (declare torch layers: config_type pytorch)")
        if self.task_type == "regression":
            raise _refuse("HeteroNN task_type regression (binary and multiclass classification only)")
        if self.selector_param or self.coae_param:
            raise _refuse("HeteroNN selector_param / coae_param (selective backpropagation, label protection)")
        if self.cv_param.need_cv:
            raise _refuse("cv_param.need_cv for HeteroNN")
        if self.batch_size != -1 and self.batch_size <= 0:
            raise PydanticCustomError("batch_size", "batch_size must be -1 (all rows) or positive, got {b}",
                                      {"b": self.batch_size})
        if self.epochs is not None and self.max_iter is not None and self.epochs != self.max_iter:
            raise PydanticCustomError("conflict", "epochs and max_iter differ: set one", {})
        for part in ("bottom", "top"):
            self.sub(part)  # validates the network, the loss and the optimizer
        if self.interactive_layer_define is not None:
            self.interactive()
        if self.loss is not None and LOSSES.get(self.sub_loss_name()) not in ("binary", "multi"):
            raise _refuse("HeteroNN loss '{n}' (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss)",
                          n=self.sub_loss_name())
        self.stop_rule()
        return self

    def sub_loss_name(self) -> str:
        return self.loss if isinstance(self.loss, str) else str((self.loss or {}).get("loss_fn", ""))

    def sub(self, part: str) -> HomoNNParams | None:
        """The bottom or top network as HomoNN params (the same layer allow list and builders)."""
        define, model = getattr(self, f"{part}_nn_define"), getattr(self, f"{part}_model")
        if define is not None and model is not None:
            raise PydanticCustomError("model", "set one of {p}_nn_define and {p}_model", {"p": part})
        if define is None and model is None:
            return None
        spec = {"nn_define": define} if define is not None else {"model": ModelSpec.model_validate(model)}
        return HomoNNParams.model_validate({**spec, "loss": self.loss or {"loss_fn": "BCELoss"},
                                            "optimizer": self.optimizer, "torch_seed": self.torch_seed})

    def interactive(self) -> tuple[int, str | None]:
        """(out_dim, activation name or None) of ``interactive_layer_define``."""
        define = self.interactive_layer_define or {}
        spec = define
        if "layer" not in define and define and all(isinstance(v, dict) for v in define.values()):
            layers = ordered_layers(define)
            spec = layers[0]
            if len(layers) > 1:
                extra = [s.get("layer") for s in layers[1:]]
                if len(layers) != 2 or extra[0] not in ACTIVATIONS:
                    raise _refuse("interactive_layer_define layers {x} (one Linear, then one activation)", x=extra)
                spec = {**spec, "activation": extra[0]}
        unknown = sorted(set(spec) - INTERACTIVE_KEYS)
        if unknown:
            raise _refuse("interactive_layer_define keys {u} (known: {k})", u=unknown, k=sorted(INTERACTIVE_KEYS))
        if spec.get("layer", "InteractiveLayer") not in ("InteractiveLayer", "Linear"):
            raise _refuse("interactive layer '{n}' (InteractiveLayer or Linear)", n=spec.get("layer"))
        if spec.get("host_num", 1) != 1:
            raise _refuse("HeteroNN with host_num {h} (one host)", h=spec.get("host_num"))
        if spec.get("need_guest") is False or spec.get("bias") is False:
            raise _refuse("interactive_layer_define need_guest/bias false")
        out = spec.get("out_dim", spec.get("out_features"))
        if not isinstance(out, int) or out < 1:
            raise PydanticCustomError("interactive", "interactive_layer_define needs out_dim (a positive integer)",
                                      {})
        act = spec.get("activation")
        if act is not None and act not in ACTIVATIONS:
            raise _refuse("interactive layer activation '{a}' ({k})", a=act, k=sorted(ACTIVATIONS & LAYERS))
        return out, act

    def n_epochs(self) -> int:
        return self.epochs or self.max_iter or 10

    def stop_rule(self) -> tuple[str | None, float]:
        early, tol = self.early_stop, self.tol
        if isinstance(early, dict):  # FATE <= 1.8: {"early_stop": "diff", "eps": 1e-4}
            if set(early) - {"early_stop", "eps"} or early.get("early_stop") not in ("diff", "abs", None):
                raise _refuse("early_stop {e} (diff or abs, with eps)", e=early)
            return early.get("early_stop"), float(early.get("eps", tol))
        return early, tol

    # HomoNN._scored reads these two
    def loss_name(self) -> str:
        return self.sub_loss_name()


def _digest(ids: list[Any]) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()


class HeteroNN(Component):
    module = "HeteroNN"
    params_model = HeteroNNParams
    roles = ("guest", "host")
    input_data = ("train_data", "validate_data", "data", "test_data")
    accepts_model = True
    output_model = True

    def _setup(self, ctx: Context, p: HeteroNNParams, inputs: Inputs) -> tuple[Any, Any, str]:
        from components.crypto.paillier import PaillierPublicKey, generate_keypair
        from components.linear.sshe_lr import FederationPeer
        from components.mpc import Session
        from components.nn.device import select_device
        from components.nn.interactive import NN_FIXED_POINT

        where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
        device = select_device(ctx, p.device)
        if inputs.model and "train_data" in inputs.data:
            raise ComponentError(f"{where}: not supported: HeteroNN warm start (input.model with train_data)")
        for part in () if inputs.model else ("bottom", "top") if ctx.role == "guest" else ("bottom",):
            self._net(p, part, where)
        if p.interactive_layer_define is None and ctx.role == "guest" and not inputs.model:
            raise ComponentError(f"{where}: HeteroNN needs interactive_layer_define on the guest")
        if ctx.role == "guest" and p.loss is None and not inputs.model:
            raise ComponentError(f"{where}: HeteroNN needs a loss (e.g. {{\"loss_fn\": \"BCELoss\"}})")
        others = ctx.role_parties("host" if ctx.role == "guest" else "guest")
        if len(others) != 1:
            raise ComponentError(f"{where}: not supported: HeteroNN with {len(ctx.role_parties('host'))} hosts "
                                 "(one guest and one host)")
        pub, priv = generate_keypair(p.encrypt_param.key_length)
        ctx.federation.remote(pub.n, "hnn_pubkey", ctx.tag(), others)
        (n_other,) = ctx.federation.get("hnn_pubkey", ctx.tag(), others)
        session = Session(FederationPeer(ctx, others[0], "hnn."), 0 if ctx.role == "guest" else 1, NN_FIXED_POINT,
                          priv, PaillierPublicKey(int(n_other)))
        return device, session, where

    @staticmethod
    def _net(p: HeteroNNParams, part: str, where: str) -> HomoNNParams:
        found = p.sub(part)
        if found is None:
            raise ComponentError(f"{where}: HeteroNN needs {part}_nn_define or {part}_model here")
        return found

    @staticmethod
    def _same_rows(session: Any, role: str, ids: list[Any], what: str, where: str) -> None:
        """Both parties hold the same ids (compared by digest); both stop if not."""
        theirs = session.announce(1, _digest(ids) if role == "host" else None)
        ok = session.announce(0, theirs == _digest(ids) if role == "guest" else None)
        if not ok:
            raise ComponentError(f"{where}: the guest's and the host's {what} rows differ (run Intersection first)")

    # ------------------------------------------------------------------ guest
    def guest(self, ctx: Context, p: HeteroNNParams, inputs: Inputs) -> Outputs:
        import torch

        from components.nn.build import build_loss, get_flat, layout
        from components.nn.interactive import InteractiveGuest
        from components.nn.local import epoch_order, targets

        device, session, where = self._setup(ctx, p, inputs)
        if inputs.model:  # a predict job: the stored parts score the rows as in training
            return predict_guest(ctx, p, inputs, session, device, where, self._same_rows)
        data = inputs.require(ctx.component, "train_data", "data")
        ids, x, y = read_rows(data, True, where)
        y = np.zeros(0) if y is None else y
        self._same_rows(session, "guest", ids, "train_data", where)
        task = LOSSES[p.sub_loss_name()]
        classes = sorted({float(v) for v in y})
        if task == "binary" and not set(classes) <= {0.0, 1.0}:
            raise ComponentError(f"{where}: binary HeteroNN needs labels 0/1, got {classes[:10]} (a multiclass loss "
                                 "such as CrossEntropyLoss trains several classes)")
        if task == "binary":
            classes = [0.0, 1.0]
        out_dim, act = p.interactive()
        host_dim = int(session.announce(1))
        session.announce(0, out_dim)
        bottom, top = self._net(p, "bottom", where), self._net(p, "top", where)
        net = GuestNet(bottom, top, x.shape[1], host_dim, out_dim, act, p, device, where)
        inter = InteractiveGuest(session, p.interactive_layer_lr, host_dim, out_dim)
        xt = torch.as_tensor(x, device=device)
        yt = targets(y, task, classes, p.sub_loss_name(), net.width, where).to(device)
        loss_fn = build_loss(bottom, where)
        n, size = len(ids), p.batch_size if p.batch_size > 0 else len(ids)
        rule, tol = p.stop_rule()
        losses: list[float] = []
        ctx.logger.info("%s: training %d rows, batches of %d", where, n, size)
        for epoch in range(p.n_epochs()):
            order = epoch_order(n, p.torch_seed, epoch, p.shuffle)
            total = 0.0
            for start in range(0, n, size):
                idx = torch.as_tensor(order[start:start + size], device=device)
                net.zero_grad()
                zh = torch.as_tensor(inter.forward(len(idx)), dtype=torch.float32, device=device).requires_grad_()
                loss = loss_fn(net(xt[idx], zh), yt[idx])
                loss.backward()
                delta = zh.grad if zh.grad is not None else torch.zeros_like(zh)
                inter.backward(delta.to("cpu", torch.float64).numpy())
                net.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / n)
            if not np.isfinite(losses[-1]):
                raise ComponentError(f"{where}: the loss became {losses[-1]} in epoch {epoch} (lower the lr?)")
            ctx.tracker.progress(epoch + 1, p.n_epochs())
            ctx.logger.info("%s: epoch %d of %d: loss %.6f", where, epoch + 1, p.n_epochs(), losses[-1])
            stop = (rule == "abs" and losses[-1] < tol) or \
                (rule == "diff" and len(losses) > 1 and abs(losses[-2] - losses[-1]) < tol)
            if session.announce(0, bool(stop)):
                break
        ctx.logger.info("%s: %d rows, %d epochs, loss %.6f", where, n, len(losses), losses[-1])
        ctx.tracker.log_metric("train", "loss", losses)
        ctx.tracker.log_metric("train", "epochs", len(losses))

        score = guest_scorer(net, inter, device)
        out = [HomoNN._scored(p, ctx, data, ids, score(x), task, classes, "train")]  # type: ignore[arg-type]
        ports = [port for port in ("validate_data", "test_data") if port in inputs.data]
        session.announce(0, ports)
        for port in ports:
            vids, vx, _ = read_rows(inputs.data[port], False, where)
            self._same_rows(session, "guest", vids, port, where)
            kind = "validate" if port == "validate_data" else "test"
            out.append(HomoNN._scored(p, ctx, inputs.data[port], vids, score(vx), task, classes,  # type: ignore
                                      kind))
        model = {"header": list(data.meta.feature_columns), "task_type": task, "classes": classes,
                 "loss_history": losses, "bottom": get_flat(net.bottom), "bottom_layout": layout(net.bottom),
                 "top": get_flat(net.top), "top_layout": layout(net.top), "interactive_guest": get_flat(net.inter),
                 "interactive_out_dim": out_dim, "interactive_activation": act, "host_dim": host_dim,
                 "interactive_share": share_record(inter.u), "params": spec_of(p)}
        return Outputs(data=out, model=model)

    # ------------------------------------------------------------------ host
    def host(self, ctx: Context, p: HeteroNNParams, inputs: Inputs) -> Outputs:
        import torch

        from components.nn.build import build_model, build_optimizer, get_flat, layout
        from components.nn.interactive import InteractiveHost
        from components.nn.local import epoch_order

        device, session, where = self._setup(ctx, p, inputs)
        if inputs.model:
            return predict_host(ctx, inputs, session, device, where, self._same_rows)
        data = inputs.require(ctx.component, "train_data", "data")
        ids, x, _ = read_rows(data, False, where)
        self._same_rows(session, "host", ids, "train_data", where)
        bottom_p = self._net(p, "bottom", where)
        bottom = build_model(bottom_p, x.shape[1], where).to(device)
        optimizer = build_optimizer(bottom_p, bottom, where)
        xt = torch.as_tensor(x, device=device)
        with torch.no_grad():
            host_dim = int(bottom(xt[:1]).reshape(1, -1).shape[1])
        session.announce(1, host_dim)
        w0 = self._host_weights(session, p, host_dim)
        inter = InteractiveHost(session, p.interactive_layer_lr, w0)
        n, size = len(ids), p.batch_size if p.batch_size > 0 else len(ids)
        for epoch in range(p.n_epochs()):
            order = epoch_order(n, p.torch_seed, epoch, p.shuffle)
            bottom.train()
            for start in range(0, n, size):
                idx = torch.as_tensor(order[start:start + size], device=device)
                optimizer.zero_grad()
                a = bottom(xt[idx]).reshape(len(idx), -1)
                inter.forward(a.detach().to("cpu", torch.float64).numpy())
                grad = inter.backward()
                a.backward(torch.as_tensor(grad, dtype=a.dtype, device=device))
                optimizer.step()
            ctx.tracker.progress(epoch + 1, p.n_epochs())
            if session.announce(0):
                break
        bottom.eval()

        score = host_scorer(bottom, inter, device)
        score(x)
        for port in session.announce(0):
            if port not in inputs.data:
                raise ComponentError(f"{where}: the guest scores {port}, which is not connected on the host")
            vids, vx, _ = read_rows(inputs.data[port], False, where)
            self._same_rows(session, "host", vids, port, where)
            score(vx)
        return Outputs(model={"header": list(data.meta.feature_columns), "bottom": get_flat(bottom),
                              "bottom_layout": layout(bottom), "interactive_share_bits": 128,
                              "interactive_share": share_record(inter.u), "params": spec_of(p),
                              "host_dim": host_dim, "interactive_out_dim": int(w0.shape[1])})

    @staticmethod
    def _host_weights(session: Any, p: HeteroNNParams, host_dim: int) -> np.ndarray:
        """The host's initial ``W_h`` (host_dim × out_dim, out_dim told by the guest)."""
        out_dim = int(session.announce(0))
        bound = 1.0 / np.sqrt(host_dim)
        return np.random.default_rng([p.torch_seed, 2]).uniform(-bound, bound, size=(host_dim, out_dim))
