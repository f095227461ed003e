"""What a vertical linear training runs through: its mini-batches, and its models (one, or
one per class for one-vs-rest), each with its own tag scope and result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from components.base import Dataset, keys_in
from components.linear.params import LinearParams


@dataclass
class Fit:
    """One model's training, on one party."""

    w: np.ndarray
    iters: int
    converged: bool = False
    losses: list[float] | None = None


@dataclass
class Batches:
    tables: list
    sizes: list[int]

    @classmethod
    def of(cls, data: Dataset, ids: list | None) -> Batches:
        """The batches named by the guest (ids per batch), or the whole table as one."""
        tables = [data.table.filter(keys_in(frozenset(batch))) for batch in ids] if ids else [data.table]
        return cls(tables, [t.count() for t in tables])


def batch_ids_of(p: LinearParams, ids: list) -> list:
    """The guest's mini-batches (ids each, shuffled by the init seed); [] for full batch."""
    if p.batch_size == -1 or p.batch_size >= len(ids):
        return []
    order = list(ids)
    if p.shuffle:
        np.random.default_rng(p.init_param.random_seed).shuffle(order)
    return [order[i:i + p.batch_size] for i in range(0, len(order), p.batch_size)]


def model_scopes(n_models: int | None) -> list[str]:
    """Tag scopes of the models trained: one unscoped model, or one per class."""
    return [""] if n_models is None else [f"ovr{i}." for i in range(n_models)]


def stack_models(fits: list[Fit], n_models: int | None) -> Any:
    return fits[0].w if n_models is None else np.stack([f.w for f in fits])
