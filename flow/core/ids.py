"""The identifiers a request may carry, one rule per kind, checked where they enter.

Job ids, roles, party ids, component names, table namespaces and names, schedule names,
model ids and versions all end up as folder or file names (``logs/<job>/<role>/<party>/
<component>.log``, ``<top>/<namespace>/<name>/``, ``model_store/<id>/<version>/``), in SQL
and in broker queue names. Each kind admits only what the project already produced or
accepted (FATE's names included) and never a path: no ``/``, ``\\``, NUL, no leading
``.`` (so no ``.`` or ``..`` segment), nothing empty or overlong.

:func:`check_id` raises :class:`flow.core.errors.InvalidIdentifier` (exit code 2, HTTP
400) with one line naming the field; :func:`identifiers` checks a function's parameters
before it runs; ``JobId``, ``Role`` ... are the same rules as pydantic types.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from typing import Annotated, Any, Callable, TypeVar

from pydantic import AfterValidator

from flow.core.errors import InvalidIdentifier

#: the roles of a FATE job (flow.dsl.ROLES says the same)
ROLES = ("guest", "host", "arbiter")

_F = TypeVar("_F", bound=Callable[..., Any])
#: how much of a refused value a message quotes
_QUOTE = 80


@dataclass(frozen=True)
class Kind:
    """One kind of identifier: its name in messages and the characters it may hold."""

    label: str
    #: fullmatch pattern (the length is checked separately, for a clearer message)
    pattern: re.Pattern[str]
    max_len: int
    #: the allowed characters, as a message says them
    allowed: str
    #: refuse ``..`` anywhere, not only as a whole name (table names: filetree's rule)
    no_double_dot: bool = False
    #: the only values allowed, where the kind is a closed set
    choices: tuple[str, ...] = ()
    #: the allowed characters a value may not start with, as a message says them
    not_first: str = "'.'"

    def problem(self, value: Any, field: str) -> str | None:
        """None where ``value`` is one of this kind, else the one-line reason."""
        if self.choices:
            if isinstance(value, str) and value in self.choices:
                return None
            return f"{field}: {_quote(value)} is not a {self.label} ({', '.join(self.choices[:-1])} " \
                   f"or {self.choices[-1]})"
        if (isinstance(value, str) and 0 < len(value) <= self.max_len and self.pattern.fullmatch(value)
                and not (self.no_double_dot and ".." in value)):
            return None
        article = "an" if self.label[0] in "aeiou" else "a"
        lead = f"; not starting with {self.not_first}" if self.not_first else ""
        rule = f"{self.allowed}{lead}{'; no ..' if self.no_double_dot else ''}; at most {self.max_len}"
        return f"{field}: {_quote(value)} is not {article} valid {self.label} ({rule})"


def _quote(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else f"{type(value).__name__} {value!r}"
    return text if len(text) <= _QUOTE else text[:_QUOTE] + "...'"


_WORD = "letters, digits, '_', '-', '.'"
#: kind -> rule. Sources: job ids are ``new_job_id``'s digits, tests' and the control plane's
#: names (``flow_control``) — the control plane's and the brokers' rule; party ids the DSL's
#: (``9999``, strings of letters, digits, '_', '-', '.') capped at 64 as the audit log and
#: privileges did; component names the DSL's; namespaces and table names the storage's
#: (``output_<job_id>``, ``<component>.<role>.<party>.<index>``); schedule names the
#: scheduler's; model ids and versions the model store's (``arbiter-10000#guest-9999#model``).
KINDS: dict[str, Kind] = {
    "job_id": Kind("job id", re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 128, _WORD, not_first="'.' or '-'"),
    "role": Kind("role", re.compile(r"guest|host|arbiter"), 7, "", choices=ROLES),
    "party_id": Kind("party id", re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"), 64, _WORD),
    "component": Kind("component name", re.compile(r"[A-Za-z0-9_-]+"), 128, "letters, digits, '_', '-'",
                      not_first=""),
    "namespace": Kind("namespace", re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 200, _WORD, no_double_dot=True,
                      not_first="'.' or '-'"),
    "table_name": Kind("table name", re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 200, _WORD, no_double_dot=True,
                       not_first="'.' or '-'"),
    "schedule": Kind("schedule name", re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"), 64, _WORD),
    "model_id": Kind("model id", re.compile(r"[A-Za-z0-9_#-][A-Za-z0-9_#.-]*"), 255, _WORD + ", '#'"),
    "model_version": Kind("model version", re.compile(r"[A-Za-z0-9_#-][A-Za-z0-9_#.-]*"), 255, _WORD + ", '#'"),
}


def problem(kind: str, value: Any, field: str | None = None) -> str | None:
    """None where ``value`` is a valid ``kind``, else one line naming ``field`` (default: the kind)."""
    return KINDS[kind].problem(value, field or kind)


def is_valid(kind: str, value: Any) -> bool:
    return problem(kind, value) is None


def check_id(kind: str, value: Any, field: str | None = None) -> str:
    """``value`` if it is a valid ``kind``; InvalidIdentifier naming ``field`` otherwise.
    A party id may come as a non-negative int (FATE writes them so): its string is checked."""
    if kind == "party_id" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    reason = problem(kind, value, field)
    if reason is not None:
        raise InvalidIdentifier(field or kind, reason)
    return value


def identifiers(**kinds: str) -> Callable[[_F], _F]:
    """Decorator: check the parameters named (``job_id="job_id", name="schedule"``) against
    their kind before the function runs; a parameter that is None (not given) is skipped,
    each item of a list or tuple is checked. The signature and annotations stay the
    function's own (``inspect.signature`` and ``typing.get_type_hints`` see through it)."""
    unknown = set(kinds.values()) - set(KINDS)
    if unknown:
        raise KeyError(f"unknown identifier kinds {sorted(unknown)}")

    def wrap(fn: _F) -> _F:
        sig = inspect.signature(fn)
        missing = set(kinds) - set(sig.parameters)
        if missing:
            raise TypeError(f"{fn.__qualname__} has no parameters {sorted(missing)}")

        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            given = sig.bind_partial(*args, **kwargs).arguments
            for name, kind in kinds.items():
                value = given.get(name)
                for item in value if isinstance(value, (list, tuple)) else () if value is None else (value,):
                    check_id(kind, item, name)
            return fn(*args, **kwargs)

        checked.__identifiers__ = dict(kinds)  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return wrap


def _validator(kind: str) -> AfterValidator:
    def check(value: str) -> str:
        reason = problem(kind, value, KINDS[kind].label)
        if reason is not None:
            raise ValueError(reason.partition(": ")[2])
        return value

    return AfterValidator(check)


JobId = Annotated[str, _validator("job_id")]
Role = Annotated[str, _validator("role")]
PartyId = Annotated[str, _validator("party_id")]
ComponentName = Annotated[str, _validator("component")]
Namespace = Annotated[str, _validator("namespace")]
TableName = Annotated[str, _validator("table_name")]
ScheduleName = Annotated[str, _validator("schedule")]
ModelId = Annotated[str, _validator("model_id")]
ModelVersion = Annotated[str, _validator("model_version")]
