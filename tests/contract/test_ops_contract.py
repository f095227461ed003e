"""The operations contract: LocalOps (standalone) and RemoteOps (a flow server's client) are
one interface, :class:`flow.ops.api.Ops`, with the same answers.

The first section checks the declarations: every operation of the protocol exists on both
classes with the same parameters and types, and the server's OpenAPI spec offers the
route :data:`flow.ops.api.ROUTES` names for it. Each failure names the missing piece.

The rest runs once per entry of ``ops`` ("local": LocalOps on a fresh FLOW_HOME; "remote":
RemoteOps against a real flow server, uvicorn on 127.0.0.1, serving a home of its own):
the same calls, a small table upload and a Reader/DataTransform/Intersection job included,
must give the same answers. The "local" run keeps its answers (ids, times and the home's
path normalised) and the "remote" run must give them again.
"""

from __future__ import annotations

import inspect
import json
import re
import time
import typing
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from flow.cli.main import json_default
from flow.core.errors import FedweaveError
from flow.core.settings import ServiceConf
from flow.dsl.loader import plan_from_dicts
from flow.ops.api import API_PREFIX, ROUTES, Ops, operations
from flow.ops.local import LocalOps
from flow.ops.remote import RemoteOps
from flow.store import FINAL_STATES, Store
from tests.served import Served

TOKEN = "contract-token"
NS = "contract"
IMPLEMENTATIONS: dict[str, type] = {"local": LocalOps, "remote": RemoteOps}
#: LocalOps' public methods that are no operation: what the server and the engines use in-process
LOCAL_ONLY = {"storage", "session", "partitions", "iter_csv", "model_store", "scheduler", "schedule_folder",
              "audit_log", "privilege_change"}


# the declarations ----------------------------------------------------------
def _signature(fn: Callable[..., Any]) -> list[tuple[str, Any, Any, Any]]:
    hints = typing.get_type_hints(fn)
    params = [(p.name, p.kind, p.default, hints.get(p.name)) for p in inspect.signature(fn).parameters.values()]
    return params + [("return", None, None, hints.get("return"))]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_every_operation_exists_with_the_protocols_parameters(impl: str):
    cls = IMPLEMENTATIONS[impl]
    assert Ops in cls.__mro__ and not getattr(cls, "__abstractmethods__", None), \
        f"{cls.__name__} lacks {sorted(getattr(cls, '__abstractmethods__', ()))}"
    for op in operations():
        mine = getattr(cls, op, None)
        assert callable(mine), f"{cls.__name__} has no operation {op}"
        assert _signature(mine) == _signature(getattr(Ops, op)), \
            f"{cls.__name__}.{op}{inspect.signature(mine)} != Ops.{op}{inspect.signature(getattr(Ops, op))}"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_every_public_method_is_an_operation(impl: str):
    cls = IMPLEMENTATIONS[impl]
    public = {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}
    extra = public - set(operations()) - (LOCAL_ONLY if impl == "local" else set())
    assert not extra, f"{cls.__name__} has public methods the Ops protocol does not declare: {sorted(extra)}"


def test_every_operation_has_a_route_and_every_route_an_operation(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    from flow.server.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    with TestClient(create_app(ServiceConf(), TOKEN, detect=False)) as client:
        spec = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    offered = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    declared = {op: (method, API_PREFIX + path) for op, (method, path) in ROUTES.items()}
    assert set(ROUTES) == set(operations()), \
        f"ROUTES and Ops differ: {sorted(set(ROUTES) ^ set(operations()))}"
    missing = {op: r for op, r in declared.items() if r not in offered}
    assert not missing, f"the server offers no route for {missing}"
    unclaimed = offered - set(declared.values())
    assert not unclaimed, f"server routes no operation names in flow.ops.api.ROUTES: {sorted(unclaimed)}"
    for op, (_method, path) in ROUTES.items():
        names = set(inspect.signature(getattr(Ops, op)).parameters)
        assert set(re.findall(r"{(\w+)}", path)) <= names, f"{op}: {path} has parameters Ops.{op} lacks"


# the same answers ------------------------------------------------------------


@pytest.fixture(scope="module", params=list(IMPLEMENTATIONS))
def ops(request, tmp_path_factory) -> Iterator[Ops]:
    """The operations of a fresh home: in this process, or through a server of that home."""
    home = tmp_path_factory.mktemp(f"{request.param}_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOW_HOME", str(home))
        mp.delenv("FEDWEAVE_SERVICE_CONF", raising=False)
        conf = ServiceConf()
        if request.param == "local":
            yield LocalOps(conf, Store(conf.database_url))
            return
        served = Served(conf, TOKEN)
        try:
            yield RemoteOps("127.0.0.1", served.port, TOKEN, timeout=60)
        finally:
            served.stop()


#: answers by call, as the first implementation gave them (normalised)
ANSWERS: dict[str, Any] = {}
#: keys whose values are times or durations
TIMES = {"created", "updated", "start_time", "end_time", "started", "ended", "elapsed", "time", "fire_time",
         "next_fire", "created_at", "updated_at", "stored", "deployed", "deployed_at", "modified", "granted",
         "rotated", "last_used"}


def normalise(value: Any, subst: dict[str, str]) -> Any:
    """``value`` (as the CLI prints it) with what legitimately differs between two homes made
    alike: ids and paths (``subst``: text -> placeholder), hash-chain digests, and the digits
    of times (their format must agree: a client prints what the server sent)."""
    if isinstance(value, dict):
        return {k: (re.sub(r"\d+", "9", str(v)) if k in TIMES and v is not None else
                    "<digest>" if k in ("hash", "prev", "prev_hash") and v else normalise(v, subst))
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, subst) for v in value]
    if isinstance(value, str):
        for text, placeholder in subst.items():
            value = value.replace(text, placeholder)
    return value


