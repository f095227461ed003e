"""People and roles on a flow server: each role against every operation of
:data:`flow.ops.api.ROUTES` (allowed, or refused with 403 and audited under the user's name),
no route without a role, and ``flow user add/list/rotate/remove`` in standalone mode and
through a server, with tokens shown once and never kept in clear."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi import APIRouter

from flow.core.errors import ConfigError
from flow.core.settings import ServiceConf
from flow.governance.audit import AuditLog
from flow.ops.api import API_PREFIX, ROLE_ORDER, ROLES, ROUTES, operations, role_allows
from tests.e2e.conftest import FlowCLI
from tests.served import Served

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TOKEN = "roles-bootstrap-token"
#: the user of each role the matrix runs as
NAMES = {"viewer": "vic", "operator": "olga", "admin": "ada"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audit(home: Path, kind: str | None = None) -> list[dict[str, Any]]:
    log = home / "audit" / "local.log"
    return AuditLog(home, "local").entries(kind=kind) if log.exists() else []


def _request(client: TestClient, op: str, token: str) -> Any:
    """``op``'s route with every path parameter ``x``, a JSON body on POST."""
    method, path = ROUTES[op]
    url = API_PREFIX + re.sub(r"\{[^}]+\}", "x", path)
    body = {"json": {}} if method == "POST" else {}
    return client.request(method, url, headers=_auth(token), **body)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[TestClient, Path, dict[str, str]]]:
    """A flow server app of a fresh home and a user of each role (added by the bootstrap
    token, through the server); yields the client, the home and each role's token."""
    from flow.server.app import create_app

    home = tmp_path_factory.mktemp("roles_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOW_HOME", str(home))
        mp.delenv("FEDWEAVE_SERVICE_CONF", raising=False)
        with TestClient(create_app(ServiceConf(), TOKEN, detect=False)) as client:
            tokens = {}
            for role, name in NAMES.items():
                res = client.post("/v1/users", headers=_auth(TOKEN), json={"name": name, "role": role})
                assert res.status_code == 200, res.text
                tokens[role] = res.json()["data"]["token"]
            yield client, home, tokens


# the table --------------------------------------------------------------------
def test_every_route_has_a_role_and_the_roles_are_as_specified():
    assert set(ROLES) == set(ROUTES) == set(operations()), sorted(set(ROLES) ^ set(ROUTES))
    assert set(ROLES.values()) <= set(ROLE_ORDER) and ROLE_ORDER == ("viewer", "operator", "admin")
    for op in ("job_query", "job_list", "job_logs", "tracking_metrics", "tracking_output_model", "model_list",
               "table_list", "table_info", "server_status"):
        assert ROLES[op] == "viewer", op
    for op in ("job_submit", "job_stop", "job_rerun", "data_upload", "table_bind", "table_delete", "schedule_add",
               "schedule_pause", "schedule_resume", "schedule_remove", "schedule_run_now"):
        assert ROLES[op] == "operator", op
    for op in ("privilege_grant", "privilege_revoke", "user_add", "user_list", "user_remove", "user_rotate",
               "model_import", "audit_list", "audit_verify"):
        assert ROLES[op] == "admin", op
    assert not role_allows("viewer", "no_such_op") and not role_allows("root", "job_list")


def test_a_route_without_a_role_keeps_the_server_from_starting(tmp_path, monkeypatch):
    from flow.server.app import create_app

    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    monkeypatch.delitem(ROLES, "job_list")
    with pytest.raises(ConfigError, match="GET /v1/jobs has no role"):
        create_app(ServiceConf(), TOKEN, detect=False)


def test_a_route_no_operation_claims_keeps_the_server_from_starting():
    from flow.server.app import route_operations

    extra = APIRouter(prefix="/extra")

    @extra.get("")
    def _unclaimed() -> None:  # pragma: no cover - never served
        return None

    with pytest.raises(ConfigError, match="GET /v1/extra has no operation"):
        route_operations([extra])


def test_every_served_route_is_guarded_by_its_operations_role(served):
    client, _home, _tokens = served
    spec = client.get("/openapi.json", headers=_auth(TOKEN)).json()
    offered = {(m.upper(), p) for p, methods in spec["paths"].items() for m in methods}
    declared = {(m, API_PREFIX + p): op for op, (m, p) in ROUTES.items()}
    assert offered == set(declared), offered ^ set(declared)
    assert all(declared[r] in ROLES for r in offered)


