"""What a schedule is: its validated model, cron slot arithmetic and promotion rules.

Everything here is pure (no clock, no I/O); :mod:`flow.schedules.loop` drives it, and the rows that
keep schedules and their firings are the job store's (``cron_schedules``, ``cron_firings``
in :mod:`flow.store.models`, created by its Alembic migrations).
"""

from __future__ import annotations

import operator
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticError

from flow.core.errors import FedweaveError
from flow.core.ids import ScheduleName
from flow.core.registry import did_you_mean

UTC = timezone.utc
_ALIASES = {
    "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
}  # fmt: skip
#: a schedule name is a folder name (``<home>/schedules/<name>``): flow.core.ids' schedule rule


class ScheduleError(FedweaveError):
    """A schedule is malformed or cannot do what was asked."""

    exit_code = 2


class ScheduleNotFound(ScheduleError):
    pass


# -- promotion rules ------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}  # fmt: skip
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RULE_RE = re.compile(
    rf"^\s*(?P<metric>[A-Za-z_][\w.]*)\s*(?P<op>>=|<=|==|>|<)\s*"
    rf"(?:(?P<current>current)\s*(?:(?P<sign>[-+])\s*(?P<margin>{_NUM}))?|(?P<number>{_NUM}))\s*$"
)


class PromoteRule(BaseModel):
    """``auc>=current``, ``ks>current+0.01``, ``loss<=0.3``: metric, comparison, baseline."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str
    op: Literal[">=", ">", "<=", "<", "=="]
    baseline: Literal["current"] | float
    margin: float = 0.0
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> "PromoteRule":
        m = _RULE_RE.match(text or "")
        if not m:
            raise ValueError(f"'{text}' is not a rule like 'auc>=current', 'auc>current+0.01' or 'loss<=0.3' "
                             f"(operators: {', '.join(_OPS)})")
        margin = float(m["margin"] or 0.0) * (-1 if m["sign"] == "-" else 1)
        baseline: Any = "current" if m["current"] else float(m["number"])
        return cls(metric=m["metric"], op=m["op"], baseline=baseline, margin=margin, text=text.strip())


def _metric(metrics: dict[str, Any], name: str, whose: str) -> float | None:
    """``name`` from a flat dict, or a dotted path into nested dicts."""
    if name in metrics:
        value = metrics[name]
    else:
        value = metrics
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScheduleError(f"promote_if: metric '{name}' of the {whose} is {value!r}, not a number")
    return float(value)


def judge_promotion(rule: PromoteRule | str, new_metrics: dict[str, Any],
                    current_metrics: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the newly trained model replaces the current one, and why, in words. With a
    ``current`` baseline and no current model (or one without that metric) the new one wins."""
    if isinstance(rule, str):
        try:
            rule = PromoteRule.parse(rule)
        except ValueError as exc:
            raise ScheduleError(f"promote_if: {exc}") from None
    new = _metric(new_metrics, rule.metric, "new model")
    if new is None:
        raise ScheduleError(f"promote_if: the new model has no metric '{rule.metric}'"
                            f"{did_you_mean(rule.metric, new_metrics)}; it has: {', '.join(sorted(new_metrics))}")
    if rule.baseline == "current":
        current = _metric(current_metrics or {}, rule.metric, "current model")
        if current is None:
            return True, f"{rule.metric} {new:g}: no deployed model to beat"
        target, what = current + rule.margin, f"current {current:g}" + (f"{rule.margin:+g}" if rule.margin else "")
    else:
        target, what = float(rule.baseline), f"{float(rule.baseline):g}"
    ok = _OPS[rule.op](new, target)
    return ok, f"{rule.metric} {new:g} {rule.op if ok else 'not ' + rule.op} {what}"


def evaluation_sources(dsl: dict[str, Any] | None) -> dict[str, list[str]]:
    """Each Evaluation component of a DSL v2 (as JSON) -> the upstream components on its
    ``data`` input, in order (``"hetero_lr_0.data"`` -> ``hetero_lr_0``)."""
    found: dict[str, list[str]] = {}
    components = (dsl or {}).get("components") if isinstance(dsl, dict) else None
    for name, spec in (components or {}).items():
        if not isinstance(spec, dict) or spec.get("module") != "Evaluation":
            continue
        data = ((spec.get("input") or {}).get("data") or {}).get("data") or []
        refs = [data] if isinstance(data, str) else list(data)
        found[name] = [str(ref).split(".", 1)[0] for ref in refs]
    return found


def check_promote_target(rule: PromoteRule | str, evaluated: dict[str, list[str]]) -> None:
    """Refuse a rule that does not say which evaluated component's metric it compares.

    ``evaluated``: each Evaluation component of the job -> the components it evaluates
    (:func:`evaluation_sources`). A bare metric (``auc``) is fine when exactly one component is
    evaluated; otherwise the rule names it (``hetero_lr_0.auc``, or ``evaluation_0.auc`` when
    that Evaluation has one input). A job without Evaluation is not checked here."""
    if isinstance(rule, str):
        rule = PromoteRule.parse(rule)
    pairs = [(ev, up) for ev, ups in evaluated.items() for up in ups]
    if not pairs:
        return
    upstream = sorted({up for _, up in pairs})
    example = f"'{upstream[0]}.{rule.metric.rsplit('.', 1)[-1]}{rule.text[len(rule.metric):].lstrip()}'" \
        if rule.text.startswith(rule.metric) else f"'{upstream[0]}.<metric>'"
    head, dot, _ = rule.metric.partition(".")
    if not dot:
        if len(pairs) > 1:
            what = "; ".join(f"{ev} evaluates {', '.join(ups)}" for ev, ups in evaluated.items() if ups)
            raise ScheduleError(f"promote_if: '{rule.text or rule.metric}' is ambiguous ({what}); "
                                f"name the component, e.g. {example}")
        return
    if head in upstream:
        return
    if head in evaluated:
        if len(evaluated[head]) > 1 and rule.metric.count(".") == 1:
            raise ScheduleError(f"promote_if: '{rule.text or rule.metric}' is ambiguous ({head} evaluates "
                                f"{', '.join(evaluated[head])}); name the component, e.g. {example}")
        return
    raise ScheduleError(f"promote_if: '{head}' in '{rule.text or rule.metric}' is not a component the job "
                        f"evaluates{did_you_mean(head, upstream + list(evaluated))} "
                        f"(evaluated: {', '.join(upstream)})")


