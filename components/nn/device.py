"""Which device a torch component runs on, decided once at task start.

``auto`` takes CUDA when torch sees a GPU and the CPU otherwise; ``cuda`` or ``cuda:N``
on a machine without that GPU stops the task with one line rather than falling back
silently, since the conf asked for it. Every torch component calls :func:`select_device`
first, which also logs the choice and records it as the tracking metric ``train.device``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flow.core.errors import ComponentError

if TYPE_CHECKING:
    import torch


def import_torch(where: str) -> Any:
    """torch, or one line saying how to get it."""
    try:
        import torch
    except ImportError:
        raise ComponentError(f"{where}: PyTorch is not installed (pip install 'fedweave[nn]')") from None
    return torch


def resolve_device(spec: str, where: str) -> torch.device:
    """``cpu`` | ``cuda`` | ``cuda:N`` | ``auto`` -> a torch device that exists here."""
    torch = import_torch(where)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ComponentError(f"{where}: device '{spec}' was asked for, but this machine has no CUDA device "
                             f"(torch {torch.__version__} sees none); set device to cpu or auto")
    device = torch.device(spec)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ComponentError(f"{where}: device '{spec}' was asked for, but this machine has {count} CUDA "
                             f"device(s): cuda:0..cuda:{count - 1}")
    return device


def describe(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if device.type != "cuda":
        return device.type
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def select_device(ctx: Any, spec: str) -> torch.device:
    """Resolve ``spec`` for this task, log it and record it as ``train.device``."""
    where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
    device = resolve_device(spec, where)
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
        device = torch.device("cuda", torch.cuda.current_device())
    text = describe(device)
    ctx.logger.info("%s runs on device %s (asked: %s)", ctx.component, text, spec)
    ctx.tracker.log_metric("train", "device", text)
    return device
