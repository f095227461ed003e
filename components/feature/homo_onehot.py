"""HomoOneHotEncoder: OneHotEncoder for parties that hold different rows of the same columns.

Each party finds the distinct values of its chosen columns. With ``need_alignment`` (FATE's
default) every party sends them, by column name, to the arbiter, which answers with the
union per column, so every party encodes with the same dummy columns in the same order
and a horizontal model downstream (HomoLR) sees one header. Without it each party encodes
with its own values, as FATE does. The arbiter learns the distinct values of the chosen
columns (as in FATE), nothing else. Naming and encoding are OneHotEncoder's: ``x1_2`` for
value 2.0, values ascending, an unseen or missing value gives all zeros; a predict job
applies the stored categories.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Outputs, Params
from components.feature.common import model_columns, pick_columns, with_columns
from components.feature.onehot import MAX_CATEGORIES, _distinct, _encode, value_name
from federation.api import Party
from flow.core.errors import ComponentError


class HomoOneHotParams(Params):
    """FATE 1.x's HomoOneHotParam."""

    transform_col_indexes: int | list[int] = -1
    transform_col_names: list[str] | None = None
    need_alignment: bool = True


def _name(party: Party) -> str:
    return f"{party.role}:{party.party_id}"


def union_categories(sets: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per column name, the ascending union of the values every party sent for it."""
    names = list(dict.fromkeys(n for s in sets for n in s))
    return {n: np.unique(np.concatenate([np.asarray(s.get(n, []), dtype=float) for s in sets])).tolist()
            for n in names}


class HomoOneHotEncoder(Component):
    module = "HomoOneHotEncoder"
    params_model = HomoOneHotParams
    roles = ("guest", "host", "arbiter")
    accepts_model = True
    output_model = True

    def _party(self, ctx: Context, p: HomoOneHotParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        header = data.meta.feature_columns
        if inputs.model:  # transform with a stored model (predict)
            model: dict[str, Any] = dict(inputs.model[0])
            cols = model_columns(ctx.component, header, model["transform_cols"])
            categories = [np.asarray(model["categories"][c], dtype=float) for c in model["transform_cols"]]
        else:
            cols = pick_columns(ctx.component, header, p.transform_col_indexes, p.transform_col_names,
                                "transform_col_indexes", "transform_col_names")
            names = [header[c] for c in cols]
            parts = [q for q in data.table.apply_partitions(_distinct(cols)) if q is not None]
            local = {n: np.unique(np.concatenate([q[j] for q in parts])).tolist() if parts else []
                     for j, n in enumerate(names)}
            merged = self._align(ctx, p, local)
            categories = [np.asarray(merged[n], dtype=float) for n in names]
            wide = [n for n, cats in zip(names, categories) if len(cats) > MAX_CATEGORIES]
            if wide:
                raise ComponentError(f"{ctx.component}: columns {wide} have more than {MAX_CATEGORIES} distinct "
                                     "values; leave them out of transform_col_indexes/transform_col_names")
            model = {"header": header, "transform_cols": names, "need_alignment": p.need_alignment,
                     "categories": {n: cats.tolist() for n, cats in zip(names, categories)}}
        chosen = dict(zip(cols, categories))
        new_header = [n for i, n in enumerate(header)
                      for n in ([f"{n}_{value_name(v)}" for v in chosen[i]] if i in chosen else [n])]
        model["new_header"] = new_header
        table = data.table.map_values(_encode(len(header), cols, categories))
        ctx.logger.info("one-hot encoded %d columns into %d (aligned: %s)", len(cols),
                        len(new_header) - len(header) + len(cols), p.need_alignment)
        return Outputs(data=[Dataset(table, with_columns(data.meta, new_header))], model=model)

    guest = host = _party

    @staticmethod
    def _align(ctx: Context, p: HomoOneHotParams, local: dict[str, list[float]]) -> dict[str, list[float]]:
        """The categories to encode with: the arbiter's union (need_alignment) or this party's own."""
        arbiter = ctx.role_parties("arbiter")
        if not arbiter:
            if p.need_alignment:
                raise ComponentError(f"{ctx.component}: need_alignment needs an arbiter in the job's roles "
                                     "(or set need_alignment false)")
            return local
        # always tell the arbiter whether this party aligns; its values only when it does
        ctx.federation.remote(local if p.need_alignment else None, "local_categories", ctx.tag(), arbiter)
        if not p.need_alignment:
            return local
        (reply,) = ctx.federation.get("aligned_categories", ctx.tag(), arbiter)
        if isinstance(reply, str):
            raise ComponentError(f"{ctx.component}: {reply}")
        if not isinstance(reply, dict) or not set(local) <= set(reply):
            raise ComponentError(f"{ctx.component}: the arbiter's aligned categories lack columns of this party")
        merged = {n: [float(v) for v in reply[n]] for n in local}
        lost = [n for n in local if not set(local[n]) <= set(merged[n])]
        if lost:
            raise ComponentError(f"{ctx.component}: the arbiter's aligned categories of {lost} lack this party's "
                                 "values")
        return merged

    def arbiter(self, ctx: Context, p: HomoOneHotParams, inputs: Inputs) -> Outputs:
        if inputs.model:  # a predict job: the parties apply their stored categories
            return Outputs(model=inputs.model[0])
        parties = ctx.role_parties("guest") + ctx.role_parties("host")
        sent = ctx.federation.get("local_categories", ctx.tag(), parties)
        asking = [q for q, s in zip(parties, sent) if s is not None]
        if not asking:
            return Outputs(model={"need_alignment": False})
        problem = ""
        if len(asking) < len(parties):
            others = [_name(q) for q, s in zip(parties, sent) if s is None]
            problem = (f"need_alignment differs between parties: {[_name(q) for q in asking]} align, {others} do "
                       "not; set it the same for every party")
        bad = [_name(q) for q, s in zip(parties, sent)
               if s is not None and not (isinstance(s, dict) and all(isinstance(v, list) for v in s.values()))]
        if bad:
            problem = f"{bad} sent something else than categories by column name"
        if problem:
            ctx.federation.remote(problem, "aligned_categories", ctx.tag(), asking)
            raise ComponentError(f"{ctx.component}: {problem}")
        merged = union_categories(list(sent))
        ctx.federation.remote(merged, "aligned_categories", ctx.tag(), parties)
        ctx.logger.info("aligned the categories of %d columns over %d parties", len(merged), len(parties))
        return Outputs(model={"need_alignment": True, "transform_cols": list(merged),
                              "categories": {n: len(v) for n, v in merged.items()}})
