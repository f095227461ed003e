"""What FATE, Airflow and Flower users look for (issue 12 §5), through the real ``flow`` CLI:
job descriptions and ``flow job list`` filters, FATE 1.x's ``flow component`` group and
``flow module describe``, the DAG drawn in text, logs of a party kept elsewhere, and
``flow audit summary`` with a list that leaves the per-object traffic out unless asked.

One small job (Reader -> DataTransform -> Intersection, guest 9999 and host 10000) runs
once for the module; every command reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flow.core.settings import ServiceConf
from flow.ops.local import LocalOps
from flow.store import Store
from tests.contract.test_ops_contract import CONF, DSL, GUEST, HOST, NS
from tests.e2e.conftest import FlowCLI


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[FlowCLI, str, Path]:
    """A home with the small job run to success (submitted with a description)."""
    root = tmp_path_factory.mktemp("fate_cli")
    home = root / "home"
    home.mkdir()
    flow = FlowCLI(home)
    (root / "guest.csv").write_text(GUEST)
    (root / "host.csv").write_text(HOST)
    flow.upload(root / "guest.csv", "guest", label="y", namespace=NS)
    flow.upload(root / "host.csv", "host", namespace=NS)
    (root / "conf.json").write_text(json.dumps(CONF))
    (root / "dsl.json").write_text(json.dumps(DSL))
    job = flow.ok("job", "submit", "-c", root / "conf.json", "-d", root / "dsl.json", "--wait",
                  "--description", "PSI smoke test, Q4 cohort")
    assert job["status"] == "success", job["reason"]
    return flow, job["job_id"], root


# 1. descriptions and list filters ---------------------------------------------------
def test_the_description_is_shown_by_query_and_list_and_filters_list(ran):
    flow, job_id, _ = ran
    assert flow.ok("job", "query", "-j", job_id)["description"] == "PSI smoke test, Q4 cohort"
    (listed,) = flow.ok("job", "list")
    assert listed["job_id"] == job_id and listed["description"] == "PSI smoke test, Q4 cohort"
    assert [j["job_id"] for j in flow.ok("job", "list", "--description", "q4 COHORT")] == [job_id]
    assert flow.ok("job", "list", "--description", "nightly") == []


@pytest.mark.parametrize("args, found", [
    (("--status", "success"), True), (("--status", "failed"), False),
    (("--role", "host"), True), (("--role", "arbiter"), False),
    (("--party", "10000"), True), (("-r", "host", "-p", "9999"), False), (("--party", "4242"), False),
    (("--initiator", "guest:9999"), True), (("--initiator", "9999"), True), (("--initiator", "host:10000"), False),
    (("--since", "2000-01-01"), True), (("--since", "2999-01-01"), False),
    (("--until", "2999-01-01T00:00Z"), True), (("--until", "2000-01-01"), False),
])
def test_job_list_filters(ran, args, found):
    flow, job_id, _ = ran
    assert [j["job_id"] for j in flow.ok("job", "list", *args)] == ([job_id] if found else [])


def test_a_bad_filter_is_one_line_and_exit_2(ran):
    flow, _, _ = ran
    res = flow("job", "list", "--status", "done")
    assert res.code == 2 and res.err.strip() == "error: job status 'done' is not one of " \
        "waiting, running, success, failed, canceled, timeout"
    res = flow("job", "list", "--since", "yesterday")
    assert res.code == 2 and "is not an ISO time" in res.err and len(res.err.strip().splitlines()) == 1


# 2. flow component and flow module -----------------------------------------------------
def _task(job_id: str, role: str = "guest", pid: str = "9999", cpn: str = "intersection_0") -> list[str]:
    return ["-j", job_id, "-r", role, "-p", pid, "-cpn", cpn]


def test_component_list_and_parameters(ran):
    flow, job_id, _ = ran
    listed = flow.ok("component", "list", "-j", job_id)
    assert [(c["component_name"], c["module"], c["stage"]) for c in listed["components"]] == [
        ("reader_0", "Reader", 1), ("data_transform_0", "DataTransform", 2), ("intersection_0", "Intersection", 3)]
    assert listed["components"][2]["upstreams"] == ["data_transform_0"]
    params = flow.ok("component", "parameters", *_task(job_id, "host", "10000", "reader_0"))
    assert params["module"] == "Reader" and params["need_run"] is True
    assert params["parameters"]["table"] == {"namespace": NS, "name": "host"}
    inter = flow.ok("component", "parameters", *_task(job_id))["parameters"]
    assert inter["need_run"] is True and "intersect_method" in inter  # defaults filled in
    res = flow("component", "parameters", *_task(job_id, "host", "10000", "nope_0"))
    assert res.code == 2 and "no component 'nope_0'" in res.err


def test_component_tracking_commands_answer_as_flow_tracking(ran, tmp_path: Path):
    flow, job_id, _ = ran
    every = flow.ok("component", "metric-all", *_task(job_id))
    assert every == flow.ok("tracking", "metrics", *_task(job_id))
    assert flow.ok("component", "metrics", *_task(job_id)) == {ns: sorted(v) for ns, v in every.items()}
    model = flow.ok("component", "output-model", *_task(job_id, "host", "10000", "data_transform_0"))
    assert model == flow.ok("tracking", "output-model", *_task(job_id, "host", "10000", "data_transform_0"))
    (data,) = flow.ok("component", "output-data", *_task(job_id), "-o", tmp_path, "--limit", "2")
    assert len(data["rows"]) == 2 and Path(data["file"]).is_file()
    (table,) = flow.ok("component", "output-data-table", *_task(job_id))
    assert (table["table_namespace"], table["table_name"], table["count"]) == (data["namespace"], data["name"],
                                                                              data["count"])


def test_module_describe_and_list(ran):
    flow, _, _ = ran
    lr = flow.ok("module", "describe", "HeteroLR")
    by_name = {p["name"]: p for p in lr["parameters"]}
    assert by_name["optimizer"]["default"] == "rmsprop" and "adam" in by_name["optimizer"]["allowed"]
    assert by_name["max_iter"]["type"] == "int" and by_name["max_iter"]["allowed"] == ">= 1"
    assert by_name["encrypt_param.key_length"]["default"] == 1024
    assert lr["roles"] == ["guest", "host", "arbiter"]
    modules = {m["module"] for m in flow.ok("module", "list")}
    assert {"Reader", "HeteroLR", "HeteroSecureBoost"} <= modules
    res = flow("module", "describe", "HeteroLRR")
    assert res.code != 0 and "HeteroLR" in res.err


# 3. the DAG in text ------------------------------------------------------------------
def test_job_dag_and_validate_dag_draw_the_stages(ran):
    flow, job_id, root = ran
    res = flow("job", "dag", "-j", job_id)
    picture = res.out.get("raw", "")
    assert res.code == 0 and picture.startswith("stage 1  +")
    assert "| intersection_0 |" in picture and "  data_transform_0 -> intersection_0  (data)" in picture
    assert max(len(line) for line in picture.splitlines()) <= 80
    res = flow("job", "validate", "-c", root / "conf.json", "-d", root / "dsl.json", "--dag")
    assert res.code == 0 and res.out["data"]["stages"] and "| reader_0 |" in res.err
    assert flow("job", "dag", "-j", "nope").code == 2


# 4. logs of a party kept elsewhere -------------------------------------------------------
def test_logs_of_a_party_this_home_did_not_run_say_where_they_are(tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("FLOW_HOME", str(home))
    monkeypatch.delenv("FEDWEAVE_SERVICE_CONF", raising=False)
    conf = ServiceConf()
    store = Store(conf.database_url)
    job_conf = {**CONF, "role": {"guest": [9999], "host": [2002]}}
    store.create_job("j1", conf=job_conf, dsl=DSL, initiator=("guest", "9999"), parties=[("guest", "9999")],
                     components={("guest", "9999"): [("reader_0", "Reader")]})  # as a server's initiator does
    logs = home / "logs" / "j1" / "guest" / "9999"
    logs.mkdir(parents=True)
    (logs / "reader_0.log").write_text("read 24 rows\n")
    store.close()
    flow = FlowCLI(home)
    res = flow("job", "logs", "-j", "j1", "-r", "host", "-p", "2002")
    assert res.code == 2 and res.out == {}
    assert res.err.strip().splitlines() == [
        "error: logs of host 2002 in job j1 are kept at party 2002, which ran it; this home ran guest 9999 "
        "(ask party 2002's flow server)"]
    res = flow("job", "logs", "-j", "j1", "-r", "arbiter")
    assert res.code == 2 and "job j1 has no party arbiter" in res.err
    res = flow("job", "logs", "-j", "j1", "-r", "guest", "-p", "9999")
    assert res.code == 0 and res.out["raw"].strip() == "[guest 9999 reader_0] read 24 rows"
    ops = LocalOps(conf, Store(conf.database_url))
    assert list(ops.job_logs("j1")) == ["[guest 9999 reader_0] read 24 rows"]


# 6. audit summary and the list's default ----------------------------------------------------
def test_audit_summary_totals_the_traffic_the_list_leaves_out(ran):
    flow, job_id, _ = ran
    everything = flow.ok("audit", "list", "--all")
    traffic = [e for e in everything if e["kind"].startswith("federation.")]
    assert traffic, "the job exchanged objects between the parties"
    default = flow.ok("audit", "list")
    assert default and not [e for e in default if e["kind"].startswith("federation.")]
    assert len(default) == len(everything) - len(traffic)
    assert len(flow.ok("audit", "list", "-l", "2")) == 2
    assert flow.ok("audit", "list", "--kind", "federation.sent") == [
        e for e in everything if e["kind"] == "federation.sent"]
    summary = flow.ok("audit", "summary", "-j", job_id)
    assert sum(r["objects"] for r in summary) == len(traffic)
    assert sum(r["bytes"] for r in summary) == sum(e["details"]["bytes"] for e in traffic)
    assert {r["direction"] for r in summary} == {"sent", "received"}
    assert all(set(r) == {"party", "direction", "peer", "variable", "objects", "bytes", "jobs"} for r in summary)
    assert [r["bytes"] for r in summary] == sorted((r["bytes"] for r in summary), reverse=True)
    assert flow.ok("audit", "summary", "-j", "20000101000000000000") == []