def agree(key: str, answer: Any, subst: dict[str, str] | None = None) -> Any:
    """Check ``answer`` against the other implementation's answer to the same call (the first
    run records it); returns it normalised."""
    norm = normalise(json.loads(json.dumps(answer, default=json_default)), subst or {})  # as the CLI prints it
    if key in ANSWERS:
        assert norm == ANSWERS[key], f"{key}: the implementations answer differently"
    else:
        ANSWERS[key] = norm
    return norm


GUEST = "id,y,x0,x1\n" + "".join(f"u{i},{i % 2},{i * 0.5},{-i}\n" for i in range(24))
HOST = "id,z0,z1,z2\n" + "".join(f"u{i},{i},{i * 2},{i % 3}\n" for i in range(4, 30))
CONF = {
    "dsl_version": 2,
    "initiator": {"role": "guest", "party_id": 9999},
    "role": {"guest": [9999], "host": [10000]},
    "job_parameters": {"common": {"computing_partitions": 2, "timeout": 120}},
    "component_parameters": {
        "common": {"intersection_0": {"intersect_method": "raw"}},
        "role": {
            "guest": {"0": {"reader_0": {"table": {"name": "guest", "namespace": NS}},
                            "data_transform_0": {"with_label": True, "label_name": "y"}}},
            "host": {"0": {"reader_0": {"table": {"name": "host", "namespace": NS}},
                           "data_transform_0": {"with_label": False}}},
        },
    },
}
DSL = {"components": {
    "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
    "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                         "output": {"data": ["data"], "model": ["model"]}},
    "intersection_0": {"module": "Intersection", "input": {"data": {"data": ["data_transform_0.data"]}},
                       "output": {"data": ["data"]}},
}}


def _home(ops: Ops) -> str:
    return str(Path(ops.server_status()["home"]))


@pytest.fixture(scope="module")
def tables(ops: Ops, tmp_path_factory) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("csv")
    (folder / "guest.csv").write_text(GUEST)
    (folder / "host.csv").write_text(HOST)
    return [ops.data_upload(folder / "guest.csv", NS, "guest", label_column="y", partitions=2),
            ops.data_upload(folder / "host.csv", NS, "host", partitions=2)]


@pytest.fixture(scope="module")
def job(ops: Ops, tables) -> dict[str, Any]:
    """The small job submitted and finished; its submit answer and its final detail."""
    info = ops.job_submit(plan_from_dicts(CONF, DSL), "conf.json", "dsl.json")
    end = time.monotonic() + 120
    detail = ops.job_query(info["job_id"])
    while detail["status"] not in FINAL_STATES and time.monotonic() < end:
        time.sleep(0.3)
        detail = ops.job_query(info["job_id"])
    assert detail["status"] == "success", detail
    return {"info": info, "detail": detail, "subst": {info["job_id"]: "<job>", _home(ops): "<home>"}}


def test_tables_upload_list_describe_and_download(ops: Ops, tables, tmp_path: Path):
    assert [t["count"] for t in agree("upload", tables)] == [24, 26]
    listed = agree("table_list", ops.table_list(NS))
    assert {t["name"] for t in listed} == {"guest", "host"}
    info = ops.table_info(NS, "guest")
    # where the CSV was read: the client's file, or the server's scratch copy of its body; the name is kept
    info["extra"]["source"] = Path(info["extra"]["source"]).name
    info = agree("table_info", info, {_home(ops): "<home>"})
    assert info["count"] == 24 and info["label_column"] == "y"
    out = ops.data_download(NS, "guest", tmp_path / "g.csv")
    assert out["count"] == 24 and sorted(Path(out["file"]).read_text().splitlines()) == sorted(GUEST.splitlines())
    with pytest.raises(FedweaveError, match="missing"):
        ops.table_info(NS, "missing")


