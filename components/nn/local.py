"""One party's PyTorch training on its own rows, between aggregations.

The batches are fixed by the data and the seed alone, so a central run can replay them:
rows in the order of their ids (as strings); with ``shuffle`` each epoch takes the rows
in the order ``numpy.random.default_rng([torch_seed, epoch]).permutation(n)``, cut into
consecutive batches of ``batch_size`` (-1: one batch). The epoch's loss is the
row-weighted mean of the batch losses before each step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from components.nn.build import build_loss, build_model, build_optimizer, get_flat, set_flat
from components.nn.params import HomoNNParams, Settings
from flow.core.errors import ComponentError

#: rows per forward pass when scoring (bounds the memory of a prediction)
PREDICT_CHUNK = 65536


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)


def targets(y: np.ndarray, task: str, classes: list[float] | None, loss: str, width: int, where: str) -> torch.Tensor:
    """The labels as the loss wants them: class indices for CrossEntropy/NLL, else floats
    shaped like the output."""
    if loss in ("CrossEntropyLoss", "NLLLoss"):
        if classes is None:
            raise ComponentError(f"{where}: {loss} needs class labels (task_type binary or multi)")
        index = {c: i for i, c in enumerate(classes)}
        if width < len(classes):
            raise ComponentError(f"{where}: the network has {width} outputs for {len(classes)} classes {classes}")
        return torch.as_tensor(np.fromiter((index[float(v)] for v in y), dtype=np.int64, count=len(y)))
    if width != 1:
        raise ComponentError(f"{where}: {loss} on a network with {width} outputs (HomoNN's {task} needs one output; "
                             "not supported: multi-label targets)")
    return torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(-1, 1))


class LocalTrainer:
    """The network, its optimizer and this party's rows on the chosen device."""

    def __init__(self, p: HomoNNParams, s: Settings, x: np.ndarray, y: np.ndarray | None, task: str,
                 classes: list[float] | None, device: torch.device, where: str):
        self.p, self.s, self.where, self.device = p, s, where, device
        self.model = build_model(p, x.shape[1], where).to(device)
        self.loss_fn = build_loss(p, where)
        self.optimizer = build_optimizer(p, self.model, where)
        self.x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
        self.width = self._width()
        self.y: torch.Tensor | None = None
        if y is not None:
            self.set_targets(y, task, classes)

    def set_targets(self, y: np.ndarray, task: str, classes: list[float] | None) -> None:
        self.y = targets(y, task, classes, self.p.loss_name(), self.width, self.where).to(self.device)

    def _width(self) -> int:
        self.model.eval()
        with torch.no_grad():
            try:
                out = self.model(self.x[:1])
            except RuntimeError as exc:
                raise ComponentError(f"{self.where}: the network does not take rows of {self.x.shape[1]} features: "
                                     f"{str(exc).splitlines()[0]}") from None
        return 1 if out.dim() == 1 else int(out.shape[1])

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def epoch(self, epoch: int) -> float:
        """Train one epoch; the mean loss over its rows."""
        if self.y is None:
            raise ComponentError(f"{self.where}: no labels to train on")
        self.model.train()
        n, size = self.n, self.s.batch_size if self.s.batch_size > 0 else self.n
        order = torch.as_tensor(epoch_order(n, self.p.torch_seed, epoch, self.s.shuffle), device=self.device)
        summed = torch.zeros((), dtype=torch.float64, device=self.device)  # no host sync per batch
        try:
            for start in range(0, n, size):
                idx = order[start:start + size]
                self.optimizer.zero_grad()
                out = self.model(self.x[idx])
                if out.dim() == 1:
                    out = out.reshape(-1, 1)
                loss = self.loss_fn(out, self.y[idx])
                loss.backward()
                self.optimizer.step()
                summed += loss.detach().double() * len(idx)
        except RuntimeError as exc:  # e.g. BCELoss on outputs outside [0, 1]: one line, not a torch traceback
            raise ComponentError(f"{self.where}: training failed in epoch {epoch}: "
                                 f"{str(exc).strip().splitlines()[0]}") from None
        total = float(summed)
        if not np.isfinite(total):
            raise ComponentError(f"{self.where}: the loss became {total} in epoch {epoch} (lower the learning rate?)")
        return total / n

    def weights(self) -> np.ndarray:
        return get_flat(self.model)

    def load(self, flat: np.ndarray) -> None:
        set_flat(self.model, flat, self.where)

    def outputs(self, x: np.ndarray | None = None) -> np.ndarray:
        """The network's outputs (n, width) for ``x`` (default: the training rows), as float64."""
        self.model.eval()
        rows = self.x if x is None else torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=self.device)
        parts = []
        with torch.no_grad():
            for start in range(0, int(rows.shape[0]), PREDICT_CHUNK):
                out = self.model(rows[start:start + PREDICT_CHUNK])
                parts.append(out.reshape(out.shape[0], -1).to("cpu", torch.float64).numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.width))


def module_summary(model: nn.Module) -> str:
    return " -> ".join(type(m).__name__ for m in model.children()) or type(model).__name__
