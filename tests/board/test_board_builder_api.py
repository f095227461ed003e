"""The builder's server side: the palette is the component registry with each module's
parameter schema, validation gives `flow job validate`'s own lines each placed on the
component, party block and field it names, a past job's files come back as submitted, and
submitting needs the operator role and the CSRF token."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from components.base import COMPONENTS
from flow.server.board.builder import place, split_path
from tests.e2e.conftest import load_example, write_job

from .conftest import BoardHome, lr_job_files
from .test_board_api import login

pytestmark = pytest.mark.e2e


def test_paths_are_read_back_to_component_scope_and_field():
    assert split_path('component_parameters.role.host.0.reader_0.table') == [
        "component_parameters", "role", "host", "0", "reader_0", "table"]
    assert split_path('a["x.y"][2].b') == ["a", "x.y", "2", "b"]
    line = "conf.json: component_parameters.role.host.0.reader_0.table: required parameter not set"
    assert place(line) | {"line": None} == {
        "line": None, "file": "conf.json", "path": "component_parameters.role.host.0.reader_0.table",
        "message": "required parameter not set", "component": "reader_0", "scope": "host:0", "field": "table",
        "section": "parameters"}
    common = place("conf.json: component_parameters.common.hetero_lr_0.encrypt_param.key_length: too short")
    assert (common["component"], common["scope"], common["field"]) == ("hetero_lr_0", "common",
                                                                       "encrypt_param.key_length")
    dsl = place("dsl.json: components.evaluation_0.module: unknown module 'Evaluatoin'")
    assert (dsl["component"], dsl["section"], dsl["field"]) == ("evaluation_0", "dsl", "module")
    assert place("conf.json: role.guest[0]: not a party id")["section"] == "roles"
    assert place("something else entirely")["component"] is None


def test_palette_is_every_registered_module_with_its_schema(board_home: BoardHome):
    client, _ = login(board_home)
    modules = client.get("/board/api/modules").json()["data"]["modules"]
    assert sorted(m["module"] for m in modules) == sorted(COMPONENTS.names())
    lr = next(m for m in modules if m["module"] == "HeteroLR")
    params = {p["name"]: p for p in lr["parameters"]}
    assert params["penalty"]["allowed"] and "L2" in params["penalty"]["allowed"]
    assert "encrypt_param.key_length" in params and params["max_iter"]["default"] > 0
    reader = next(m for m in modules if m["module"] == "Reader")
    assert reader["input_data"] == [] and reader["output_data"] and not reader["output_model"]
    assert {"table.name", "table.namespace"} <= {p["name"] for p in reader["parameters"]}


def test_validation_gives_the_validators_lines_placed(board_home: BoardHome, tmp_path: Path):
    client, csrf = login(board_home)
    conf, dsl = load_example("hetero_lr")
    broken = copy.deepcopy(conf)
    del broken["component_parameters"]["role"]["host"]["0"]["reader_0"]  # the host's table left out
    broken["component_parameters"]["common"]["hetero_lr_0"]["max_iter"] = -3
    answer = client.post("/board/api/validate", json={"conf": broken, "dsl": dsl},
                         headers={"X-CSRF-Token": csrf}).json()["data"]
    assert answer["valid"] is False
    c, d = write_job(tmp_path, broken, dsl, "broken")
    cli = board_home.flow("job", "validate", "-c", c, "-d", d)
    assert cli.code == 2
    printed = [line.replace(str(c), "conf.json").replace(str(d), "dsl.json") for line in cli.err.splitlines()]
    assert [p["line"] for p in answer["problems"]] == [line for line in printed if line.startswith("conf.json")]
    by_field = {(p["component"], p["scope"], p["field"]) for p in answer["problems"]}
    assert ("reader_0", "host:0", "table") in by_field and ("hetero_lr_0", "common", "max_iter") in by_field
    # the example as written: valid, on this home's tables
    fine = client.post("/board/api/validate", json={"conf": conf, "dsl": dsl}, headers={"X-CSRF-Token": csrf})
    assert fine.json()["data"] | {"notices": [], "stages": None} == {"valid": True, "problems": [], "notices": [],
                                                                      "stages": None}
    # its notices are the lines the CLI prints as "notice:", the tables it could not check included
    c, d = write_job(tmp_path, conf, dsl, "fine")
    told = board_home.flow("job", "validate", "-c", c, "-d", d)
    assert told.code == 0
    printed = [line.replace(str(c), "conf.json").replace(str(d), "dsl.json") for line in told.err.splitlines()]
    assert fine.json()["data"]["notices"] == [line[len("notice: "):] for line in printed if line.startswith("notice: ")]


def test_pipeline_of_a_past_job_is_its_files(board_home: BoardHome):
    client, _ = login(board_home)
    found = client.get(f"/board/api/jobs/{board_home.lr_job}/pipeline").json()["data"]
    job = board_home.flow.ok("job", "query", "-j", board_home.lr_job)
    assert found["description"] == "hetero lr on breast"
    conf, dsl = lr_job_files()  # the files the fixture submitted
    assert found["dsl"] == dsl and found["conf"] == conf
    assert found["job_id"] == job["job_id"]
    assert client.get("/board/api/jobs/no_such_job_1/pipeline").status_code == 404


def test_submit_needs_operator_and_csrf(board_home: BoardHome, tmp_path: Path):
    conf, dsl = json.loads(board_home.reader_conf(tmp_path)[0].read_text()), json.loads(
        board_home.reader_conf(tmp_path)[1].read_text())
    client, csrf = login(board_home)
    assert client.post("/board/api/submit", json={"conf": conf, "dsl": dsl}).status_code == 403
    token = board_home.flow.ok("user", "add", "vera", "--role", "viewer")["token"]
    viewer, viewer_csrf = login(board_home, token)
    refused = viewer.post("/board/api/submit", json={"conf": conf, "dsl": dsl}, headers={"X-CSRF-Token": viewer_csrf})
    assert refused.status_code == 403 and "needs operator" in refused.json()["retmsg"]
    board_home.flow.ok("user", "remove", "vera")
    bad = client.post("/board/api/submit", json={"conf": {**conf, "role": {}}, "dsl": dsl},
                      headers={"X-CSRF-Token": csrf})
    assert bad.status_code in (400, 422) and "conf.json: role" in bad.json()["retmsg"]
    job = client.post("/board/api/submit", json={"conf": conf, "dsl": dsl, "description": "from the builder api"},
                      headers={"X-CSRF-Token": csrf}).json()["data"]
    assert board_home.flow.wait(job["job_id"])["status"] == "success"
