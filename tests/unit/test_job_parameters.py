"""Typed job parameters: one resolved object per party, read by every runtime layer.

The engines a party runs on are decided in one place (``ResolvedJobParameters.engines``);
the dict view stays for the callers that read keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from federation.api import Party
from flow.core.errors import ValidationError
from flow.core.settings import EnginesConf, ServiceConf
from flow.dsl import JobPlan, ResolvedJobParameters, plan_from_dicts
from flow.dsl.models import DEFAULT_JOB_TIMEOUT
from flow.runtime import transport

FIXTURES = Path(__file__).parent / "fixtures" / "hetero_lr"
GUEST, HOST, ARBITER = Party("guest", "9999"), Party("host", "10000"), Party("arbiter", "10000")
DEFAULTS = EnginesConf(computing="local", storage="localfs", federation="standalone")


def plan_with(common: dict[str, Any] | None = None, role: dict[str, Any] | None = None) -> JobPlan:
    conf = json.loads((FIXTURES / "conf.json").read_text())
    dsl = json.loads((FIXTURES / "dsl.json").read_text())
    if common is not None:
        conf["job_parameters"]["common"] = common
    if role is not None:
        conf["job_parameters"]["role"] = role
    return plan_from_dicts(conf, dsl)


def test_resolved_is_typed_shared_and_frozen() -> None:
    plan = plan_with()
    params = plan.resolved_job_parameters(GUEST)
    assert isinstance(params, ResolvedJobParameters)
    assert plan.resolved_job_parameters(GUEST) is params  # built once, when the plan was made
    assert (params.task_parallelism, params.timeout, params.computing_partitions) == (2, 600, 4)
    with pytest.raises(pydantic.ValidationError):
        params.timeout = 5  # type: ignore[misc]


def test_dict_view_is_a_fresh_copy_of_the_same_values() -> None:
    plan = plan_with()
    view = plan.job_parameters(HOST)
    assert view == plan.resolved_job_parameters(HOST).model_dump()
    view["timeout"] = 1
    view["spark_run"]["x"] = 1
    assert plan.job_parameters(HOST)["timeout"] == 600 and plan.job_parameters(HOST)["spark_run"] == {}


def test_engines_fall_back_to_the_service_defaults() -> None:
    plan = plan_with()
    for party in (GUEST, HOST, ARBITER):
        assert plan.resolved_job_parameters(party).engines(DEFAULTS) == DEFAULTS


def test_engines_per_party_overrides_in_lowercase() -> None:
    plan = plan_with(common={"federation_engine": "Standalone"},
                     role={"guest": {"0": {"computing_engine": "Spark", "storage_engine": "HIVE"}}})
    assert plan.resolved_job_parameters(GUEST).engines(DEFAULTS) == EnginesConf(
        computing="spark", storage="hive", federation="standalone")
    assert plan.resolved_job_parameters(HOST).engines(DEFAULTS) == DEFAULTS
    assert plan.resolved_job_parameters(GUEST).computing_engine == "Spark"  # as written, for display


def test_computing_run_is_the_engines_own_block() -> None:
    params = ResolvedJobParameters(spark_run={"num-executors": 2}, eggroll_run={"cores": 1})
    assert params.computing_run("spark") == {"num-executors": 2}
    assert params.computing_run("Eggroll") == {"cores": 1}
    assert params.computing_run("local") == {}


def test_job_timeout_is_the_common_one() -> None:
    assert plan_with().timeout == 600
    assert plan_with(common={}).timeout == DEFAULT_JOB_TIMEOUT
    overridden = plan_with(role={"guest": {"0": {"timeout": 30}}})
    assert overridden.timeout == 600 and overridden.resolved_job_parameters(GUEST).timeout == 30


def test_accepts_what_it_accepted_before() -> None:
    plan = plan_with(common={"model_version": 202401011200, "task_cores": 4, "rabbitmq_run": {"a": 1},
                             "federated_mode": "MULTIPLE", "adaptation_parameters": {"b": 2}})
    params = plan.resolved_job_parameters(ARBITER)
    assert params.model_version == "202401011200" and params.task_cores == 4
    with pytest.raises(ValidationError) as info:
        plan_with(common={"timout": 5})
    assert any("job_parameters.common.timout" in p for p in info.value.problems)


def test_release_share_uses_the_partys_own_federation_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_with(role={"host": {"0": {"federation_engine": "RabbitMQ"}}})
    opened: list[str] = []

    class _Fed:
        def release(self, parties: list[Party]) -> None:
            pass

        def close(self) -> None:
            pass

    def fake_make(engine: str, *_args: Any, **_kw: Any) -> _Fed:
        opened.append(engine)
        return _Fed()

    monkeypatch.setattr(transport, "make_federation", fake_make)
    conf = ServiceConf(default_engines=DEFAULTS)
    for party in (GUEST, HOST):
        transport.release_share(conf, plan, "job", party)
    assert opened == ["standalone", "rabbitmq"]
