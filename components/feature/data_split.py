"""DataSplit: train / validate / test tables by fraction or count, optionally stratified.

Sizes follow FATE: each of ``train_size``, ``validate_size``, ``test_size`` is a
fraction (float) or a row count (int), all of one kind. Unset ones share what is left:
train takes the remainder if unset, else test, else validate; with none set the split
is 0.8 train / 0.2 validate / no test. ``stratified`` keeps each label's share in every part (labels binned
by ``split_points`` when given, for continuous labels).

In a vertical job (``hetero_sync``, the default) the guest draws the split and sends
the ids of each part to the hosts, so every party holds the same rows in each part;
a host whose ids are not the guest's is told to intersect first. Without
``hetero_sync`` (horizontal data) every party splits its own rows. FATE 1.x's module
names are kept too: ``HeteroDataSplit`` and ``HomoDataSplit`` (no sync by default).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Outputs, Params, keys_in
from flow.core.errors import ComponentError

PARTS = ("train", "validate", "test")


class DataSplitParams(Params):
    random_state: int | None = None
    #: the same seed under the name other parameters use
    random_seed: int | None = None
    test_size: int | float | None = None
    train_size: int | float | None = None
    validate_size: int | float | None = None
    stratified: bool = False
    shuffle: bool = True
    split_points: list[float] | None = None
    hetero_sync: bool = True


def _id_labels(part):
    return [(k, inst.label if hasattr(inst, "label") else None) for k, inst in part]


def resolve_sizes(p: DataSplitParams, n: int, where: str) -> tuple[int, int, int]:
    """Row counts of (train, validate, test) for ``n`` rows."""
    given = {name: getattr(p, f"{name}_size") for name in PARTS}
    set_ = {k: v for k, v in given.items() if v is not None}
    if not set_:
        set_ = given = {"train": 0.8, "validate": 0.2, "test": 0.0}
    kinds = {isinstance(v, float) for v in set_.values() if v != 0}  # a zero fits either kind
    if len(kinds) > 1:
        raise ComponentError(f"{where}: sizes mix fractions and row counts ({set_}); use one kind")
    is_fraction = kinds.pop() if kinds else True
    whole = 1.0 if is_fraction else n
    for k, v in set_.items():
        if v < 0 or v > whole:
            raise ComponentError(f"{where}: {k}_size {v} is outside 0..{whole}")
    rest = whole - sum(set_.values())
    if rest < -1e-9:
        raise ComponentError(f"{where}: sizes {set_} add up to more than {whole}")
    missing = [k for k in PARTS if given[k] is None]
    sizes = {k: float(set_.get(k, 0)) for k in PARTS}
    if missing:
        sizes[missing[0]] = max(rest, 0.0)
    elif abs(rest) > 1e-9:
        raise ComponentError(f"{where}: sizes {set_} add up to {whole - rest}, not {whole}")
    if not is_fraction:
        return int(sizes["train"]), int(sizes["validate"]), int(sizes["test"])
    train = int(math.floor(sizes["train"] * n + 0.5))
    validate = min(int(math.floor(sizes["validate"] * n + 0.5)), n - train)
    return train, validate, n - train - validate


def _apportion(capacity: np.ndarray, share: np.ndarray, total: int) -> np.ndarray:
    """Integer counts per group close to ``share`` summing to ``total``, each within ``capacity``
    (largest remainders first)."""
    counts = np.minimum(np.floor(share).astype(int), capacity)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    while counts.sum() < total:
        progressed = False
        for g in order:
            if counts.sum() >= total:
                break
            if counts[g] < capacity[g]:
                counts[g] += 1
                progressed = True
        if not progressed:
            break
    return counts


def split_ids(ids: Sequence, groups: Sequence, sizes: tuple[int, int, int], shuffle: bool,
              seed: int | None) -> list[list]:
    """(train, validate, test) id lists; with several groups each part keeps every group's share."""
    order = sorted(range(len(ids)), key=lambda i: str(ids[i]))
    if shuffle:
        order = list(np.random.default_rng(seed).permutation(order))
    keys = sorted(set(groups), key=str)
    members = {g: [i for i in order if groups[i] == g] for g in keys}
    n = len(ids)
    left = np.array([len(members[g]) for g in keys])
    counts = []
    for part_size in sizes[:2]:
        share = np.array([len(members[g]) for g in keys]) * part_size / max(n, 1)
        c = _apportion(left, share, part_size)
        counts.append(c)
        left = left - c
    counts.append(left)
    parts: list[list] = [[], [], []]
    for j, g in enumerate(keys):
        start = 0
        for part, c in zip(parts, counts):
            part.extend(ids[i] for i in members[g][start:start + int(c[j])])
            start += int(c[j])
    return parts


