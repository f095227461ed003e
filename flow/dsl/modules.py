"""What each component module accepts (``flow module list``, ``flow module describe``):
every parameter with its type, default and allowed values, read from the same pydantic
params model the job validator checks a conf against (:data:`components.base.COMPONENTS`)."""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.base import COMPONENTS, get_component

_NONE = type(None)
_UNIONS = (typing.Union, types.UnionType)
#: how deep nested settings models (encrypt_param, cv_param, ...) are opened
_DEPTH = 3


def module_list() -> list[dict[str, Any]]:
    """Every module: name, the roles it runs on, its ports and how many parameters it takes."""
    out = []
    for name in COMPONENTS.names():
        cls = get_component(name)
        out.append({"module": name, "roles": list(cls.roles), "input_data": list(cls.input_data),
                    "output_data": cls.output_data, "output_model": cls.output_model,
                    "parameters": len(_fields(cls.params_model, "", 0))})
    return out


def describe_module(name: str) -> dict[str, Any]:
    """A module's roles, ports and every parameter (nested settings as dotted names);
    an unknown name raises the registry's error, with the names it knows."""
    cls = get_component(name)
    return {"module": cls.module, "roles": list(cls.roles), "input_data": list(cls.input_data),
            "accepts_model": cls.accepts_model, "output_data": cls.output_data, "output_model": cls.output_model,
            "doc": (cls.__doc__ or "").strip().split("\n\n")[0],
            "parameters": _fields(cls.params_model, "", 0)}


def _fields(model: type[BaseModel], prefix: str, depth: int) -> list[dict[str, Any]]:
    out = []
    for name, info in model.model_fields.items():
        dotted = prefix + name
        inert = name in getattr(model, "inert", ())
        row = {"name": dotted, "type": _type_name(info.annotation), "required": info.is_required(),
               "default": _default(info), "allowed": _allowed(info)}
        if info.description:
            row["description"] = info.description
        if inert:
            row["note"] = "accepted for FATE compatibility, not acted on"
        out.append(row)
        nested = _nested_model(info.annotation)
        if nested is not None and depth < _DEPTH:
            out += _fields(nested, dotted + ".", depth + 1)
    return out


def _default(info: FieldInfo) -> Any:
    if info.is_required():
        return None
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if value is PydanticUndefined:
        return None
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _members(tp: Any) -> list[Any]:
    """The members of a Union (Optional included), or the type itself."""
    return list(get_args(tp)) if get_origin(tp) in _UNIONS else [tp]


def _nested_model(tp: Any) -> type[BaseModel] | None:
    for t in _members(tp):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _allowed(info: FieldInfo) -> Any:
    """Literal values and enum members; bounds (ge, le, gt, lt, min/max length) as text."""
    values: list[Any] = []
    for t in _members(info.annotation):
        if get_origin(t) is Literal:
            values += list(get_args(t))
        elif isinstance(t, type) and issubclass(t, enum.Enum):
            values += [m.value for m in t]
    bounds = []
    for meta in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"),
                           ("min_length", "min length"), ("max_length", "max length")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                bounds.append(f"{sign} {bound}")
    if values and _NONE in _members(info.annotation):
        values.append(None)
    if values:
        return values
    return ", ".join(bounds) if bounds else None


def _type_name(tp: Any) -> str:
    if tp is None or tp is _NONE:
        return "null"
    origin = get_origin(tp)
    if origin is Literal:  # the values' type: the values themselves are under "allowed"
        return " | ".join(dict.fromkeys(_type_name(type(v)) for v in get_args(tp)))
    if origin in _UNIONS:
        return " | ".join(_type_name(t) for t in get_args(tp))
    if origin is typing.Annotated:
        return _type_name(get_args(tp)[0])
    if origin is not None:
        args = ", ".join(_type_name(t) for t in get_args(tp))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if args else name
    if isinstance(tp, type):
        return "object" if issubclass(tp, BaseModel) else tp.__name__
    return str(tp)
