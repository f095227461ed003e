"""The flow server's HTTP API in process: the token on every route, the OpenAPI spec,
errors in FATE's envelope, and a table going in and out over HTTP."""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import warnings
from pathlib import Path

import pytest

from flow.core.settings import ServiceConf
from flow.server.auth import ensure_token, read_token, token_path

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

#: every CLI operation the server must offer: (method, path)
CLI_ROUTES = {
    ("post", "/v1/jobs"), ("get", "/v1/jobs"), ("get", "/v1/jobs/{job_id}"), ("post", "/v1/jobs/{job_id}/stop"),
    ("post", "/v1/jobs/{job_id}/rerun"), ("get", "/v1/jobs/{job_id}/logs"),
    ("post", "/v1/data/upload"), ("get", "/v1/data/download"),
    ("get", "/v1/tables"), ("get", "/v1/tables/{namespace}/{name}"), ("delete", "/v1/tables/{namespace}/{name}"),
    ("post", "/v1/tables/bind"),
    ("get", "/v1/tracking/{job_id}/{role}/{party_id}/{component}/metrics"),
    ("get", "/v1/tracking/{job_id}/{role}/{party_id}/{component}/output-data"),
    ("get", "/v1/tracking/{job_id}/{role}/{party_id}/{component}/output-model"),
    ("get", "/v1/server/status"),
    ("post", "/v1/schedules"), ("get", "/v1/schedules"), ("post", "/v1/schedules/{name}/pause"),
    ("post", "/v1/schedules/{name}/resume"), ("delete", "/v1/schedules/{name}"),
    ("post", "/v1/schedules/{name}/run-now"), ("get", "/v1/schedules/{name}/history"),
    ("post", "/v1/privileges/grant"), ("post", "/v1/privileges/revoke"), ("get", "/v1/privileges"),
    ("get", "/v1/audit"), ("get", "/v1/audit/verify"),
    ("get", "/v1/models"), ("post", "/v1/models/deploy"), ("get", "/v1/models/export"), ("post", "/v1/models/import"),
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FLOW_HOME", str(home))
    return home


@pytest.fixture
def client(home: Path):
    from flow.server.app import create_app

    with TestClient(create_app(ServiceConf(), TOKEN, detect=False)) as c:
        yield c


def _spec(client) -> dict:
    res = client.get("/openapi.json", headers=AUTH)
    assert res.status_code == 200
    return res.json()


def test_the_spec_lists_every_cli_operation_and_the_bearer_scheme(client):
    spec = _spec(client)
    offered = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert CLI_ROUTES <= offered, CLI_ROUTES - offered
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert all(op.get("security") for ops in spec["paths"].values() for op in ops.values())


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": TOKEN}], ids=["none", "wrong", "basic", "bare"])
def test_every_route_and_the_spec_refuse_a_request_without_the_token(client, headers):
    paths = [(m, re.sub(r"\{[^}]+\}", "x", p)) for m, p in sorted(CLI_ROUTES)] + [("get", "/openapi.json")]
    for method, path in paths:
        res = client.request(method.upper(), path, headers=headers, json={"conf": {}, "dsl": {}})
        assert res.status_code == 401, (method, path, res.status_code, res.text)
        assert res.headers["www-authenticate"] == "Bearer"
        assert res.json()["retcode"] == 401
    assert client.get("/v1/jobs", headers=AUTH).json() == {"retcode": 0, "retmsg": "success", "data": []}
    from flow.governance.audit import AuditLog

    refused = [e for e in AuditLog(os.environ["FLOW_HOME"], "local").entries() if e["kind"] == "server.login.refused"]
    assert len(refused) == len(paths) and {e["details"]["path"] for e in refused} == {p for _, p in paths}


def test_errors_come_back_as_the_cli_would_print_them(client):
    res = client.get("/v1/jobs/nope", headers=AUTH)
    assert res.status_code == 404 and res.json()["retcode"] == 2 and "no job 'nope'" in res.json()["retmsg"]
    conf = json.loads((ROOT / "examples/hetero_lr/conf.json").read_text())
    dsl = json.loads((ROOT / "examples/hetero_lr/dsl.json").read_text())
    dsl["components"]["hetero_lr_0"]["input"]["data"]["train_data"] = ["no_such_cpn.data"]
    res = client.post("/v1/jobs", headers=AUTH, json={"conf": conf, "dsl": dsl, "dsl_file": "my_dsl.json"})
    body = res.json()
    assert res.status_code == 400 and body["retcode"] == 2
    assert any(p.startswith("my_dsl.json") and "no_such_cpn" in p for p in body["data"]["problems"]), body
    assert client.get("/v1/jobs", headers=AUTH).json()["data"] == []  # nothing was created
    res = client.get("/v1/tables/experiment/missing", headers=AUTH)
    assert res.status_code == 404 and "missing" in res.json()["retmsg"]
    res = client.get("/v1/jobs", headers=AUTH, params={"limit": -1})
    assert res.status_code == 422 and res.json()["retcode"] == 2


def test_a_table_goes_in_and_comes_out_over_http(client, tmp_path: Path):
    src = tmp_path / "t.csv"
    src.write_text("id,y,a,b\n" + "".join(f"u{i},{i % 2},{i * 0.5},{-i}\n" for i in range(50)))
    res = client.post("/v1/data/upload", headers={**AUTH, "Content-Type": "text/csv"}, content=src.read_bytes(),
                      params={"namespace": "exp", "name": "t", "label_column": "y", "partitions": 2,
                              "filename": "t.csv"})
    assert res.status_code == 200, res.text
    assert res.json()["data"]["count"] == 50
    info = client.get("/v1/tables/exp/t", headers=AUTH).json()["data"]
    assert info["count"] == 50 and info["label_column"] == "y"
    assert client.get("/v1/tables", headers=AUTH).json()["data"] == [
        {"namespace": "exp", "name": "t", "count": 50, "engine": "localfs"}]
    with client.stream("GET", "/v1/data/download", headers=AUTH, params={"namespace": "exp", "name": "t"}) as res:
        assert res.status_code == 200
        text = res.read().decode()
    rows = list(csv.reader(text.splitlines()))
    assert rows[0][0] == "id" and len(rows) == 51
    original = {r[0]: r for r in csv.reader(src.read_text().splitlines()[1:])}
    got = {r[0]: r for r in rows[1:]}
    assert got.keys() == original.keys()
    assert all(float(got[k][rows[0].index("a")]) == float(original[k][2]) for k in got)
    assert client.delete("/v1/tables/exp/t", headers=AUTH).json()["data"]["deleted"] is True
    assert client.get("/v1/tables", headers=AUTH).json()["data"] == []
    assert not any((Path(os.environ["FLOW_HOME"]) / "uploads").iterdir())  # the upload's copy is gone


def test_the_token_comes_from_the_conf_else_a_private_file(home: Path):
    conf = ServiceConf()
    assert read_token(conf) is None
    token = ensure_token(conf)
    assert len(token) >= 32 and token_path(conf) == home / "server_token"
    assert stat.S_IMODE(token_path(conf).stat().st_mode) == 0o600
    assert ensure_token(conf) == token  # kept, not replaced
    assert ensure_token(ServiceConf(server={"token": "from-conf"})) == "from-conf"


def test_a_server_without_a_token_does_not_start(home: Path):
    from flow.core.errors import ConfigError
    from flow.server.app import create_app

    with pytest.raises(ConfigError, match="token"):
        create_app(ServiceConf(), "")
