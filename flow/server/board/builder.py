"""What the builder page needs from the server: every registered module with its parameter
schema, a job checked exactly as ``flow job validate`` checks it (each problem line placed
on the component, party block and field it names), and a past job's two files to edit.

The problem lines are the validator's own (``<file>: <json.path>: <what is wrong>``); this
module only reads the path back so the page can show a line beside the field it names.
"""

from __future__ import annotations

import re
from typing import Any

from flow.core.errors import ValidationError
from flow.core.ids import check_id
from flow.dsl.loader import plan_from_dicts
from flow.dsl.modules import describe_module, module_list
from flow.ops.local import LocalOps
from flow.runtime.preflight import check_tables

#: the names the builder's files go by in messages (as when they are saved and validated by hand)
CONF_FILE = "conf.json"
DSL_FILE = "dsl.json"
#: one part of a formatted path: ``name``, ``[3]`` or ``["a.b"]`` (see flow.dsl.problems.fmt_path)
_PART = re.compile(r'\.?(?:\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+))')


def palette() -> list[dict[str, Any]]:
    """Every registered module with its roles, ports and parameters (``flow module describe``)."""
    return [describe_module(m["module"]) for m in module_list()]


def split_path(text: str) -> list[str]:
    """``component_parameters.role.host.0.reader_0.table`` -> its parts (indexes as text)."""
    parts: list[str] = []
    at = 0
    while at < len(text):
        found = _PART.match(text, at)
        if found is None or found.end() == at:
            return parts + [text[at:]]
        index, quoted, plain = found.groups()
        parts.append(index if index is not None else quoted.replace('\\"', '"') if quoted is not None else plain)
        at = found.end()
    return parts


def place(line: str) -> dict[str, Any]:
    """Where a problem line points: its file, path, and (when it names them) the component,
    the party block (``common`` or ``role:key``) and the dotted field."""
    out: dict[str, Any] = {"line": line, "file": None, "path": None, "component": None, "scope": None,
                           "field": None, "section": None}
    for file in (CONF_FILE, DSL_FILE):
        if line.startswith(file + ": "):
            out["file"] = file
            path, _, message = line[len(file) + 2:].partition(": ")
            out["path"], out["message"] = path, message
            break
    else:
        return {**out, "message": line}
    parts = split_path(out["path"])
    if out["file"] == DSL_FILE and parts[:1] == ["components"] and len(parts) > 1:
        return {**out, "component": parts[1], "section": "dsl", "field": ".".join(parts[2:]) or None}
    if parts[:2] == ["component_parameters", "common"] and len(parts) > 2:
        return {**out, "component": parts[2], "scope": "common", "field": ".".join(parts[3:]) or None,
                "section": "parameters"}
    if parts[:2] == ["component_parameters", "role"] and len(parts) > 4:
        return {**out, "component": parts[4], "scope": f"{parts[2]}:{parts[3]}",
                "field": ".".join(parts[5:]) or None, "section": "parameters"}
    if parts[:1] in (["role"], ["initiator"]):
        return {**out, "section": "roles", "field": ".".join(parts)}
    return {**out, "section": parts[0] if parts else None}


def validate(ops: LocalOps, conf: Any, dsl: Any) -> dict[str, Any]:
    """The job checked as ``flow job validate`` checks the same two files on this home: the
    plan, then this party's tables; every problem placed (:func:`place`), and the notices."""
    try:
        plan = plan_from_dicts(conf, dsl, conf_file=CONF_FILE, dsl_file=DSL_FILE)
        unchecked = check_tables(ops.conf, plan, CONF_FILE)
    except ValidationError as exc:
        return {"valid": False, "problems": [place(p) for p in exc.problems], "notices": []}
    # the same notice lines the CLI prints: the conf's accepted-but-unused settings, then the
    # parties whose tables could not be checked here (check_tables' own lines)
    return {"valid": True, "problems": [], "notices": [*plan.notices(), *unchecked],
            "stages": plan.to_summary().get("stages")}


def pipeline(ops: LocalOps, job_id: str) -> dict[str, Any]:
    """A recorded job's conf and DSL as submitted, to open in the builder."""
    job = ops.store.job(check_id("job_id", job_id))  # InvalidIdentifier, or JobNotFound (404)
    return {"job_id": job_id, "conf": job["conf"], "dsl": job["dsl"], "description": job.get("description") or ""}
