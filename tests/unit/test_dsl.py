"""flow.dsl: loading FATE DSL v2 jobs, merging per-party parameters, reporting every problem.

Small fake components are registered for these tests (and removed afterwards), so the
tests do not depend on the real algorithm modules.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from components import base as cbase
from federation.api import Party
from flow.core.errors import FedweaveError, ValidationError
from flow.dsl import JobPlan, load_job, plan_from_dicts

FIXTURES = Path(__file__).parent / "fixtures" / "hetero_lr"
GUEST, HOST, ARBITER = Party("guest", "9999"), Party("host", "10000"), Party("arbiter", "10000")


# ---------------------------------------------------------------- fake components


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableRef(_Strict):
    name: str
    namespace: str


class ReaderParams(cbase.Params):
    table: TableRef


class DataTransformParams(cbase.Params):
    with_label: bool = False
    label_name: str = "y"
    output_format: Literal["dense", "sparse"] = "dense"


class IntersectionParams(cbase.Params):
    intersect_method: Literal["ecdh", "rsa"] = "ecdh"


class InitParam(_Strict):
    init_method: Literal["zeros", "random_uniform"] = "zeros"
    fit_intercept: bool = True


class EncryptParam(_Strict):
    method: str = "Paillier"
    key_length: int = 1024


class HeteroLRParams(cbase.Params):
    penalty: str = "L2"
    alpha: float = 0.01
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    batch_size: int = -1
    max_iter: int = 10
    tol: float = 1e-4
    early_stop: str = "diff"
    init_param: InitParam = InitParam()
    encrypt_param: EncryptParam = EncryptParam()


class EvaluationParams(cbase.Params):
    eval_type: Literal["binary", "regression"] = "binary"


def _fake(module: str, params: type[cbase.Params], roles: tuple[str, ...], **ports: Any) -> type:
    attrs: dict[str, Any] = {"module": module, "params_model": params, "roles": roles, **ports}
    return type(module, (cbase.Component,), attrs)


FAKES = {
    "Reader": _fake("Reader", ReaderParams, ("guest", "host"), input_data=()),
    "DataTransform": _fake("DataTransform", DataTransformParams, ("guest", "host"), output_model=True),
    "Intersection": _fake("Intersection", IntersectionParams, ("guest", "host")),
    "HeteroLR": _fake("HeteroLR", HeteroLRParams, ("guest", "host", "arbiter"),
                      input_data=("train_data", "validate_data", "test_data"), accepts_model=True,
                      output_model=True),
    "Evaluation": _fake("Evaluation", EvaluationParams, ("guest", "host", "arbiter")),
}


@pytest.fixture(autouse=True)
def fake_components(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fakes on a copy of the registry's cache; monkeypatch restores it."""
    monkeypatch.setattr(cbase.COMPONENTS, "_loaded", dict(cbase.COMPONENTS._loaded))
    for name, cls in FAKES.items():
        cbase.COMPONENTS.register(name, cls)


# ---------------------------------------------------------------- helpers


def example() -> tuple[dict, dict]:
    conf = json.loads((FIXTURES / "conf.json").read_text())
    dsl = json.loads((FIXTURES / "dsl.json").read_text())
    return conf, dsl


def write(tmp_path: Path, conf: Any, dsl: Any) -> tuple[Path, Path]:
    conf_path, dsl_path = tmp_path / "conf.json", tmp_path / "dsl.json"
    for path, data in ((conf_path, conf), (dsl_path, dsl)):
        path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return conf_path, dsl_path


