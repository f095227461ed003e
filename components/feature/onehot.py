"""OneHotEncoder: each chosen column becomes one 0/1 column per value seen at fit.

Each party encodes its own columns. The dummy columns replace their source column in
place, named ``<column>_<value>`` (``x1_2`` for 2.0, ``x1_0.5`` for 0.5), values sorted.
A value not seen at fit (or a missing one) gives all zeros in that column's dummies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params
from components.feature.common import model_columns, pick_columns, with_columns
from flow.core.errors import ComponentError

#: more distinct values than this in one column is almost surely a continuous column
MAX_CATEGORIES = 1024


class OneHotEncoderParams(Params):
    transform_col_indexes: int | list[int] = -1
    transform_col_names: list[str] | None = None
    need_alignment: bool = True


def value_name(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _distinct(cols: list[int]):
    sel = np.asarray(cols, dtype=int)

    def f(part):
        if not part:
            return None
        x = np.stack([inst.features for _, inst in part])[:, sel]
        return [np.unique(x[~np.isnan(x[:, j]), j]) for j in range(len(sel))]
    return f


def _encode(width: int, cols: list[int], categories: list[np.ndarray]):
    """Instance -> Instance with each of ``cols`` replaced in place by its dummy columns."""
    chosen = dict(zip(cols, categories))

    def f(inst: Instance) -> Instance:
        out = []
        for i in range(width):
            v = inst.features[i]
            cats = chosen.get(i)
            if cats is None:
                out.append(np.array([v]))
            else:
                out.append((cats == v).astype(float))
        return Instance(np.concatenate(out) if out else np.zeros(0), inst.label)
    return f


class OneHotEncoder(Component):
    module = "OneHotEncoder"
    params_model = OneHotEncoderParams
    roles = ("guest", "host")
    accepts_model = True
    output_model = True

    def _run(self, ctx: Context, p: OneHotEncoderParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        header = data.meta.feature_columns
        if inputs.model:  # transform with a stored model (predict)
            model: dict[str, Any] = dict(inputs.model[0])
            cols = model_columns(ctx.component, header, model["transform_cols"])
            categories = [np.asarray(model["categories"][c], dtype=float) for c in model["transform_cols"]]
        else:
            cols = pick_columns(ctx.component, header, p.transform_col_indexes, p.transform_col_names,
                                "transform_col_indexes", "transform_col_names")
            parts = [q for q in data.table.apply_partitions(_distinct(cols)) if q is not None]
            if not parts:
                raise ComponentError(f"{ctx.component}: input table {data.meta.name} is empty")
            categories = [np.unique(np.concatenate([q[j] for q in parts])) for j in range(len(cols))]
            wide = [header[c] for c, cats in zip(cols, categories) if len(cats) > MAX_CATEGORIES]
            if wide:
                raise ComponentError(f"{ctx.component}: columns {wide} have more than {MAX_CATEGORIES} distinct "
                                     "values; leave them out of transform_col_indexes/transform_col_names")
            model = {"header": header, "transform_cols": [header[c] for c in cols],
                     "categories": {header[c]: cats.tolist() for c, cats in zip(cols, categories)}}
        chosen = dict(zip(cols, categories))
        new_header = [n for i, n in enumerate(header)
                      for n in ([f"{n}_{value_name(v)}" for v in chosen[i]] if i in chosen else [n])]
        model["new_header"] = new_header
        table = data.table.map_values(_encode(len(header), cols, categories))
        ctx.logger.info("one-hot encoded %d columns into %d", len(cols), len(new_header) - len(header) + len(cols))
        return Outputs(data=[Dataset(table, with_columns(data.meta, new_header))], model=model)

    guest = host = _run