def test_a_job_runs_and_is_queried_listed_and_logged(ops: Ops, job):
    info, detail, subst = job["info"], job["detail"], job["subst"]
    agree("job_submit", info, subst)
    norm = agree("job_query", {**detail, "tasks": sorted(detail["tasks"], key=lambda t: (t["component"], t["role"]))},
                 subst)
    assert {(t["component"], t["status"]) for t in norm["tasks"]} == {
        (c, "success") for c in ("reader_0", "data_transform_0", "intersection_0")}
    listed = ops.job_list()
    assert [j["job_id"] for j in listed] == [info["job_id"]]
    agree("job_list", listed, subst)
    lines = list(ops.job_logs(info["job_id"], role="guest", party_id="9999", component="intersection_0"))
    assert lines and all(line.startswith("[guest 9999 intersection_0]") for line in lines)
    with pytest.raises(FedweaveError, match="no job 'nope'"):
        ops.job_query("nope")


def test_tracking_answers_metrics_output_data_and_model(ops: Ops, job, tmp_path: Path):
    job_id, subst = job["info"]["job_id"], job["subst"]
    agree("tracking_metrics", ops.tracking_metrics(job_id, "guest", "9999", "intersection_0"), subst)
    data = ops.tracking_output_data(job_id, "guest", "9999", "intersection_0", tmp_path, limit=3)
    assert data[0]["count"] == 20 and len(data[0]["rows"]) == 3 and Path(data[0]["file"]).is_file()
    agree("tracking_output_data", [{k: v for k, v in d.items() if k != "file"} for d in data], subst)
    agree("tracking_output_model", ops.tracking_output_model(job_id, "host", "10000", "data_transform_0"), subst)
    with pytest.raises(FedweaveError, match="no task"):
        ops.tracking_metrics(job_id, "guest", "9999", "nope_0")


def test_models_are_listed(ops: Ops, job):
    agree("model_list", ops.model_list(), job["subst"])


def test_a_schedule_is_added_listed_paused_and_removed(ops: Ops, job):
    added = ops.schedule_add("0 3 * * *", CONF, DSL, name="nightly", paused=True)
    assert added["name"] == "nightly" and added["paused"] is True
    agree("schedule_add", added, job["subst"])
    assert [s["name"] for s in agree("schedule_list", ops.schedule_list(), job["subst"])] == ["nightly"]
    assert agree("schedule_resume", ops.schedule_resume("nightly"))["paused"] is False
    assert agree("schedule_pause", ops.schedule_pause("nightly")) == {"name": "nightly", "paused": True}
    assert agree("schedule_history", ops.schedule_history("nightly")) == []
    assert agree("schedule_remove", ops.schedule_remove("nightly")) == {"name": "nightly", "removed": True}
    assert ops.schedule_list() == []


def test_a_privilege_is_granted_listed_and_revoked(ops: Ops, tables):
    granted = ops.privilege_grant("guest:9999", NS, "host")
    assert granted["created"] is True
    agree("privilege_grant", granted)
    listed = ops.privilege_list(namespace=NS)
    assert [g["party"] for g in listed] == [granted["party"]]
    agree("privilege_list", listed)
    agree("privilege_revoke", ops.privilege_revoke("guest:9999", NS, "host"))
    assert ops.privilege_list() == []


def test_users_are_added_listed_rotated_and_removed(ops: Ops):
    added = ops.user_add("carol", "operator")
    token = added.pop("token")
    assert token.startswith("fwu_") and added["name"] == "carol" and added["role"] == "operator"
    agree("user_add", added)
    assert [u["name"] for u in agree("user_list", ops.user_list())] == ["carol"]
    assert all("token" not in u and "token_hash" not in u for u in ops.user_list())
    rotated = ops.user_rotate("carol")
    assert rotated.pop("token") not in ("", token)
    agree("user_rotate", rotated)
    assert agree("user_remove", ops.user_remove("carol")) == {"name": "carol", "removed": True}
    assert ops.user_list() == []
    with pytest.raises(FedweaveError, match="no user 'carol'"):
        ops.user_remove("carol")


def test_the_audit_log_records_the_same_actions(ops: Ops, job):
    entries = ops.audit_list(kind="data.upload")
    assert [e["details"]["name"] for e in entries] == ["guest", "host"]
    # a flow server also records each request it refused or that changed something (server.*)
    kinds = agree("audit_kinds", sorted({e["kind"] for e in ops.audit_list() if not e["kind"].startswith("server.")}))
    assert {"data.upload", "job.submit"} <= set(kinds)
    verified = ops.audit_verify()
    # the home's own log ("local") holds the server.* entries too, so its length differs
    agree("audit_verify", [{**r, "entries": None} if r["party"] == "local" else r for r in verified],
          {_home(ops): "<home>"})
    assert verified and all(r["ok"] for r in verified)


def test_server_status_names_the_same_home_kind_and_engines(ops: Ops):
    status = ops.server_status()
    agree("server_status", {k: status[k] for k in ("mode", "engines", "transport")})
    assert status["store"]["jobs"] in ({}, {"success": 1})
