"""Bad pipelines through the real CLI: one line per problem, exit 2, nothing created."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from flow.store import Store

from .conftest import load_example, write_job


def _nothing_created(flow) -> None:
    jobs = flow.home / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())
    db = flow.home / "flow.sqlite"
    assert not db.exists() or Store.for_home(flow.home).jobs() == []


def _mutations():
    conf, dsl = load_example("hetero_lr")

    def unknown_module(c, d):
        d["components"]["hetero_lr_0"]["module"] = "HeteroLRR"
        return "dsl.json: components.hetero_lr_0.module", "did you mean 'HeteroLR'"

    def dangling_input(c, d):
        d["components"]["hetero_lr_0"]["input"]["data"]["train_data"] = ["feature_scale_9.data"]
        return "components.hetero_lr_0.input.data.train_data", "feature_scale_9"

    def cycle(c, d):
        d["components"]["reader_0"]["input"] = {"data": {"data": ["evaluation_0.data"]}}
        return "cycle", "->"

    def bad_param_type(c, d):
        c["component_parameters"]["common"]["hetero_lr_0"]["max_iter"] = "many"
        return "conf.json: component_parameters.common.hetero_lr_0.max_iter", "integer"

    def unknown_param(c, d):
        c["component_parameters"]["common"]["hetero_lr_0"]["learnin_rate"] = 0.1
        return "learnin_rate", "did you mean 'learning_rate'"

    def party_out_of_range(c, d):
        c["component_parameters"]["role"]["host"]["1"] = {"reader_0": {"table": {"name": "x", "namespace": "y"}}}
        return "component_parameters.role.host.1", "out of range"

    def role_not_in_job(c, d):
        c["component_parameters"]["role"]["arbiter"] = {"0": {"hetero_lr_0": {"max_iter": 3}}}
        del c["role"]["arbiter"]
        return "conf.json", "arbiter"

    def reader_without_table(c, d):
        del c["component_parameters"]["role"]["host"]["0"]["reader_0"]
        return "reader_0", "table"

    def key_below_the_floor(c, d):
        c["component_parameters"]["common"]["hetero_lr_0"]["encrypt_param"] = {"key_length": 100}
        return ("conf.json: component_parameters.common.hetero_lr_0.encrypt_param.key_length",
                "at least 1024 bits, got 100 (256 even with allow_short_key)")

    def odd_key_length(c, d):
        c["component_parameters"]["common"]["hetero_lr_0"]["encrypt_param"] = {"key_length": 1025}
        return "hetero_lr_0.encrypt_param.key_length", "must be even"

    def short_key_not_allowed(c, d):
        c["component_parameters"]["common"]["hetero_lr_0"]["encrypt_param"] = {"key_length": 512}
        return "hetero_lr_0.encrypt_param.key_length", "set encrypt_param.allow_short_key: true"

    for fn in (unknown_module, dangling_input, cycle, bad_param_type, unknown_param, party_out_of_range,
               role_not_in_job, reader_without_table, key_below_the_floor, odd_key_length, short_key_not_allowed):
        yield pytest.param(fn, copy.deepcopy(conf), copy.deepcopy(dsl), id=fn.__name__)


@pytest.mark.parametrize("mutate,conf,dsl", list(_mutations()))
def test_bad_pipeline_refused(flow, tmp_path: Path, mutate, conf, dsl):
    where, what = mutate(conf, dsl)
    c, d = write_job(tmp_path, conf, dsl, tag="bad")
    c2, d2 = c.with_name("conf.json"), d.with_name("dsl.json")
    c.rename(c2)
    d.rename(d2)
    for args in (("job", "submit", "-c", c2, "-d", d2), ("job", "validate", "-c", c2, "-d", d2)):
        res = flow(*args)
        assert res.code == 2, res
        lines = [ln for ln in res.err.splitlines() if ln.strip()]
        assert lines and any(where in ln and what in ln for ln in lines), lines
        assert res.out["retcode"] == 2
    _nothing_created(flow)


def test_invalid_json_names_line_and_column(flow, tmp_path: Path):
    conf, dsl = load_example("hetero_lr")
    c, d = write_job(tmp_path, conf, dsl)
    c.write_text(json.dumps(conf, indent=2).replace('"dsl_version": 2,', '"dsl_version": 2', 1))
    res = flow("job", "submit", "-c", c, "-d", d)
    assert res.code == 2
    assert str(c) in res.err and "line" in res.err and "column" in res.err
    _nothing_created(flow)


def test_validate_prints_dag_and_party_components(breast):
    flow = breast  # validate checks this home's tables: they are uploaded
    root = Path(__file__).resolve().parents[2] / "examples" / "hetero_lr"
    summary = flow.ok("job", "validate", "-c", root / "conf.json", "-d", root / "dsl.json")
    assert summary["party_components"]["arbiter:10000"] == ["hetero_lr_0"]
    assert summary["party_components"]["guest:9999"][-1] == "evaluation_0"
    assert "evaluation_0" not in summary["party_components"]["host:10000"]
    assert summary["stages"][0] == ["reader_0"]
    assert summary["notices"] == []


def test_fate_switches_that_are_not_acted_on_are_noticed(breast, tmp_path: Path):
    """A FATE conf with validation/early-stopping switches still validates, and says which
    of them fedweave does not act on (explicit defaults are not mentioned)."""
    flow = breast  # validate checks this home's tables: they are uploaded
    conf, dsl = load_example("hetero_lr")
    conf["component_parameters"]["common"]["hetero_lr_0"].update(
        validation_freqs=5, cv_param={"n_splits": 5}, sqn_param=None, floating_point_precision=18)
    c, d = write_job(tmp_path, conf, dsl)
    res = flow("job", "validate", "-c", c, "-d", d)
    assert res.code == 0, res.err
    expected = [f"hetero_lr_0.{name}: accepted for FATE compatibility, not acted on"
                for name in ("floating_point_precision",)]  # validation_freqs and cv_param are acted on
    assert res.data["notices"] == expected
    assert [line for line in res.err.splitlines() if line.startswith("notice:")] == [f"notice: {n}" for n in expected]


@pytest.mark.parametrize("bits", [100, 1025, 512])
def test_a_bad_paillier_key_length_is_one_line(flow, tmp_path: Path, bits: int):
    conf, dsl = load_example("hetero_lr")
    conf["component_parameters"]["common"]["hetero_lr_0"]["encrypt_param"] = {"key_length": bits}
    c, d = write_job(tmp_path, conf, dsl)
    res = flow("job", "validate", "-c", c, "-d", d)
    assert res.code == 2, res
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "hetero_lr_0.encrypt_param.key_length" in lines[0], lines


def test_a_short_key_asked_for_explicitly_validates_with_a_notice(breast, tmp_path: Path):
    flow = breast  # validate checks this home's tables: they are uploaded
    conf, dsl = load_example("hetero_lr")
    conf["component_parameters"]["common"]["hetero_lr_0"]["encrypt_param"] = {"key_length": 512,
                                                                              "allow_short_key": True}
    c, d = write_job(tmp_path, conf, dsl)
    res = flow("job", "validate", "-c", c, "-d", d)
    assert res.code == 0, res.err
    [notice] = res.data["notices"]
    assert notice.startswith("hetero_lr_0.encrypt_param.key_length: ") and "shorter than 1024" in notice
    assert "insecure" in notice and f"notice: {notice}" in res.err.splitlines()