# the matrix ---------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLE_ORDER)
@pytest.mark.parametrize("op", sorted(ROUTES))
def test_role_matrix(served, role: str, op: str):
    client, home, tokens = served
    name = NAMES[role]
    res = _request(client, op, tokens[role])
    if role_allows(role, op):
        assert res.status_code not in (401, 403), (op, role, res.status_code, res.text)
        return
    message = f"user '{name}' ({role}) may not {op}: needs {ROLES[op]}"
    assert res.status_code == 403 and res.json()["retcode"] == 403, (op, role, res.status_code, res.text)
    assert res.json()["retmsg"] == message
    last = _audit(home, "server.request.refused")[-1]
    assert last["actor"] == name
    assert last["details"] == {"operation": op, "method": ROUTES[op][0], "path": res.request.url.path,
                               "status": 403, "reason": message}


def test_the_matrix_refuses_as_the_table_says(served):
    """Spot checks in words, apart from the generated matrix."""
    client, _home, tokens = served
    assert client.get("/v1/jobs", headers=_auth(tokens["viewer"])).status_code == 200
    assert client.post("/v1/jobs", headers=_auth(tokens["viewer"]), json={}).status_code == 403
    assert client.post("/v1/jobs", headers=_auth(tokens["operator"]), json={}).status_code == 422
    assert client.get("/v1/audit", headers=_auth(tokens["operator"])).status_code == 403
    assert client.get("/v1/audit", headers=_auth(tokens["admin"])).status_code == 200
    assert client.get("/v1/users", headers=_auth(tokens["operator"])).status_code == 403
    assert client.get("/openapi.json", headers=_auth(tokens["viewer"])).status_code == 200


# auditing -----------------------------------------------------------------------
def test_changes_and_refusals_are_audited_with_the_users_name(served):
    client, home, tokens = served
    before = len(_audit(home))
    assert client.get("/v1/jobs", headers=_auth(tokens["viewer"])).status_code == 200
    assert len(_audit(home)) == before  # a read is not audited
    res = client.post("/v1/jobs/nope/stop", headers=_auth(tokens["operator"]))
    assert res.status_code == 404
    entry = _audit(home)[-1]
    assert (entry["kind"], entry["actor"]) == ("server.request", "olga")
    assert entry["details"] == {"operation": "job_stop", "method": "POST", "path": "/v1/jobs/nope/stop",
                                "status": 404}
    # a 400 refusal (validation) names the route and the first line of the reason
    res = client.post("/v1/users", headers=_auth(tokens["admin"]), json={"name": "1 bad", "role": "boss"})
    assert res.status_code == 400
    entry = _audit(home)[-1]
    assert (entry["kind"], entry["actor"], entry["details"]["status"]) == ("server.request.refused", "ada", 400)
    assert entry["details"]["operation"] == "user_add" and entry["details"]["path"] == "/v1/users"
    assert entry["details"]["reason"].startswith("user name '1 bad'") and "\n" not in entry["details"]["reason"]
    # the bootstrap token acts as 'admin'; the user change itself names who made it
    res = client.post("/v1/users", headers=_auth(TOKEN), json={"name": "temp", "role": "viewer"})
    assert res.status_code == 200
    added = _audit(home, "user.add")[-1]
    assert added["actor"] == "admin" and added["details"] == {"name": "temp", "role": "viewer"}
    assert _audit(home, "server.request")[-1]["actor"] == "admin"
    res = client.delete("/v1/users/temp", headers=_auth(tokens["admin"]))
    assert res.status_code == 200 and _audit(home, "user.remove")[-1]["actor"] == "ada"
    assert all(r["ok"] for r in client.get("/v1/audit/verify", headers=_auth(TOKEN)).json()["data"])


