"""HeteroNN's guest network and its predict jobs: each party rebuilds its own stored part.

A trained HeteroNN leaves, per party, the network specs it was trained with (``params``),
its bottom model, and its additive share of the host weights ``W_h`` (ring elements as hex
strings); the guest adds ``W_g``, ``b`` and the top model. A predict job loads these and
runs the training job's scoring pass: the host's bottom output enters the same masked
cross product (:class:`components.nn.interactive.InteractiveHost`), the guest learns only
``a_h·W_h``, so a row scores as it did in training (up to the last fixed-point unit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from components.base import Context, Inputs, Outputs
from components.nn.homo_nn import HomoNN, read_rows
from flow.core.errors import ComponentError

if TYPE_CHECKING:
    from components.nn.hetero_nn import HeteroNNParams
    from components.nn.params import HomoNNParams

#: the fields of HeteroNNParams a predict job needs to rebuild a party's networks
SPEC_FIELDS = {"bottom_nn_define", "bottom_model", "top_nn_define", "top_model", "loss", "optimizer", "torch_seed",
               "interactive_layer_lr"}
SCORE_CHUNK = 1024


def spec_of(p: HeteroNNParams) -> dict[str, Any]:
    return p.model_dump(include=SPEC_FIELDS, exclude_none=True, mode="json")


def share_record(u: np.ndarray) -> list[list[str]]:
    return [[format(int(v), "x") for v in row] for row in u]


def share_from(record: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    """A stored share back as a ring array, checked against the shape the network needs."""
    try:
        u = np.array([[int(v, 16) for v in row] for row in record], dtype=object)
    except (TypeError, ValueError):
        raise ComponentError(f"{where}: the model's interactive_share is not a matrix of hex ring elements") from None
    if u.shape != shape:
        raise ComponentError(f"{where}: the model's interactive_share is {u.shape}, the network needs {shape}")
    return u


class GuestNet:
    """The guest's bottom model, its part of the interactive layer (``W_g``, ``b``) and the top
    model; ``step`` applies ``optimizer`` to the models and SGD at ``interactive_layer_lr`` to
    the interactive part."""

    def __init__(self, bottom_p: HomoNNParams, top_p: HomoNNParams, n_features: int, host_dim: int, out_dim: int,
                 act: str | None, p: HeteroNNParams, device: Any, where: str):
        import torch

        from components.nn.build import build_model, build_optimizer

        self.bottom = build_model(bottom_p, n_features, where).to(device)
        with torch.no_grad():
            guest_dim = int(self.bottom(torch.zeros(1, n_features, device=device)).reshape(1, -1).shape[1])
        rng, bound = np.random.default_rng([p.torch_seed, 1]), 1.0 / np.sqrt(guest_dim)
        self.inter = torch.nn.Linear(guest_dim, out_dim).to(device)
        with torch.no_grad():
            self.inter.weight.copy_(torch.as_tensor(rng.uniform(-bound, bound, (out_dim, guest_dim))))
            self.inter.bias.copy_(torch.as_tensor(rng.uniform(-bound, bound, out_dim)))
        self.act = getattr(torch.nn, act)() if act else torch.nn.Identity()
        self.top = build_model(top_p, out_dim, where).to(device)
        self.opt = build_optimizer(bottom_p, torch.nn.ModuleList([self.bottom, self.top]), where)
        self.inter_opt = torch.optim.SGD(self.inter.parameters(), lr=p.interactive_layer_lr)
        self.where = where
        with torch.no_grad():
            self.width = int(self.forward(torch.zeros(1, n_features, device=device),
                                          torch.zeros(1, out_dim, device=device)).shape[1])

    def forward(self, x: Any, zh: Any) -> Any:
        out = self.top(self.act(self.inter(self.bottom(x).reshape(x.shape[0], -1)) + zh))
        return out.reshape(out.shape[0], -1)

    __call__ = forward

    def zero_grad(self) -> None:
        for m in (self.bottom, self.top):
            m.train()
        self.opt.zero_grad()
        self.inter_opt.zero_grad()

    def step(self) -> None:
        self.opt.step()
        self.inter_opt.step()

    def predict(self, x: Any, zh: Any) -> np.ndarray:
        import torch

        self.bottom.eval()
        self.top.eval()
        with torch.no_grad():
            return self.forward(x, zh).to("cpu", torch.float64).numpy()


def guest_scorer(net: GuestNet, inter: Any, device: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Network outputs for rows (in chunks; the host sends its part of each chunk in turn)."""
    import torch

    def score(rows: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(rows), SCORE_CHUNK):
            chunk = torch.as_tensor(rows[start:start + SCORE_CHUNK], device=device)
            zh = torch.as_tensor(inter.forward(len(chunk)), dtype=torch.float32, device=device)
            parts.append(net.predict(chunk, zh))
        return np.concatenate(parts) if parts else np.zeros((0, net.width))
    return score