def problems_of(conf: Any, dsl: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        plan_from_dicts(conf, dsl)
    return info.value.problems


def has(problems: list[str], *parts: str) -> bool:
    """Some problem line starts with parts[0] and contains every other part."""
    return any(p.startswith(parts[0]) and all(x in p for x in parts[1:]) for p in problems)


# ---------------------------------------------------------------- the valid example


def test_example_loads_from_files() -> None:
    plan = load_job(FIXTURES / "conf.json", FIXTURES / "dsl.json")
    assert isinstance(plan, JobPlan)
    assert plan.parties == {"guest": [GUEST], "host": [HOST], "arbiter": [ARBITER]}
    assert plan.initiator == GUEST
    assert plan.dag.order() == ["reader_0", "data_transform_0", "intersection_0", "hetero_lr_0", "evaluation_0"]
    assert plan.raw_conf["initiator"]["party_id"] == 9999
    assert plan.conf.role["host"] == ["10000"]
    assert plan.dsl.components["hetero_lr_0"].input.data == {"train_data": ["intersection_0.data"]}


def test_example_params_per_party() -> None:
    plan = plan_from_dicts(*example())
    guest_reader = plan.component_params("reader_0", GUEST)
    host_reader = plan.component_params("reader_0", HOST)
    assert isinstance(guest_reader, ReaderParams) and guest_reader.table.name == "breast_hetero_guest"
    assert host_reader.table.name == "breast_hetero_host"
    assert plan.component_params("data_transform_0", GUEST).with_label is True
    assert plan.component_params("data_transform_0", HOST).with_label is False
    lr = plan.component_params("hetero_lr_0", ARBITER)
    assert lr.max_iter == 20 and lr.encrypt_param.key_length == 1024 and lr.learning_rate == 0.15


def test_runs_on_roles_and_need_run() -> None:
    plan = plan_from_dicts(*example())
    assert plan.runs_on("reader_0", HOST) and not plan.runs_on("reader_0", ARBITER)
    assert plan.component_params("reader_0", ARBITER) is None
    assert plan.runs_on("evaluation_0", GUEST) and plan.runs_on("evaluation_0", ARBITER)
    assert not plan.runs_on("evaluation_0", HOST)  # need_run false on the host
    assert plan.component_params("evaluation_0", HOST) is None
    assert plan.party_components(ARBITER) == ["hetero_lr_0", "evaluation_0"]
    assert plan.party_components(HOST) == ["reader_0", "data_transform_0", "intersection_0", "hetero_lr_0"]


def test_same_party_id_in_two_roles_is_two_parties() -> None:
    plan = plan_from_dicts(*example())
    assert plan.all_parties() == [GUEST, HOST, ARBITER]
    assert plan.party_components(HOST) != plan.party_components(ARBITER)


def test_job_parameters_defaults_and_common() -> None:
    plan = plan_from_dicts(*example())
    params = plan.job_parameters(GUEST)
    assert params["task_parallelism"] == 2 and params["timeout"] == 600
    assert params["job_type"] == "train" and params["auto_retries"] == 0
    assert params["computing_partitions"] == 4 and params["computing_engine"] is None


def test_job_parameters_role_overrides() -> None:
    conf, dsl = example()
    conf["role"]["host"] = [10000, 10001, 10002]
    for i in (1, 2):
        hosts = conf["component_parameters"]["role"]["host"]
        hosts[str(i)] = copy.deepcopy(hosts["0"])
    conf["job_parameters"]["common"]["spark_run"] = {"num-executors": 2, "conf": {"a": 1}}
    conf["job_parameters"]["role"] = {
        "host": {"all": {"timeout": 900, "spark_run": {"conf": {"b": 2}}},
                 "0|1": {"computing_partitions": 8},
                 "1": {"computing_partitions": 16}},
        "guest": {"0": {"task_parallelism": 3}},
    }
    plan = plan_from_dicts(conf, dsl)
    hosts = plan.parties["host"]
    assert [p.party_id for p in hosts] == ["10000", "10001", "10002"]
    got = [plan.job_parameters(h) for h in hosts]
    assert [g["timeout"] for g in got] == [900, 900, 900]
    assert [g["computing_partitions"] for g in got] == [8, 16, 4]
    assert got[0]["spark_run"] == {"num-executors": 2, "conf": {"a": 1, "b": 2}}
    assert plan.job_parameters(GUEST)["task_parallelism"] == 3
    assert plan.job_parameters(GUEST)["timeout"] == 600
    assert plan.job_parameters(ARBITER)["computing_partitions"] == 4


def test_component_params_precedence_common_all_multi_single() -> None:
    conf, dsl = example()
    conf["role"]["host"] = [10000, 10001, 10002]
    conf["component_parameters"]["role"]["host"] = {
        "all": {"reader_0": {"table": {"name": "shared", "namespace": "ns"}},
                "hetero_lr_0": {"max_iter": 30, "encrypt_param": {"method": "IterativeAffine"}}},
        "0|2": {"hetero_lr_0": {"max_iter": 40}, "reader_0": {"table": {"name": "zero_two", "namespace": "ns"}}},
        "2": {"hetero_lr_0": {"max_iter": 50, "encrypt_param": {"key_length": 2048}}},
    }
    plan = plan_from_dicts(conf, dsl)
    h0, h1, h2 = plan.parties["host"]
    assert [plan.component_params("hetero_lr_0", h).max_iter for h in (h0, h1, h2)] == [40, 30, 50]
    assert [plan.component_params("reader_0", h).table.name for h in (h0, h1, h2)] == ["zero_two", "shared", "zero_two"]
    # nested dicts merge key by key: method from "all", key_length from "2"
    enc = plan.component_params("hetero_lr_0", h2).encrypt_param
    assert (enc.method, enc.key_length) == ("IterativeAffine", 2048)
    # common values not overridden stay
    assert plan.component_params("hetero_lr_0", h1).learning_rate == 0.15
    assert plan.component_params("hetero_lr_0", GUEST).max_iter == 20


def test_string_party_ids_and_string_keys() -> None:
    conf, dsl = example()
    conf["role"] = {"guest": ["9999"], "host": ["10000"], "arbiter": [10000]}
    conf["initiator"]["party_id"] = "9999"
    plan = plan_from_dicts(conf, dsl)
    assert plan.initiator == GUEST and plan.parties["arbiter"] == [ARBITER]


def test_fate_optional_keys_are_accepted() -> None:
    conf, dsl = example()
    dsl["components"]["reader_0"]["provider"] = "fate@1.11.0"
    dsl["components"]["hetero_lr_0"]["CodePath"] = "federatedml/linear_model/hetero_lr.py"
    conf["job_parameters"]["common"]["eggroll_run"] = {"eggroll.session.processors.per.node": 2}
    conf["job_parameters"]["common"]["job_type"] = "train"
    conf["job_parameters"]["common"]["model_version"] = 202401011200
    plan = plan_from_dicts(conf, dsl)
    assert plan.job_parameters(HOST)["model_version"] == "202401011200"


def test_summary_is_json_and_complete() -> None:
    plan = plan_from_dicts(*example())
    summary = json.loads(json.dumps(plan.to_summary()))
    assert summary["initiator"] == "guest:9999"
    assert summary["components"]["hetero_lr_0"] == {
        "module": "HeteroLR", "upstreams": ["intersection_0"],
        "inputs": {"data": {"train_data": ["intersection_0.data"]}, "model": [], "isometric_model": []}}
    assert summary["stages"] == [["reader_0"], ["data_transform_0"], ["intersection_0"], ["hetero_lr_0"],
                                 ["evaluation_0"]]
    assert summary["party_components"]["arbiter:10000"] == ["hetero_lr_0", "evaluation_0"]
    assert summary["roles"] == {"guest": ["9999"], "host": ["10000"], "arbiter": ["10000"]}


def test_plan_lookups_refuse_unknown_party_or_component() -> None:
    plan = plan_from_dicts(*example())
    with pytest.raises(ValidationError, match="host:1 is not in this job"):
        plan.job_parameters(Party("host", "1"))
    with pytest.raises(ValidationError, match="did you mean 'hetero_lr_0'"):
        plan.component_params("hetero_lr0", GUEST)
    assert plan.party_index(ARBITER) == 0


def test_raw_dicts_are_copies() -> None:
    conf, dsl = example()
    plan = plan_from_dicts(conf, dsl)
    conf["role"]["guest"].append(1)
    assert plan.raw_conf["role"]["guest"] == [9999]


# ---------------------------------------------------------------- file-level problems


def test_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    conf, dsl = example()
    text = json.dumps(conf, indent=2).replace('"dsl_version": 2,', '"dsl_version": 2')
    conf_path, dsl_path = write(tmp_path, text, dsl)
    line = next(i for i, line_text in enumerate(text.splitlines(), 1) if '"initiator"' in line_text)
    with pytest.raises(ValidationError) as info:
        load_job(conf_path, dsl_path)
    assert info.value.problems == [f"{conf_path}: line {line} column 3: invalid JSON: Expecting ',' delimiter"]


def test_both_files_are_checked_when_one_is_broken(tmp_path: Path) -> None:
    conf, dsl = example()
    dsl["components"]["reader_0"]["module"] = "Raeder"
    conf_path, dsl_path = write(tmp_path, "{", dsl)
    with pytest.raises(ValidationError) as info:
        load_job(conf_path, dsl_path)
    probs = info.value.problems
    assert has(probs, f"{conf_path}: line 1 column 2: invalid JSON")
    assert has(probs, f"{dsl_path}: components.reader_0.module: unknown module 'Raeder'", "did you mean 'Reader'")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        load_job(tmp_path / "nope.json", FIXTURES / "dsl.json")
    assert info.value.problems == [f"{tmp_path / 'nope.json'}: (file): no such file"]
    assert isinstance(info.value, FedweaveError) and info.value.exit_code == 2


def test_duplicate_keys_reported(tmp_path: Path) -> None:
    conf, dsl = example()
    text = json.dumps(conf).replace('"max_iter": 20', '"max_iter": 20, "max_iter": 30')
    conf_path, dsl_path = write(tmp_path, text, dsl)
    with pytest.raises(ValidationError) as info:
        load_job(conf_path, dsl_path)
    assert info.value.problems == [f"{conf_path}: component_parameters.common.hetero_lr_0.max_iter: "
                                   "key given more than once in the same object"]


def test_top_level_must_be_objects() -> None:
    probs = problems_of([], "x")
    assert probs == ["dsl.json: (root): must be a JSON object, got a string",
                     "conf.json: (root): must be a JSON object, got an array"]


# ---------------------------------------------------------------- one problem each


def _cpn(dsl: dict, name: str) -> dict:
    return dsl["components"][name]


def _cp(conf: dict) -> dict:
    return conf["component_parameters"]


#: one mistake per case: a change to the example ("set" or "delete" at a JSON path) and
#: the exact problem lines it must produce, nothing more
ERROR_CASES = json.loads((FIXTURES.parent / "error_cases.json").read_text())


def apply_change(conf: dict, dsl: dict, change: dict) -> None:
    target = conf if change["file"] == "conf" else dsl
    *parent, last = change["set"] if "set" in change else change["delete"]
    for key in parent:
        target = target[key]
    if "set" in change:
        target[last] = change["value"]
    else:
        del target[last]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["case"] for c in ERROR_CASES])
