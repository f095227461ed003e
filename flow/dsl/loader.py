"""Entry points: read a job's conf.json and dsl.json and turn them into a JobPlan.

Both files are always checked, even when one is broken, and every problem found is
raised together in one :class:`flow.core.errors.ValidationError`.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from flow.core.errors import ValidationError
from flow.dsl.models import Conf, Dsl
from flow.dsl.params import resolve_component_params, resolve_job_params
from flow.dsl.plan import JobPlan
from flow.dsl.problems import Path, Problems
from flow.dsl.validate import check_conf, check_dsl, check_predict, parties_of

_MISSING = object()


def read_json(path: str | os.PathLike[str], problems: Problems, label: str | None = None) -> Any:
    """Parse a JSON file; on failure add a problem (with line and column) and return _MISSING.

    Keys repeated within one object are reported too: json keeps only the last silently.
    """
    label = label or str(path)
    try:
        with open(path, encoding="utf-8-sig") as fh:  # tolerate the BOM some editors write
            text = fh.read()
    except FileNotFoundError:
        problems.add(label, "(file)", "no such file")
        return _MISSING
    except UnicodeDecodeError as exc:
        problems.add(label, f"byte {exc.start}", "not UTF-8 text")
        return _MISSING
    except OSError as exc:
        problems.add(label, "(file)", f"cannot read: {exc.strerror or exc}")
        return _MISSING
    return parse_json(text, problems, label)


def parse_json(text: str, problems: Problems, label: str) -> Any:
    """Like :func:`read_json` for text already in hand (e.g. received over HTTP)."""
    duplicates: list[tuple[dict, str]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict:
        obj: dict = {}
        for key, value in pairs:
            if key in obj:
                duplicates.append((obj, key))
            obj[key] = value
        return obj

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        problems.add(label, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")
        return _MISSING
    if duplicates:
        paths = _paths_by_id(data, ())
        for obj, key in duplicates:
            problems.add(label, paths.get(id(obj), ()) + (key,), "key given more than once in the same object")
    return data


def _paths_by_id(value: Any, at: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    if isinstance(value, dict):
        out[id(value)] = at
        for key, child in value.items():
            out.update(_paths_by_id(child, at + (key,)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.update(_paths_by_id(child, at + (i,)))
    return out


def load_job(conf_path: str | os.PathLike[str], dsl_path: str | os.PathLike[str]) -> JobPlan:
    """Read, validate and plan a job. Raises ValidationError listing every problem, each
    ``<file>: <json.path>: <what is wrong>`` (file as given on the command line)."""
    problems = Problems()
    raw_conf = read_json(conf_path, problems)
    raw_dsl = read_json(dsl_path, problems)
    return _plan(raw_conf, raw_dsl, str(conf_path), str(dsl_path), problems)


def plan_from_dicts(raw_conf: Any, raw_dsl: Any, *, conf_file: str = "conf.json",
                    dsl_file: str = "dsl.json") -> JobPlan:
    """The same checks on JSON already parsed (a job record, a proposal from the initiator)."""
    return _plan(raw_conf, raw_dsl, conf_file, dsl_file, Problems())


def _plan(raw_conf: Any, raw_dsl: Any, conf_file: str, dsl_file: str, problems: Problems) -> JobPlan:
    dsl = check_dsl(raw_dsl, dsl_file, problems) if raw_dsl is not _MISSING else None
    conf = check_conf(raw_conf, conf_file, problems, dsl.names if dsl else None) if raw_conf is not _MISSING else None
    parties = parties_of(conf.roles) if conf and conf.roles is not None else None
    params, job_params = {}, {}
    if conf and parties:
        if conf.job_parameters is not None:
            job_params = resolve_job_params(conf.job_parameters, parties, conf_file, problems)
        if dsl and conf.component_parameters is not None:
            params = resolve_component_params(conf.component_parameters, parties, dsl.components,
                                              dsl.modules, conf_file, problems)
        if dsl and dsl.dag is not None and job_params:
            check_predict(dsl.dag, job_params, conf_file, problems)
    problems.raise_if_any()
    if dsl is None or conf is None or parties is None or conf.initiator is None or dsl.dag is None:
        # every way to get here adds a problem first; this guards the invariant
        raise ValidationError([f"{conf_file}: (root): job could not be planned"])
    return JobPlan(
        dsl=Dsl(components=dsl.components),
        conf=Conf(dsl_version=2, initiator=conf.initiator, role=conf.roles,
                  job_parameters=conf.job_parameters, component_parameters=conf.component_parameters),
        raw_dsl=copy.deepcopy(raw_dsl),
        raw_conf=copy.deepcopy(raw_conf),
        parties=parties,
        initiator=next(p for p in parties[conf.initiator.role] if p.party_id == conf.initiator.party_id),
        dag=dsl.dag,
        modules=dsl.modules,
        _params=params,
        _job_params=job_params,
    )
