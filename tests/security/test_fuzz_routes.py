"""Hostile values on every route of the flow server, generated from its OpenAPI spec.

One case per (operation, field, fill): every path parameter, query parameter and JSON
body property that can hold a string (an array of strings gets ``[value]``) is given
every payload of :meth:`Sandbox.payloads`, the other fields plausible values derived from
their names (:func:`plausible`). ``fill`` is ``required`` (only the fields the spec
requires are sent) or ``named`` (every field whose name says what a user would give);
both, because a traversal may need the others unset (a glob's ``*``) or set (a branch
that only runs with them). Routes that read a raw body (upload, import) get a CSV or a
model archive. A route added to the server is fuzzed without editing this file.

Per request: no 5xx, no traceback text, nothing of a planted file (CANARY) or of
/etc/passwd in the answer (headers included), nothing new or removed under the sandbox
outside the home; and each refusal (400, 403, 422) leaves an audit entry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.security.conftest import (
    Sandbox,
    Seed,
    audit_lines,
    leaks,
    new_refusal_entries,
    payloads_for,
    plausible,
    short,
    traceback_in,
    written_outside,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TOKEN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: statuses that refuse what the request carried (401: no token; 404: not found; 409: state)
REFUSALS = (400, 403, 422)


def _spec() -> dict[str, Any]:
    """The server's OpenAPI spec, from an app built on a throwaway home."""
    from flow.core.settings import ServiceConf
    from flow.server.app import create_app

    saved = os.environ.get("FLOW_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FLOW_HOME"] = tmp
        try:
            return create_app(ServiceConf(), TOKEN, detect=False).openapi()
        finally:
            if saved is None:
                os.environ.pop("FLOW_HOME", None)
            else:
                os.environ["FLOW_HOME"] = saved


@dataclass(frozen=True)
class Field:
    name: str
    where: str  # path | query | body
    required: bool
    schema: dict[str, Any]


@dataclass(frozen=True)
class RouteCase:
    """One operation of the spec and what of it is fuzzed: (field, fill) pairs."""

    method: str
    path: str
    fields: tuple[Field, ...]
    targets: tuple[tuple[Field, str], ...]

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path}"


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _kind(spec: dict, schema: dict) -> str | None:
    """``str`` or ``list`` if a hostile string fits the field, else None."""
    schema = _resolve(spec, schema)
    if schema.get("type") == "string":
        return "str"
    if schema.get("type") == "array" and _kind(spec, schema.get("items") or {}) == "str":
        return "list"
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        kind = _kind(spec, option)
        if kind:
            return kind
    return None


def route_cases(spec: dict) -> list[RouteCase]:
    cases = []
    for path, ops in sorted(spec["paths"].items()):
        for method, op in sorted(ops.items()):
            fields = [Field(p["name"], p["in"], bool(p.get("required")), p.get("schema") or {})
                      for p in op.get("parameters", []) if p["in"] in ("path", "query")]
            body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
            if body:
                schema = _resolve(spec, body["schema"])
                if "anyOf" in schema:  # an optional body: its object form
                    schema = next(_resolve(spec, s) for s in schema["anyOf"] if _resolve(spec, s).get("properties"))
                required = set(schema.get("required", []))
                fields += [Field(k, "body", k in required, v) for k, v in schema.get("properties", {}).items()]
            targets = []
            for target in fields:
                if _kind(spec, target.schema) is None:
                    continue
                targets.append((target, "required"))
                if any(not f.required and f is not target and plausible(f.name, path, _NO_SEED) is not None
                       for f in fields):
                    targets.append((target, "named"))
            if targets:
                cases.append(RouteCase(method, path, tuple(fields), tuple(targets)))
    return cases


class _NoSeed:
    job_id = model_id = "x"


_NO_SEED: Any = _NoSeed()
SPEC = _spec()
CASES = route_cases(SPEC)


def _value(f: Field, path: str, seed: Seed) -> Any:
    """A plausible value of a field the case does not fuzz."""
    kind = _kind(SPEC, f.schema)
    name = f.name.lower()
    if name == "conf":
        return seed_conf()
    if name == "dsl":
        return seed_dsl()
    if name == "address":
        return {"path": "/fuzz/table"}
    if name == "cpn_list":
        return ["reader_0"]
    value = plausible(f.name, path, seed)
    if value is None:
        schema = _resolve(SPEC, f.schema)
        if "default" in schema:
            return schema["default"]
        value = {"integer": 1, "number": 1.0, "boolean": False, "object": {}}.get(schema.get("type", ""), "fuzz")
    return [value] if kind == "list" and not isinstance(value, list) else value


def seed_conf() -> dict:
    from tests.security.conftest import SEED_CONF

    return SEED_CONF


def seed_dsl() -> dict:
    from tests.security.conftest import SEED_DSL

    return SEED_DSL