def should_promote(rule: PromoteRule | str, new_metrics: dict[str, Any],
                   current_metrics: dict[str, Any] | None) -> bool:
    """Whether the newly trained model replaces the current one (see :func:`judge_promotion`)."""
    return judge_promotion(rule, new_metrics, current_metrics)[0]


# -- schedules ---------------------------------------------------------------------------------


class Firing(BaseModel):
    schedule: str = ""
    fire_time: datetime
    job_id: str | None = None
    status: str
    reason: str = ""
    manual: bool = False
    #: what promote_if decided once the job succeeded
    promotion: str = ""


def _cron_fields(expr: str) -> list[str]:
    return _ALIASES.get(expr, expr).split()


def check_cron(expr: str) -> str:
    """The expression with spaces normalised; ValueError naming what is wrong."""
    expr = " ".join(str(expr).split())
    if expr.startswith("@") and expr not in _ALIASES:
        raise ValueError(f"'{expr}' is not a known alias ({', '.join(_ALIASES)})")
    if len(_cron_fields(expr)) != 5:
        raise ValueError(f"'{expr}' has {len(expr.split())} fields; expected 5 "
                         "(minute hour day-of-month month day-of-week)")
    try:
        croniter(_ALIASES.get(expr, expr))
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"'{expr}' is not a valid cron expression ({exc})") from None
    return expr


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = name if len(name) <= 64 else name[:40] + "..."
        raise ValueError(f"unknown time zone '{shown}'{did_you_mean(shown, available_timezones())}") from None


class Schedule(BaseModel):
    """A job that is submitted again and again, on a cron expression."""

    model_config = ConfigDict(extra="forbid")
    name: ScheduleName
    cron: str
    timezone: str = "UTC"
    conf_path: str = Field(min_length=1)
    dsl_path: str = Field(min_length=1)
    overlap: Literal["skip", "queue"] = "skip"
    paused: bool = False
    promote_if: PromoteRule | None = None
    created: datetime | None = None
    last_fire: datetime | None = None
    queued_fire: datetime | None = None
    #: the job whose model is deployed (chosen by promote_if) and the metrics it won on
    deployed_job: str | None = None
    deployed_metrics: dict[str, Any] | None = None
    deployed_at: datetime | None = None
    history: list[Firing] = Field(default_factory=list)

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, v: str) -> str:
        return check_cron(v)

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        check_timezone(v)
        return v

    @field_validator("promote_if", mode="before")
    @classmethod
    def _parse_rule(cls, v: Any) -> Any:
        return (PromoteRule.parse(v) if v.strip() else None) if isinstance(v, str) else v

    @classmethod
    def build(cls, **fields: Any) -> "Schedule":
        """Validate ``fields``; one ScheduleError naming every bad field."""
        try:
            return cls(**fields)
        except PydanticError as exc:
            problems = [f"{'.'.join(map(str, e['loc'])) or 'schedule'}: {e['msg'].removeprefix('Value error, ')}"
                        for e in exc.errors()]
            raise ScheduleError(f"schedule '{fields.get('name', '?')}': " + "; ".join(problems)) from None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, after: datetime) -> datetime:
        """The first slot strictly after ``after`` (UTC)."""
        return next_slot(self.cron, self.tz, after)


def _skip_repeat(fields: list[str], t: datetime, tz: ZoneInfo) -> bool:
    """Whether ``t`` is the second pass of a wall time that occurs twice (clocks fall back)
    for a schedule tied to particular hours: such a slot fires once, at its first pass."""
    if fields[1] == "*":
        return False
    naive = t.replace(tzinfo=None)
    first, second = naive.replace(tzinfo=tz, fold=0).utcoffset(), naive.replace(tzinfo=tz, fold=1).utcoffset()
    return first != second and t.utcoffset() == second


def next_slot(expr: str, tz: ZoneInfo, after: datetime) -> datetime:
    fields = _cron_fields(expr)
    it = croniter(" ".join(fields), aware(after).astimezone(tz))
    while True:
        t = it.get_next(datetime)
        if not _skip_repeat(fields, t, tz):
            return t.astimezone(UTC)


def latest_slot(expr: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The last slot at or before ``now`` (UTC)."""
    fields = _cron_fields(expr)
    start = aware(now).replace(second=0, microsecond=0) + timedelta(minutes=1)
    it = croniter(" ".join(fields), start.astimezone(tz))
    while True:
        t = it.get_prev(datetime)
        if not _skip_repeat(fields, t, tz):
            return t.astimezone(UTC)


# -- time -----------------------------------------------------------------------------------


def aware(t: datetime | None) -> datetime | None:
    """A UTC-aware datetime (SQLite hands back naive ones; we only ever store UTC)."""
    if t is None:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
