"""Issue 11, item 1: ``GET /v1/jobs/<job>/logs?role=../../../../../tmp/x&party_id=.&component=secret``
served ``/tmp/x/secret.log``: the identifiers were joined into a glob under ``logs/`` unchecked.
Now every identifier is refused with HTTP 400 and one line naming the field, through the
server and through ``flow job logs`` alike, and the planted file is never read."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from flow.core.settings import ServiceConf

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "traversal-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOB = "202401011200000000000042"
CANARY = "CANARY-7f3a9c-never-served"
PARTIES = [("guest", "9999"), ("host", "10000")]


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FLOW_HOME", str(home))
    return home


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """``<tmp>/tmp/x/secret.log`` outside the home, holding the canary."""
    path = tmp_path / "tmp" / "x" / "secret.log"
    path.parent.mkdir(parents=True)
    path.write_text(f"{CANARY}\n")
    return path


def _up_to_slash(home: Path, target: Path) -> str:
    """``../../..`` from ``<home>/logs/<JOB>`` up to ``/``, then ``target``: the report's form."""
    depth = len((home / "logs" / JOB).parts) - 1
    return "../" * depth + str(target).lstrip("/")


def _record_job(home: Path) -> None:
    from flow.store import Store

    components = {p: [("reader_0", "Reader")] for p in PARTIES}
    store = Store.for_home(home)
    try:
        store.create_job(JOB, conf={}, dsl={}, initiator=PARTIES[0], parties=PARTIES, components=components)
    finally:
        store.close()
    log = home / "logs" / JOB / "guest" / "9999" / "reader_0.log"
    log.parent.mkdir(parents=True)
    log.write_text("reader started\n")


@pytest.fixture
def client(home: Path):
    from flow.server.app import create_app

    with TestClient(create_app(ServiceConf(), TOKEN, detect=False)) as c:
        _record_job(home)
        yield c


def _assert_refused(res, field: str) -> None:
    assert res.status_code == 400, (res.status_code, res.text)
    assert CANARY not in res.text
    body = res.json()
    assert body["retcode"] == 2
    assert "\n" not in body["retmsg"] and body["retmsg"].startswith(f"{field}: "), body["retmsg"]
    assert body["data"] == {"problems": [body["retmsg"]]}


def test_the_reported_traversal_is_refused_and_the_file_never_served(client, home: Path, secret: Path):
    assert client.get(f"/v1/jobs/{JOB}/logs", headers=AUTH).text == "[guest 9999 reader_0] reader started\n"
    role = _up_to_slash(home, secret.parent)
    # the code before the fix globbed <home>/logs/<JOB>/<role>/<party>/<component>.log: this one
    assert (home / "logs" / JOB / role / "." / "secret.log").resolve() == secret.resolve()
    res = client.get(f"/v1/jobs/{JOB}/logs", headers=AUTH,
                     params={"role": role, "party_id": ".", "component": "secret"})
    _assert_refused(res, "role")


@pytest.mark.parametrize("params, field", [
    ({"role": "../../../tmp/x", "party_id": ".", "component": "secret"}, "role"),
    ({"role": "guest", "party_id": "..", "component": "secret"}, "party_id"),
    ({"role": "guest", "party_id": "../../../../tmp/x", "component": "secret"}, "party_id"),
    ({"role": "guest", "party_id": "9999", "component": "../../../../../tmp/x/secret"}, "component"),
    ({"component": "/etc/passwd"}, "component"),
    ({"party_id": "9999\x00"}, "party_id"),
    ({"role": "<script>alert(1)</script>"}, "role"),
    ({"party_id": "' OR 1=1 --"}, "party_id"),
    ({"component": "$(id)"}, "component"),
    ({"role": "guest;ls"}, "role"),
    ({"role": "*"}, "role"),
])
def test_every_log_selector_is_checked(client, secret: Path, params: dict, field: str):
    _assert_refused(client.get(f"/v1/jobs/{JOB}/logs", headers=AUTH, params=params), field)
    _assert_refused(client.get(f"/v1/jobs/{JOB}/logs", headers=AUTH, params={**params, "follow": "true"}), field)


