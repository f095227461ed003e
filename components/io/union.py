"""Union: one table from several of a party's tables (rows stacked, ids kept apart).

Inputs are listed on the ``data`` port. They must share their columns, label and kind
(raw rows or Instances) unless ``allow_missing`` is set, in which case the result has
every column of any input (first-seen order) and a row lacking one gets a missing
value. A label or kind mismatch is always an error. Where an id occurs in more than
one input, the first input's row wins, or with ``keep_duplicate`` later rows are
kept under the id ``<id>_<table name>``. Empty inputs are skipped.
"""

from __future__ import annotations

import numpy as np

from backends.storage.api import TableMeta
from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params
from flow.core.errors import ComponentError


class UnionParams(Params):
    allow_missing: bool = False
    keep_duplicate: bool = False


def _remap_instances(index: list[int | None]):
    """Instance features -> the union's feature order (NaN where this input lacks one)."""
    def f(inst: Instance) -> Instance:
        feats = np.array([inst.features[i] if i is not None else np.nan for i in index], dtype=np.float64)
        return Instance(feats, inst.label)
    return f


def _remap_rows(index: list[int | None]):
    def f(row: tuple) -> tuple:
        return tuple(row[i] if i is not None else None for i in index)
    return f


def _rename(duplicates: frozenset, suffix: str):
    def f(key, value):
        return (f"{key}_{suffix}" if key in duplicates else key), value
    return f


class Union(Component):
    module = "Union"
    params_model = UnionParams
    roles = ("guest", "host")
    input_data = ("data",)

    def _union(self, ctx: Context, p: UnionParams, inputs: Inputs) -> Outputs:
        sources = inputs.all_data.get("data") or ([inputs.data["data"]] if "data" in inputs.data else [])
        if not sources:
            raise ComponentError(f"{ctx.component}: no input data (list the tables under input.data.data)")
        counts = [s.table.count() for s in sources]
        kept = [s for s, c in zip(sources, counts) if c > 0]
        for s, c in zip(sources, counts):
            if c == 0:
                ctx.logger.info("skipping empty input %s", s.meta.name)
        if not kept:
            return Outputs(data=[sources[0]])
        self._check_schemas(ctx, p, kept)
        instances = kept[0].meta.extra.get("kind") == "instances"
        names = self._columns(kept, instances)
        result, seen = None, set()
        for i, s in enumerate(kept):
            table = self._aligned(s, names, instances)
            ids = set(table.keys())
            dup = ids & seen
            if dup and p.keep_duplicate:
                suffix = s.meta.name if s.meta.name else f"input{i}"
                table = table.map(_rename(frozenset(dup), suffix))
                ids = (ids - dup) | {f"{k}_{suffix}" for k in dup}
                clash = ids & seen
                if clash:
                    raise ComponentError(f"{ctx.component}: renamed duplicate ids collide with existing ids, "
                                         f"e.g. {sorted(map(str, clash))[:3]}")
            elif dup:
                ctx.logger.info("%d ids of %s already seen: the earlier rows are kept", len(dup), s.meta.name)
            seen |= ids
            result = table if result is None else result.union(table)
        meta = self._meta(kept, names, instances)
        count = result.count()
        ctx.logger.info("union of %d tables: %d rows, %d columns", len(kept), count, len(names))
        ctx.tracker.log_metric("union", "count", count)
        return Outputs(data=[Dataset(result, meta.model_copy(update={"count": count}))])

    guest = host = _union

    @staticmethod
    def _check_schemas(ctx: Context, p: UnionParams, sources: list[Dataset]) -> None:
        first = sources[0].meta
        for s in sources[1:]:
            m = s.meta
            what = f"{ctx.component}: input {m.name} does not match input {first.name}"
            if m.extra.get("kind") != first.extra.get("kind"):
                raise ComponentError(f"{what}: one holds raw rows, the other Instances (union tables of one kind)")
            if m.label_column != first.label_column:
                raise ComponentError(f"{what}: label column {m.label_column!r} vs {first.label_column!r}")
            if not p.allow_missing and list(m.feature_columns) != list(first.feature_columns):
                only_a = [c for c in first.feature_columns if c not in m.feature_columns]
                only_b = [c for c in m.feature_columns if c not in first.feature_columns]
                detail = (f"only in {first.name}: {only_a[:5]}, only in {m.name}: {only_b[:5]}"
                          if only_a or only_b else "same columns in another order")
                raise ComponentError(f"{what} ({detail}); set allow_missing to union differing columns")

    @staticmethod
    def _columns(sources: list[Dataset], instances: bool) -> list[str]:
        names: list[str] = []
        for s in sources:
            for c in (s.meta.feature_columns if instances else s.meta.columns):
                if c not in names:
                    names.append(c)
        return names

    @staticmethod
    def _aligned(s: Dataset, names: list[str], instances: bool):
        own = list(s.meta.feature_columns if instances else s.meta.columns)
        if own == names:
            return s.table
        index = [own.index(c) if c in own else None for c in names]
        return s.table.map_values(_remap_instances(index) if instances else _remap_rows(index))

    @staticmethod
    def _meta(sources: list[Dataset], names: list[str], instances: bool) -> TableMeta:
        m = sources[0].meta
        if instances:
            columns = ([m.label_column] if m.label_column else []) + names
            return m.model_copy(update={"columns": columns, "dtypes": ["double"] * len(columns)})
        types: dict[str, str] = {}
        for s in sources:
            if len(s.meta.dtypes) == len(s.meta.columns):
                for c, t in zip(s.meta.columns, s.meta.dtypes):
                    types.setdefault(c, t)
        dtypes = [types[c] for c in names] if all(c in types for c in names) else []
        return m.model_copy(update={"columns": names, "dtypes": dtypes})
