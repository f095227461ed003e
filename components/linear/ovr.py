"""One-vs-rest, shared by HeteroLR and HomoLR: which labels make it, what a row's
prediction holds, and how one model's results and several models' results are stored."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from flow.core.errors import ComponentError

#: one-vs-rest trains one model per class: more classes than this is refused
MAX_CLASSES = 100


def labels(part) -> set:
    """The labels of one partition of an Instance table (for ``apply_partitions``)."""
    return {inst.label for _, inst in part}


def numeric_labels(found: Iterable[float], where: str) -> list[float]:
    """The distinct labels, sorted; refused unless every one is a finite number."""
    values = sorted(set(map(float, found)))
    if not all(math.isfinite(v) for v in values):
        raise ComponentError(f"{where}: labels must be numbers, found {values[:5]}")
    return values


def ovr_classes(found: Iterable[float], where: str) -> np.ndarray | None:
    """The classes of a one-vs-rest model from the labels seen; None when they are 0/1
    only (one model on the label as it is)."""
    values = numeric_labels(found, where)
    if set(values) <= {0.0, 1.0}:
        return None
    if not 2 <= len(values) <= MAX_CLASSES:
        raise ComponentError(f"{where}: {len(values)} distinct labels; one-vs-rest takes at most {MAX_CLASSES} "
                             f"classes and at least 2 (found {values[:5]}...; is the label a continuous value?)")
    return np.array(values)


def ovr_row(p: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """[the likeliest class, its probability, each class's probability] from the classes'
    one-vs-rest probabilities."""
    best = int(np.argmax(p))
    return np.r_[classes[best], p[best], p]


def per_model(values: Sequence[Any], ovr: Any) -> Any:
    """What a model record stores: the one model's value (``ovr`` None), or the list over
    the classes (``ovr`` the classes or their count)."""
    return values[0] if ovr is None else list(values)
