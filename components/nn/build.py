"""From a checked conf to torch objects: the network, its loss and optimizer, and the
flat float32 vector of its state that parties exchange (no pickle: only the numbers).

The vector holds every floating-point entry of the ``state_dict`` in its order
(parameters and float buffers such as BatchNorm's running statistics); integer buffers
(``num_batches_tracked``) stay local.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import numpy as np
import torch
from torch import nn

from components.nn.params import MODELS, HomoNNParams, ModelSpec, ordered_layers
from flow.core.errors import ComponentError


def _construct(cls: Any, kwargs: dict[str, Any], what: str, where: str) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ComponentError(f"{where}: {what} cannot be built from {kwargs}: {exc}") from None


def _custom(class_name: str, kwargs: dict[str, Any], n_features: int, where: str) -> nn.Module:
    cls = MODELS.get(class_name)
    params = dict(kwargs)
    if "in_features" in inspect.signature(cls).parameters and "in_features" not in params:
        params["in_features"] = n_features
    model = _construct(cls, params, f"model class {class_name}", where)
    if not isinstance(model, nn.Module):
        raise ComponentError(f"{where}: model class {class_name} made a {type(model).__name__}, not a torch.nn.Module")
    return model


#: torch's seed is global: parties run as threads in one process (tests, benches) build one at a time
_SEEDED = threading.Lock()


def build_model(p: HomoNNParams, n_features: int, where: str) -> nn.Module:
    """The declared network, initialised by torch's defaults under ``torch_seed``."""
    with _SEEDED:
        torch.manual_seed(p.torch_seed)
        return _build(p, n_features, where)


def _build(p: HomoNNParams, n_features: int, where: str) -> nn.Module:
    if p.model is not None:
        spec: ModelSpec = p.model
        return _custom(spec.class_name, spec.params, n_features, where)
    layers: list[nn.Module] = []
    for i, spec_ in enumerate(ordered_layers(p.nn_define or {})):
        kwargs = {k: v for k, v in spec_.items() if k not in ("layer", "initializer", "device", "dtype")}
        if spec_["layer"] == "CustModel":
            layers.append(_custom(str(spec_.get("class_name")), dict(spec_.get("param") or {}), n_features, where))
            continue
        layers.append(_construct(getattr(nn, spec_["layer"]), kwargs, f"nn_define layer {i} ({spec_['layer']})",
                                 where))
    return nn.Sequential(*layers)


def build_loss(p: HomoNNParams, where: str) -> nn.Module:
    return _construct(getattr(nn, p.loss_name()), p.loss_kwargs(), f"loss {p.loss_name()}", where)


def build_optimizer(p: HomoNNParams, model: nn.Module, where: str) -> torch.optim.Optimizer:
    kwargs = p.optimizer_kwargs()
    for key, value in kwargs.items():  # JSON has lists where torch wants tuples (betas)
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    cls = getattr(torch.optim, p.optimizer_name())
    return _construct(lambda **kw: cls(model.parameters(), **kw), kwargs, f"optimizer {p.optimizer_name()}", where)


def float_entries(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]


def get_flat(model: nn.Module) -> np.ndarray:
    """The model's floating-point state as one float32 vector."""
    parts = [v.detach().reshape(-1).to("cpu", torch.float32) for _, v in float_entries(model)]
    return torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)


def set_flat(model: nn.Module, flat: np.ndarray, where: str) -> None:
    """Load a vector from :func:`get_flat` (another party's layout must match exactly)."""
    entries = float_entries(model)
    size = sum(v.numel() for _, v in entries)
    vec = np.asarray(flat)
    if vec.ndim != 1 or vec.size != size:
        raise ComponentError(f"{where}: a model state of {vec.size} values does not fit this network's {size}")
    source = torch.from_numpy(np.ascontiguousarray(vec, dtype=np.float32))
    offset, state = 0, {}
    for name, value in entries:
        n = value.numel()
        state[name] = source[offset:offset + n].reshape(value.shape).to(value.device, value.dtype)
        offset += n
    model.load_state_dict(state, strict=False)


def layout(model: nn.Module) -> list[list[Any]]:
    """``[name, shape]`` of each entry of the flat vector (kept in the model for readers)."""
    return [[k, list(v.shape)] for k, v in float_entries(model)]