class DataSplit(Component):
    module = "DataSplit"
    params_model = DataSplitParams
    roles = ("guest", "host")
    input_data = ("data",)

    def guest(self, ctx: Context, p: DataSplitParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        parts = self._draw(ctx, p, data)
        hosts = ctx.role_parties("host")
        if p.hetero_sync and hosts:
            ctx.federation.remote(parts, "split_ids", ctx.tag(), hosts)
        return self._outputs(ctx, data, parts)

    def host(self, ctx: Context, p: DataSplitParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        if not p.hetero_sync:
            return self._outputs(ctx, data, self._draw(ctx, p, data))
        (parts,) = ctx.federation.get("split_ids", ctx.tag(), ctx.role_parties("guest"))
        mine = {k for part in data.table.apply_partitions(_id_labels) for k, _ in part}
        theirs = {k for part in parts for k in part}
        if mine != theirs:
            raise ComponentError(
                f"{ctx.component} on host {ctx.local.party_id}: this party's {len(mine)} ids are not the guest's "
                f"{len(theirs)} ({len(mine & theirs)} in common); with hetero_sync the data must be intersected "
                "first (Intersection), or set hetero_sync false for horizontal data")
        return self._outputs(ctx, data, parts)

    def _draw(self, ctx: Context, p: DataSplitParams, data: Dataset) -> list[list]:
        where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
        pairs = [kv for part in data.table.apply_partitions(_id_labels) for kv in part]
        ids = [k for k, _ in pairs]
        sizes = resolve_sizes(p, len(ids), where)
        groups: list = [0] * len(ids)
        if p.stratified:
            if data.meta.label_column is None or any(y is None for _, y in pairs):
                raise ComponentError(f"{where}: stratified needs labels, but {data.meta.name} has none "
                                     "(set with_label in DataTransform)")
            labels = np.array([y for _, y in pairs], dtype=float)
            if p.split_points:
                groups = list(np.searchsorted(np.sort(p.split_points), labels, side="right"))
            else:
                groups = list(labels)
        seed = p.random_state if p.random_state is not None else p.random_seed
        parts = split_ids(ids, groups, sizes, p.shuffle, seed)
        if p.stratified:
            group_of = dict(zip(ids, groups))
            ctx.tracker.log_metric("data_split", "label_counts", {
                name: {str(g): c for g, c in zip(*np.unique([group_of[k] for k in part], return_counts=True))}
                for name, part in zip(PARTS, parts)})
        return parts

    @staticmethod
    def _outputs(ctx: Context, data: Dataset, parts: list[list]) -> Outputs:
        out = []
        for name, ids in zip(PARTS, parts):
            table = data.table.filter(keys_in(frozenset(ids)))
            meta = data.meta.model_copy(update={"count": len(ids), "extra": {**data.meta.extra, "type": name}})
            out.append(Dataset(table, meta))
            ctx.tracker.log_metric("data_split", f"{name}_count", len(ids))
        ctx.logger.info("split %s rows into train %d, validate %d, test %d",
                        sum(len(x) for x in parts), *(len(x) for x in parts))
        return Outputs(data=out)


class HeteroDataSplit(DataSplit):
    module = "HeteroDataSplit"


class HomoDataSplitParams(DataSplitParams):
    hetero_sync: bool = False


class HomoDataSplit(DataSplit):
    module = "HomoDataSplit"
    params_model = HomoDataSplitParams
