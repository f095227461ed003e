"""What the feature components share: picking columns by FATE's index/name params, reading
a partition as a matrix, and rebuilding an Instance table's meta with new columns."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from backends.storage.api import TableMeta
from components.base import Instance, instances_meta
from flow.core.errors import ComponentError


def pick_columns(component: str, header: Sequence[str], indexes: int | Sequence[int] | None,
                 names: Sequence[str] | None, index_field: str, name_field: str) -> list[int]:
    """Column positions chosen by ``<x>_indexes`` (-1: all) and ``<x>_names`` (their union),
    in header order; a name or index that is not there is an error naming the field."""
    header = list(header)
    if indexes == -1:
        return list(range(len(header)))
    chosen: set[int] = set()
    if indexes is not None:
        idx = [indexes] if isinstance(indexes, int) else list(indexes)
        bad = [i for i in idx if not 0 <= i < len(header)]
        if bad:
            raise ComponentError(f"{component}: {index_field} {bad} out of range 0..{len(header) - 1}")
        chosen.update(idx)
    if names:
        missing = [n for n in names if n not in header]
        if missing:
            raise ComponentError(f"{component}: {name_field} {missing} not among columns {header}")
        chosen.update(header.index(n) for n in names)
    return sorted(chosen)


def part_matrix(cols: Sequence[int] | None = None):
    """A partition -> (keys, X (rows x cols), labels or None); picklable for workers."""
    sel = None if cols is None else np.asarray(cols, dtype=int)

    def read(part):
        if not part:
            return None
        x = np.stack([inst.features for _, inst in part])
        labels = [inst.label for _, inst in part]
        y = None if any(v is None for v in labels) else np.asarray(labels, dtype=float)
        return [k for k, _ in part], (x if sel is None else x[:, sel]), y
    return read


def gather_matrix(table, cols: Sequence[int] | None = None) -> tuple[list, np.ndarray, np.ndarray | None]:
    """All rows of an Instance table as (keys, X, y) on this party's driver."""
    parts = [p for p in table.apply_partitions(part_matrix(cols)) if p is not None]
    if not parts:
        return [], np.zeros((0, 0 if cols is None else len(cols))), None
    keys = [k for p in parts for k in p[0]]
    y = None if any(p[2] is None for p in parts) else np.concatenate([p[2] for p in parts])
    return keys, np.concatenate([p[1] for p in parts]), y


def model_columns(component: str, header: Sequence[str], names: Sequence[str]) -> list[int]:
    """Positions in ``header`` of a stored model's columns; a predict input without them is an error."""
    missing = [c for c in names if c not in header]
    if missing:
        raise ComponentError(f"{component}: input data lacks the model's columns {missing}")
    return [list(header).index(c) for c in names]


def with_columns(meta: TableMeta, features: list[str], **extra: Any) -> TableMeta:
    """Meta of an Instance table whose features are now ``features`` (label kept)."""
    return instances_meta(meta, features, meta.label_column, **extra)


def keep_features(cols: Sequence[int]):
    """Instance -> Instance with only the features at ``cols``; picklable for workers."""
    sel = np.asarray(cols, dtype=int)

    def keep(inst: Instance) -> Instance:
        return Instance(inst.features[sel], inst.label)
    return keep


def model_array(model: dict[str, Any], key: str, component: str) -> np.ndarray:
    """A stored model's array (a list after a JSON round trip, an ndarray in memory)."""
    if key not in model:
        raise ComponentError(f"{component}: input model has no '{key}'; is it this component's model?")
    return np.asarray(model[key], dtype=float)