def test_unknown_rotated_and_removed_tokens_get_401(served):
    client, home, tokens = served
    forged = tokens["viewer"][:-4] + ("AAAA" if not tokens["viewer"].endswith("AAAA") else "BBBB")
    for token in (forged, "fwu_000000000000_nope", "fwu__", "anything"):
        res = client.get("/v1/jobs", headers=_auth(token))
        assert res.status_code == 401 and res.json()["retcode"] == 401, token
    assert _audit(home, "server.login.refused")[-1]["details"]["reason"] == "wrong token"
    added = client.post("/v1/users", headers=_auth(TOKEN), json={"name": "rita", "role": "operator"}).json()["data"]
    old = added["token"]
    assert client.get("/v1/jobs", headers=_auth(old)).status_code == 200
    rotated = client.post("/v1/users/rita/rotate", headers=_auth(TOKEN)).json()["data"]
    assert rotated["token"] != old and rotated["rotated"] is not None
    assert client.get("/v1/jobs", headers=_auth(old)).status_code == 401
    assert client.get("/v1/jobs", headers=_auth(rotated["token"])).status_code == 200
    listed = {u["name"]: u for u in client.get("/v1/users", headers=_auth(TOKEN)).json()["data"]}
    assert listed["rita"]["last_used"] is not None and listed["rita"]["role"] == "operator"
    assert all(set(u) == {"name", "role", "created", "rotated", "last_used"} for u in listed.values())
    assert client.delete("/v1/users/rita", headers=_auth(TOKEN)).status_code == 200
    assert client.get("/v1/jobs", headers=_auth(rotated["token"])).status_code == 401
    assert client.delete("/v1/users/rita", headers=_auth(TOKEN)).status_code == 404


def _never_in_clear(home: Path, tokens: list[str]) -> None:
    """No file under ``home`` (the SQLite store and its WAL, audit logs) holds a token, nor
    the secret part of one."""
    for path in home.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for token in tokens:
                assert token.encode() not in blob and token.split("_", 2)[2].encode() not in blob, path


def test_tokens_are_kept_only_as_hashes(served):
    _client, home, tokens = served
    _never_in_clear(home, list(tokens.values()))


# the CLI ------------------------------------------------------------------------
def test_flow_user_in_standalone_mode(tmp_path: Path):
    flow = FlowCLI(tmp_path / "home")
    added = flow.ok("user", "add", "bob", "--role", "operator")
    assert added["name"] == "bob" and added["role"] == "operator" and added["token"].startswith("fwu_")
    res = flow("user", "add", "bob", "--role", "viewer")
    assert res.code != 0 and "already exists" in res.out["retmsg"]
    res = flow("user", "add", "eve", "--role", "root")
    assert res.code == 2 and "root" in res.err
    listed = flow.ok("user", "list")
    assert [(u["name"], u["role"], u["last_used"]) for u in listed] == [("bob", "operator", None)]
    assert "token" not in listed[0] and listed[0]["created"]
    rotated = flow.ok("user", "rotate", "bob")
    assert rotated["token"] != added["token"]
    _never_in_clear(flow.home, [added["token"], rotated["token"]])
    assert [e["kind"] for e in AuditLog(flow.home, "local").entries(kind="user")] == ["user.add", "user.rotate"]
    assert flow.ok("user", "remove", "bob") == {"name": "bob", "removed": True}
    assert flow.ok("user", "list") == []


def test_flow_user_through_a_server(tmp_path: Path, monkeypatch):
    server_home = tmp_path / "server"
    server_home.mkdir()
    monkeypatch.setenv("FLOW_HOME", str(server_home))  # the server's home while it serves
    monkeypatch.delenv("FEDWEAVE_SERVICE_CONF", raising=False)
    served = Served(ServiceConf(), TOKEN)
    try:
        admin = FlowCLI(tmp_path / "admin")
        admin.ok("init", "--ip", "127.0.0.1", "--port", served.port, "--token", TOKEN)
        added = admin.ok("user", "add", "vera", "--role", "viewer")
        assert added["role"] == "viewer"
        viewer = FlowCLI(tmp_path / "viewer")
        viewer.ok("init", "--ip", "127.0.0.1", "--port", served.port, "--token", added["token"])
        assert viewer.ok("job", "list") == []
        res = viewer("user", "list")
        assert res.code == 2 and "user 'vera' (viewer) may not user_list: needs admin" in res.err
        assert [u["name"] for u in admin.ok("user", "list")] == ["vera"]
        rotated = admin.ok("user", "rotate", "vera")
        res = viewer("job", "list")
        assert res.code == 2 and "wrong token" in res.err
        assert admin.ok("user", "remove", "vera") == {"name": "vera", "removed": True}
        _never_in_clear(server_home, [added["token"], rotated["token"]])
        refused = AuditLog(server_home, "local").entries(kind="server.request.refused")
        assert [(e["actor"], e["details"]["operation"]) for e in refused] == [("vera", "user_list")]
        assert {e["actor"] for e in AuditLog(server_home, "local").entries(kind="user")} == {"admin"}
    finally:
        served.stop()
