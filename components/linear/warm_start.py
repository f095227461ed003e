"""Warm start of the vertical linear models (HeteroLR, HeteroLinR, HeteroSSHELR): a model on
``input.model`` together with ``train_data`` is trained on from where it stopped.

FATE's semantics: each party reads its own part of the input model; training goes on from
the stored weights (and intercept, on the guest) at the stored iteration count, up to
``max_iter`` iterations in all (none more where the stored model already ran them), with
the optimizer settings of the new conf; the loss history goes on from the stored one. The
learning rate decays from the stored iteration on; moment estimates (rmsprop, adam, ...)
are not in the model and start afresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.base import Context, Inputs
from components.linear.optimizer import InitParam, init_weights
from flow.core.errors import ComponentError


def warm_model(inputs: Inputs) -> dict[str, Any] | None:
    """This party's part of the model to go on from; None for a fresh training."""
    return inputs.model[0] if inputs.model else None


def stored(ctx: Context, model: dict[str, Any] | None, key: str, n_models: int | None, default: Any) -> list:
    """Each model's ``key`` of a stored record (one value, or a list over one-vs-rest's models)."""
    count = 1 if n_models is None else n_models
    if model is None or key not in model:
        return [default] * count
    value = model[key]
    if n_models is None:
        return [value]
    if np.ndim(value) == 0 or len(value) != n_models:
        raise ComponentError(f"{ctx.component}: warm start: the input model's {key} is not that of {n_models} "
                             "one-vs-rest models")
    return list(value)


def starts(ctx: Context, init: InitParam, inputs: Inputs, header: list[str], n_models: int | None, size: int,
           seed_offset: int, intercept: bool, classes: np.ndarray | None = None) -> list[tuple[np.ndarray, int]]:
    """Each model's first weights and iteration: the input model's, else ``init``'s from 0.
    ``intercept``: the last of the ``size`` weights is the intercept (the guest's); without
    fit_intercept a fresh one starts at 0. ``classes``: the guest's, checked against the model's."""
    count = 1 if n_models is None else n_models
    model = warm_model(inputs)
    if model is None:
        fresh = []
        for _ in range(count):
            w = init_weights(init, size, seed_offset=seed_offset)
            if intercept and not init.fit_intercept:
                w[-1] = 0.0
            fresh.append((w, 0))
        return fresh
    where = f"{ctx.component}: warm start on {ctx.role} {ctx.local.party_id}"
    if list(model.get("header", [])) != list(header):
        raise ComponentError(f"{where}: train_data columns {list(header)} differ from the input model's "
                             f"{list(model.get('header', []))}")
    if ctx.role == "guest":
        mine = None if classes is None else [float(c) for c in classes]
        theirs = None if "classes" not in model else [float(c) for c in model["classes"]]
        if mine != theirs:
            raise ComponentError(f"{where}: the labels of train_data make classes {mine or [0.0, 1.0]}, the input "
                                 f"model's are {theirs or [0.0, 1.0]}")
    weights = np.asarray(model["weights"], dtype=float).reshape(count, -1)
    if intercept:
        weights = np.hstack([weights, np.asarray(model["intercept"], dtype=float).reshape(count, 1)])
    iters = stored(ctx, model, "iters", n_models, 0)
    if weights.shape != (count, size):
        raise ComponentError(f"{where}: the input model holds {weights.shape[0]} model(s) of {weights.shape[1]} "
                             f"weights; this training needs {count} of {size}")
    return [(weights[i].copy(), int(iters[i])) for i in range(count)]


def agree(ctx: Context, mine: list[int], guests: list[int] | None) -> None:
    """Refuse parts of different models: every party must go on from the guest's iteration."""
    if guests is not None and list(mine) != list(guests):
        raise ComponentError(f"{ctx.component}: warm start: the input model of {ctx.role} {ctx.local.party_id} "
                             f"stopped at iteration(s) {list(mine)}, the guest's at {list(guests)}; connect "
                             "the same component's model on every party")