def test_each_problem_is_reported_alone_with_its_path(case: dict) -> None:
    conf, dsl = example()
    for change in case["change"]:
        apply_change(conf, dsl, change)
    assert problems_of(conf, dsl) == case["problems"]


def test_error_cases_cover_every_required_check() -> None:
    """The brief's list of problems, each with at least one case."""
    text = " ".join(p for c in ERROR_CASES for p in c["problems"])
    for needle in ("required key missing", "Input should be a valid", "only DSL version 2", "unknown module",
                   "does not exist", "has no data output", "does not take input data port", "form a cycle",
                   "is not a role of this job", "out of range", "malformed party key", "unknown parameter",
                   "is not a party of this job", "required parameter not set",
                   "unknown job parameter"):
        assert needle in text, needle


def test_need_run_false_party_needs_no_reader_table_but_unknown_params_still_fail() -> None:
    conf, dsl = example()
    _cp(conf)["role"]["host"]["0"]["reader_0"] = {"need_run": False}
    plan = plan_from_dicts(conf, dsl)
    assert not plan.runs_on("reader_0", HOST)
    _cp(conf)["role"]["host"]["0"]["reader_0"]["tabel"] = {}
    assert problems_of(conf, dsl) == ["conf.json: component_parameters.role.host.0.reader_0.tabel: unknown parameter "
                                      "'tabel' (did you mean 'table'?)"]