def _raw_body(path: str, seed: Seed) -> tuple[bytes | None, dict[str, str]]:
    """What a route that reads its raw body gets: by the name of its path."""
    if "upload" in path:
        return seed.inputs["csv"].read_bytes(), {"Content-Type": "text/csv"}
    if "import" in path:
        return seed.inputs["zip"].read_bytes(), {"Content-Type": "application/zip"}
    return None, {}


def _quote_segment(value: str) -> str:
    """A path parameter as one segment: '/' and '.' encoded, so the client neither splits
    nor normalises it (the server decodes it back)."""
    return urllib.parse.quote(value, safe="").replace(".", "%2E")


def build_request(case: RouteCase, target: Field, fill: str, value: Any, seed: Seed) -> dict[str, Any]:
    path_params: dict[str, str] = {}
    query: dict[str, Any] = {}
    body: dict[str, Any] = {}
    for f in case.fields:
        if f is target:
            v = [value] if _kind(SPEC, f.schema) == "list" else value
        elif f.required or (fill == "named" and plausible(f.name, case.path, seed) is not None):
            v = _value(f, case.path, seed)
        else:
            continue
        {"path": path_params, "query": query, "body": body}[f.where][f.name] = v
    url = case.path
    for k, v in path_params.items():
        url = url.replace("{" + k + "}", _quote_segment(str(v)))
    request: dict[str, Any] = {"method": case.method.upper(), "url": url, "params": query, "headers": dict(AUTH)}
    if any(f.where == "body" for f in case.fields):
        request["json"] = body
    else:
        raw, headers = _raw_body(case.path, seed)
        if raw is not None and case.method == "post":
            request["content"] = raw
            request["headers"].update(headers)
    return request


@dataclass
class Outcome:
    payload: str
    status: int
    problems: list[str] = field(default_factory=list)
    audited: bool | None = None  # None: not a refusal


_RESULTS: dict[str, list[Outcome]] = {}


def _no_supervisor(*_args) -> int:
    """A job a fuzzed request submits is recorded, not run (no process per case)."""
    return 0


def exercise(case: RouteCase, sandbox: Sandbox, seed: Seed) -> list[Outcome]:
    if case.id in _RESULTS:
        return _RESULTS[case.id]
    from flow.core.settings import load_service_conf
    from flow.runtime import job as jobs
    from flow.server.app import create_app

    home = sandbox.new_home(seed.template)
    outcomes = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOW_HOME", str(home))
        mp.delenv("FEDWEAVE_SERVICE_CONF", raising=False)
        mp.chdir(sandbox.cwd)
        mp.setattr(jobs, "_start_supervisor", _no_supervisor)
        app = create_app(load_service_conf(), TOKEN, detect=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            for target, fill in case.targets:
                for payload in payloads_for(sandbox, home, target.name, may_write=case.method != "get"):
                    request = build_request(case, target, fill, payload.value, seed)
                    before, audit_before = sandbox.snapshot(home), audit_lines(home)
                    res = client.request(**request)
                    answer = res.text if "zip" not in res.headers.get("content-type", "") else ""
                    answer += "\n" + "\n".join(f"{k}: {v}" for k, v in res.headers.items())
                    out = Outcome(f"{target.where}:{target.name} [{fill}] {payload.family}/{payload.label} "
                                  f"{short(payload.value)}", res.status_code)
                    if res.status_code >= 500:
                        out.problems.append(f"HTTP {res.status_code}: {res.text[:160]}")
                    out.problems += traceback_in(answer) + leaks(answer)
                    out.problems += written_outside(before, sandbox.snapshot(home))
                    if res.status_code in REFUSALS:
                        out.audited = any(e.get("actor") for e in new_refusal_entries(home, audit_before))
                    outcomes.append(out)
    shutil.rmtree(home.parent, ignore_errors=True)  # keeps the sandbox small: snapshots stay cheap
    _RESULTS[case.id] = outcomes
    return outcomes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_values_neither_crash_nor_leak_nor_write_outside_the_home(case, sandbox, seed):
    bad = [o for o in exercise(case, sandbox, seed) if o.problems]
    assert not bad, f"{case.id}: {len(bad)} of {len(_RESULTS[case.id])} requests\n" + "\n".join(
        f"  {o.payload} -> {o.status}: {'; '.join(o.problems)}" for o in bad)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_refusal_is_audited(case, sandbox, seed):
    silent = [o for o in exercise(case, sandbox, seed) if o.audited is False]
    assert not silent, (f"{case.id}: {len(silent)} refusal(s) without an audit entry (kind *refus*/*denied*/"
                        "*reject*, with an actor)\n" + "\n".join(f"  {o.payload} -> {o.status}" for o in silent))


def test_the_generated_cases_cover_every_route_of_the_spec():
    """Every operation with a field a string fits is fuzzed (none silently dropped)."""
    fuzzable = {(m, p) for p, ops in SPEC["paths"].items() for m, op in ops.items()
                if any(_kind(SPEC, prm.get("schema") or {}) for prm in op.get("parameters", []))
                or op.get("requestBody")}
    covered = {(c.method, c.path) for c in CASES}
    assert fuzzable <= covered, fuzzable - covered
    assert len(covered) >= 25