@pytest.mark.parametrize("method, path, params, field", [
    ("GET", "/v1/jobs/.hidden/logs", {}, "job_id"),
    ("GET", "/v1/jobs/..%5C..%5Cx", {}, "job_id"),
    ("GET", f"/v1/tracking/{JOB}/..%5Cx/9999/reader_0/metrics", {}, "role"),
    ("GET", f"/v1/tracking/{JOB}/guest/..%5C..%5Cx/reader_0/output-model", {}, "party_id"),
    ("GET", f"/v1/tracking/{JOB}/guest/9999/.secret/output-data", {}, "component"),
    ("GET", "/v1/tables/..%5Cx/t", {}, "namespace"),
    ("DELETE", "/v1/tables/experiment/.x", {}, "name"),
    ("GET", "/v1/data/download", {"namespace": "experiment", "name": "../../x"}, "name"),
    ("GET", "/v1/tables", {"namespace": "../x"}, "namespace"),
    ("POST", "/v1/schedules/.hidden/pause", {}, "name"),
    ("GET", "/v1/schedules/..%5Cx/history", {}, "name"),
    ("GET", "/v1/models", {"model_id": "../../x"}, "model_id"),
    ("GET", "/v1/models/export", {"model_id": "m", "model_version": "../../x"}, "model_version"),
    ("GET", "/v1/models/export", {"job_id": JOB, "role": "../x", "party_id": "9999"}, "role"),
    ("GET", "/v1/audit", {"party": "../../x"}, "party"),
    ("GET", "/v1/audit/verify", {"party": "../../x"}, "party"),
    ("GET", "/v1/privileges", {"namespace": "../x"}, "namespace"),
])
def test_the_other_routes_refuse_bad_identifiers_with_400(client, method: str, path: str, params: dict,
                                                          field: str):
    _assert_refused(client.request(method, path, headers=AUTH, params=params), field)


def test_grants_and_uploads_refuse_bad_identifiers_with_400(client, home: Path):
    body = {"party": "guest:9999", "namespace": "../../x", "name": "t"}
    res = client.post("/v1/privileges/grant", headers=AUTH, json=body)
    assert res.status_code == 400 and res.json()["retmsg"].startswith("--namespace: ")
    res = client.post("/v1/privileges/revoke", headers=AUTH, json={**body, "namespace": "experiment",
                                                                   "party": "../x"})
    assert res.status_code == 400 and res.json()["retmsg"].startswith("--party ")
    res = client.post("/v1/data/upload", headers={**AUTH, "Content-Type": "text/csv"}, content=b"id,a\n1,2\n",
                      params={"namespace": "../../x", "name": "t"})
    _assert_refused(res, "namespace")
    res = client.post("/v1/data/upload", headers={**AUTH, "Content-Type": "text/csv"}, content=b"id,a\n1,2\n",
                      params={"namespace": "experiment", "name": "t", "filename": "a\x00b.csv"})
    _assert_refused(res, "filename")
    assert not (home / "uploads").exists() or not any((home / "uploads").iterdir())


def test_flow_job_logs_refuses_the_traversal_locally(tmp_path: Path, secret: Path):
    home = tmp_path / "flow_home"
    home.mkdir()
    _record_job(home)
    env = dict(os.environ, FLOW_HOME=str(home))
    env.pop("FEDWEAVE_SERVICE_CONF", None)

    def flow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flow.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=120, cwd=ROOT)

    ok = flow("job", "logs", "-j", JOB)
    assert ok.returncode == 0 and ok.stdout == "[guest 9999 reader_0] reader started\n", ok.stderr
    for args, field in ((["-r", "../../.."], "role"),
                        (["-r", _up_to_slash(home, secret.parent), "-p", ".", "-cpn", "secret"], "role"),
                        (["-r", "guest", "-p", "..", "-cpn", "secret"], "party_id"),
                        (["-cpn", "../../../../tmp/x/secret"], "component")):
        res = flow("job", "logs", "-j", JOB, *args)
        assert res.returncode == 2, (args, res.returncode, res.stdout, res.stderr)
        assert CANARY not in res.stdout + res.stderr and res.stdout == ""
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), res.stderr
