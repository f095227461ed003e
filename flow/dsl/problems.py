"""Validation problems as one-line messages: ``<file>: <json.path>: <what is wrong>``.

Pydantic errors are translated here so a user sees the path inside *their* file (for a
merged parameter: the block the offending value came from), and unknown names get a
did-you-mean suggestion.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Mapping, Sequence

import pydantic
from pydantic import BaseModel

from flow.core.errors import ValidationError
from flow.core.registry import did_you_mean

PathPart = str | int
Path = tuple[PathPart, ...]

#: characters that make a key ambiguous in a dotted path: such keys are written ["k.x"]
_QUOTED = frozenset('.[]" \t')
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}


def json_type(value: Any) -> str:
    """How a value is called in JSON terms, for "expected X, got Y" messages."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def fmt_path(path: Path | str) -> str:
    """``("a", "b", 0)`` -> ``"a.b[0]"``; a string is taken as already formatted."""
    if isinstance(path, str):
        return path
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part or any(ch in part for ch in _QUOTED):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


class Problems:
    """An ordered, de-duplicated list of problem lines (one mistake in a common block
    would otherwise be reported once per party)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._seen: set[str] = set()

    def add(self, file: str, path: Path | str, message: str) -> None:
        line = f"{file}: {fmt_path(path)}: {' '.join(message.split())}"
        if line not in self._seen:
            self._seen.add(line)
            self.lines.append(line)

    def __len__(self) -> int:
        return len(self.lines)

    def __bool__(self) -> bool:
        return bool(self.lines)

    def raise_if_any(self) -> None:
        if self.lines:
            raise ValidationError(self.lines)


def check_keys(problems: Problems, file: str, path: Path, obj: Mapping[str, Any],
               allowed: Sequence[str], required: Sequence[str] = ()) -> None:
    """Unknown keys (with a suggestion) and missing required keys of a plain JSON object."""
    for key in obj:
        if key not in allowed:
            problems.add(file, path + (key,), f"unknown key '{key}'{did_you_mean(key, allowed)}")
    for key in required:
        if key not in obj:
            problems.add(file, path + (key,), "required key missing")


def add_pydantic(problems: Problems, file: str, exc: pydantic.ValidationError, data: Any, *,
                 base: Path, model: type[BaseModel] | None = None, label: str = "key",
                 origins: Mapping[Path, Path] | None = None, missing: str | None = None,
                 ignore_missing: bool = False) -> None:
    """Translate a pydantic ValidationError raised on ``data`` into problem lines.

    ``base`` is where ``data`` sits in the file; ``origins`` (for merged parameters)
    maps a path inside ``data`` to the file path it was taken from. ``label`` names an
    unknown key ("parameter", "job parameter") unless the model at that level says
    otherwise; ``missing`` replaces the message of a missing required key.
    """
    grouped: dict[Path, list[str]] = {}
    for err in exc.errors(include_url=False):
        loc, kind = tuple(err["loc"]), err["type"]
        if kind == "missing":
            if ignore_missing:
                continue
            where = loc[:_followable(data, loc[:-1])] + loc[-1:]
            parent = _model_at(model, where[:-1])
            msg = missing or f"required {getattr(parent, 'problem_label', label)} missing"
        elif kind == "extra_forbidden":
            where = loc[:_followable(data, loc)]
            parent = _model_at(model, loc[:-1])
            choices = _field_names(parent)
            name = str(loc[-1])
            msg = f"unknown {getattr(parent, 'problem_label', label)} '{name}'{did_you_mean(name, choices)}"
        else:
            # locations past what the data holds are union member tags: stop before them
            where = loc[:_followable(data, loc)]
            # "...or instance of SomeModel" names our classes: say what the file needs instead
            msg = "Input should be a valid dictionary" if kind == "model_type" else err["msg"]
        msgs = grouped.setdefault(_locate(where, base, origins), [])
        if msg not in msgs:
            msgs.append(msg)
    for path, msgs in grouped.items():
        problems.add(file, path, "; ".join(msgs))


def _locate(where: Path, base: Path, origins: Mapping[Path, Path] | None) -> Path:
    if origins:
        for n in range(len(where), 0, -1):
            src = origins.get(where[:n])
            if src is not None:
                return src + where[n:]
    return base + where


def _followable(data: Any, loc: Sequence[PathPart]) -> int:
    """How many leading steps of ``loc`` exist in ``data``."""
    cur, n = data, 0
    for step in loc:
        if isinstance(cur, Mapping) and step in cur:
            cur = cur[step]
        elif isinstance(cur, list) and isinstance(step, int) and 0 <= step < len(cur):
            cur = cur[step]
        else:
            break
        n += 1
    return n


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional/unions down to the first model or container member."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            structured = [a for a in members if _is_model(a) or typing.get_origin(a) is not None]
            tp = (structured or members or [Any])[0]
        else:
            return tp


def _model_at(model: type[BaseModel] | None, loc: Sequence[PathPart]) -> type[BaseModel] | None:
    """The model class that validates the value at ``loc`` (None if not a model / unknown)."""
    tp: Any = model
    for step in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            field = tp.model_fields.get(step) if isinstance(step, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, Mapping, typing.Mapping):
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) in (list, tuple, set, Sequence):
            tp = typing.get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if _is_model(tp) else None


def _field_names(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    names = list(model.model_fields)
    names += [f.alias for f in model.model_fields.values() if f.alias]
    return names