def test_reader_table_missing_for_one_of_several_parties() -> None:
    conf, dsl = example()
    conf["role"]["host"] = [10000, 10001]
    assert problems_of(conf, dsl) == ["conf.json: component_parameters.role.host.1.reader_0.table: required "
                                      "parameter not set for host party 1 (party id 10001)"]


class LenientReaderParams(cbase.Params):
    table: TableRef | None = None


@pytest.mark.parametrize("host_reader", [{}, {"table": None}])
def test_reader_needs_a_table_even_when_its_params_model_does_not(host_reader: dict) -> None:
    cbase.COMPONENTS.register("Reader", _fake("Reader", LenientReaderParams, ("guest", "host"), input_data=()))
    conf, dsl = example()
    _cp(conf)["role"]["host"]["0"]["reader_0"] = host_reader
    assert problems_of(conf, dsl) == ["conf.json: component_parameters.role.host.0.reader_0.table: required "
                                      "parameter not set for host party 0 (party id 10000)"]


def test_bad_value_reported_where_it_was_written_not_per_party() -> None:
    conf, dsl = example()
    conf["role"]["host"] = [10000, 10001]
    _cp(conf)["role"]["host"]["all"] = {"reader_0": {"table": {"name": "t", "namespace": "n"}}}
    _cp(conf)["role"]["host"]["0|1"] = {"hetero_lr_0": {"encrypt_param": {"key_length": "long"}}}
    assert problems_of(conf, dsl) == [
        "conf.json: component_parameters.role.host.0|1.hetero_lr_0.encrypt_param.key_length: "
        "Input should be a valid integer, unable to parse string as an integer"]