def host_scorer(bottom: Any, inter: Any, device: Any) -> Callable[[np.ndarray], None]:
    """The host's side of :func:`guest_scorer`: the same chunks through its bottom model."""
    import torch

    def score(rows: np.ndarray) -> None:
        for start in range(0, len(rows), SCORE_CHUNK):
            with torch.no_grad():
                chunk = torch.as_tensor(rows[start:start + SCORE_CHUNK], device=device)
                inter.forward(bottom(chunk).reshape(len(chunk), -1).to("cpu", torch.float64).numpy())
    return score


def _stored(ctx: Context, inputs: Inputs, where: str) -> tuple[dict[str, Any], Any, HeteroNNParams]:
    """This party's stored part, its predict rows (header checked) and its training specs."""
    from components.nn.hetero_nn import HeteroNNParams

    stored = inputs.model[0]
    if "interactive_share" not in stored or "params" not in stored:
        raise ComponentError(f"{where}: the input model holds no interactive_share/params (a HeteroNN model "
                             "trained before predict jobs existed: train it again)")
    data = inputs.require(ctx.component, "test_data", "data")
    if list(data.meta.feature_columns) != list(stored["header"]):
        raise ComponentError(f"{where}: the data's features {list(data.meta.feature_columns)[:8]} differ from "
                             f"the model's {list(stored['header'])[:8]}")
    return stored, data, HeteroNNParams.model_validate(stored["params"])


def predict_guest(ctx: Context, p: HeteroNNParams, inputs: Inputs, session: Any, device: Any, where: str,
                  same_rows: Callable[..., None]) -> Outputs:
    from components.nn.build import set_flat
    from components.nn.interactive import InteractiveGuest

    stored, data, mp = _stored(ctx, inputs, where)
    ids, x, _ = read_rows(data, False, where)
    same_rows(session, "guest", ids, "predict", where)
    host_dim, out_dim = int(stored["host_dim"]), int(stored["interactive_out_dim"])
    theirs = int(session.announce(1))
    if theirs != host_dim:
        raise ComponentError(f"{where}: the host's model gives {theirs} bottom outputs, the guest's expects {host_dim}"
                             " (models of different training jobs?)")
    parts = [mp.sub(part) for part in ("bottom", "top")]
    if parts[0] is None or parts[1] is None:
        raise ComponentError(f"{where}: the guest's stored model lacks its bottom or top network")
    net = GuestNet(parts[0], parts[1], x.shape[1], host_dim, out_dim, stored["interactive_activation"], mp, device,
                   where)
    for module, key in ((net.bottom, "bottom"), (net.top, "top"), (net.inter, "interactive_guest")):
        set_flat(module, np.asarray(stored[key]), where)
    inter = InteractiveGuest(session, mp.interactive_layer_lr, host_dim, out_dim)
    inter.u = share_from(stored["interactive_share"], (host_dim, out_dim), where)
    scoring = mp.model_copy(update={"predict_param": p.predict_param})
    scored = HomoNN._scored(scoring, ctx, data, ids, guest_scorer(net, inter, device)(x),  # type: ignore[arg-type]
                            stored["task_type"], stored["classes"], "predict")
    return Outputs(data=[scored], model=stored)


def predict_host(ctx: Context, inputs: Inputs, session: Any, device: Any, where: str,
                 same_rows: Callable[..., None]) -> Outputs:
    from components.nn.build import build_model, set_flat
    from components.nn.interactive import InteractiveHost

    stored, data, mp = _stored(ctx, inputs, where)
    ids, x, _ = read_rows(data, False, where)
    same_rows(session, "host", ids, "predict", where)
    bottom_p = mp.sub("bottom")
    if bottom_p is None:
        raise ComponentError(f"{where}: the host's stored model lacks its bottom network")
    bottom = build_model(bottom_p, x.shape[1], where).to(device)
    set_flat(bottom, np.asarray(stored["bottom"]), where)
    bottom.eval()
    host_dim, out_dim = int(stored["host_dim"]), int(stored["interactive_out_dim"])
    session.announce(1, host_dim)
    inter = InteractiveHost(session, mp.interactive_layer_lr, np.zeros((host_dim, out_dim)))
    inter.u = share_from(stored["interactive_share"], (host_dim, out_dim), where)
    host_scorer(bottom, inter, device)(x)
    return Outputs(model=stored)
