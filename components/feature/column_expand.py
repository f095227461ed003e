"""ColumnExpand: append columns of fixed values to a party's raw table (FATE's ColumnExpand).

As in FATE 1.x it runs on the raw rows a Reader hands on, before DataTransform, so the new
columns become features (or a label) like any stored column:

* ``append_header``: the new columns' names (none: the data is handed on unchanged);
* ``method`` ``manual`` (FATE's only one): every row gets ``fill_value``, one value for all new
  columns or a list with one value per column (numbers or text; default 1e-8).

The model keeps the columns and values, so a predict job appends the same ones. Each party
runs its own (hosts too, unless ``need_run`` is false there). Its input must be raw data: an
Instance table (after DataTransform) is refused, as FATE would fail on it.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Outputs, Params
from flow.core.errors import ComponentError

Fill = int | float | str
#: FATE's line delimiter when it appends to a raw line
DELIMITER = ","


class ColumnExpandParams(Params):
    append_header: list[str] | str | None = None
    method: str = "manual"
    fill_value: Fill | list[Fill] = 1e-8

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.lower() != "manual":  # FATE lower-cases it
            raise PydanticCustomError("method", "not supported: ColumnExpand method '{m}' (FATE has only "
                                      "'manual')", {"m": value})
        return "manual"

    @model_validator(mode="after")
    def _lengths(self) -> ColumnExpandParams:
        if isinstance(self.fill_value, list) and len(self.fill_value) != len(self.headers):
            raise PydanticCustomError("fill_value", "fill_value is a list of {n} values; append_header must "
                                      "name as many columns (it names {m})",
                                      {"n": len(self.fill_value), "m": len(self.headers)})
        if len(set(self.headers)) != len(self.headers):
            raise PydanticCustomError("append_header", "append_header names a column twice: {h}",
                                      {"h": self.headers})
        return self

    @property
    def headers(self) -> list[str]:
        if self.append_header is None:
            return []
        return [self.append_header] if isinstance(self.append_header, str) else list(self.append_header)

    @property
    def values(self) -> list[Fill]:
        if isinstance(self.fill_value, list):
            return list(self.fill_value)
        return [self.fill_value] * len(self.headers)


def _cell(value: Fill) -> float | str:
    return value if isinstance(value, str) else float(value)


def _text(value: Fill) -> str:
    return value if isinstance(value, str) else str(value)


def append_cells(cells: tuple):
    """A stored row tuple -> the same row with ``cells`` after it; picklable."""
    def f(row: tuple) -> tuple:
        return tuple(row) + cells
    return f


def append_text(text: str):
    """A raw line (one text value) -> the line with ``,text`` after it (just ``text`` if empty)."""
    def f(row: tuple) -> tuple:
        line = row[0] or ""
        return (f"{line}{DELIMITER}{text}" if line else text,) + tuple(row[1:])
    return f


class ColumnExpand(Component):
    module = "ColumnExpand"
    params_model = ColumnExpandParams
    roles = ("guest", "host")
    input_data = ("data",)
    accepts_model = True
    output_model = True

    def _expand(self, ctx: Context, p: ColumnExpandParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
        stored = inputs.model[0] if inputs.model else None
        headers = list(stored["append_header"]) if stored else p.headers
        values: list[Any] = list(stored["fill_value"]) if stored else p.values
        model = {"append_header": headers, "method": "manual", "fill_value": values}
        meta = data.meta
        if meta.extra.get("kind") == "instances":
            raise ComponentError(f"{where}: ColumnExpand takes raw data (a Reader's output, before DataTransform), "
                                 f"but its input {meta.name} has been transformed already")
        if not headers:
            ctx.logger.info("%s: no append_header: the data is handed on unchanged", where)
            return Outputs(data=[data], model={**model, "header": list(meta.columns)})
        if meta.extra.get("kind") == "lines":  # a raw-lines table: FATE appends to the line and its header
            header = meta.extra.get("header")
            if not header:
                raise ComponentError(f"{where}: not supported: ColumnExpand on table {meta.namespace}/{meta.name}, "
                                     "stored without a header row (the new columns could not be named)")
            names = [h.strip() for h in str(header).split(DELIMITER)]
            self._check_names(where, names, headers)
            new_header = DELIMITER.join([str(header)] + headers)
            table = data.table.map_values(append_text(DELIMITER.join(_text(v) for v in values)))
            out = meta.model_copy(update={"extra": {**meta.extra, "header": new_header}})
            ctx.logger.info("%s: appended %s to each line", where, headers)
            return Outputs(data=[Dataset(table, out)], model={**model, "header": new_header.split(DELIMITER)})
        self._check_names(where, [meta.id_column, *meta.columns], headers)
        cells = tuple(_cell(v) for v in values)
        table = data.table.map_values(append_cells(cells))
        dtypes = [*meta.dtypes, *("string" if isinstance(c, str) else "double" for c in cells)] if meta.dtypes else []
        out = meta.model_copy(update={"columns": [*meta.columns, *headers], "dtypes": dtypes})
        ctx.logger.info("%s: appended columns %s = %s", where, headers, list(cells))
        return Outputs(data=[Dataset(table, out)], model={**model, "header": list(out.columns)})

    @staticmethod
    def _check_names(where: str, names: list[str], headers: list[str]) -> None:
        taken = [h for h in headers if h in names]
        if taken:
            raise ComponentError(f"{where}: append_header {taken} already columns of the input")

    guest = host = _expand