def test_override_replaces_a_bad_common_value() -> None:
    conf, dsl = example()
    _cp(conf)["common"]["hetero_lr_0"]["max_iter"] = "x"
    for role in ("guest", "host", "arbiter"):
        _cp(conf)["role"].setdefault(role, {}).setdefault("0", {})["hetero_lr_0"] = {"max_iter": 5}
    plan = plan_from_dicts(conf, dsl)
    assert plan.component_params("hetero_lr_0", ARBITER).max_iter == 5


def test_pipeline_model_reference_for_predict_jobs() -> None:
    conf, dsl = example()
    _cpn(dsl, "hetero_lr_0")["input"]["model"] = ["pipeline.hetero_lr_0"]
    conf["job_parameters"]["common"].update(job_type="predict", model_id="m1", model_version="v1")
    plan = plan_from_dicts(conf, dsl)
    assert plan.dag.inputs("hetero_lr_0").external_model == ["hetero_lr_0"]
    assert plan.job_parameters(GUEST)["job_type"] == "predict"


def test_every_problem_of_both_files_is_reported_at_once() -> None:
    conf, dsl = example()
    _cpn(dsl, "hetero_lr_0")["module"] = "HeteroLr"
    _cpn(dsl, "evaluation_0")["input"]["data"]["data"] = ["hetero_lr_1.data"]
    _cpn(dsl, "intersection_0")["input"]["data"]["data"] = ["data_transform_0.data", "evaluation_0.dat"]
    conf["dsl_version"] = "1"
    conf["job_parameters"]["common"]["timeout"] = 0
    _cp(conf)["common"]["evaluation_0"]["eval_typ"] = "binary"
    _cp(conf)["role"]["host"]["0"].pop("reader_0")
    _cp(conf)["role"]["host"]["2"] = {}
    probs = problems_of(conf, dsl)
    expected = [
        "dsl.json: components.hetero_lr_0.module: unknown module",
        "dsl.json: components.evaluation_0.input.data.data[0]: component 'hetero_lr_1' does not exist",
        "dsl.json: components.intersection_0.input.data.data[1]: component 'evaluation_0' has no data output",
        "conf.json: dsl_version: only DSL version 2 is supported (got '1')",
        "conf.json: job_parameters.common.timeout: Input should be greater than 0",
        "conf.json: component_parameters.common.evaluation_0.eval_typ: unknown parameter",
        "conf.json: component_parameters.role.host.0.reader_0.table: required parameter not set",
        "conf.json: component_parameters.role.host.2: party index 2 out of range",
    ]
    for line in expected:
        assert has(probs, line), (line, probs)
    assert len(probs) == len(expected), probs
    # no cycle: evaluation_0's only upstream (hetero_lr_1) does not exist, so it cannot close the loop
    assert not any("cycle" in p for p in probs)
