"""Pydantic models of FATE DSL v2 files: the pipeline (dsl.json) and the runtime conf (conf.json).

They describe shapes only. Cross-checks (modules, references, parties, per-party
parameters) live in :mod:`flow.dsl.validate` and :mod:`flow.dsl.params`, so that every
problem of both files can be reported in one go.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, NonNegativeInt, PositiveInt
from pydantic_core import PydanticCustomError

from flow.core.settings import EnginesConf

#: the roles a FATE job knows, in the order parties are listed and started
ROLES = ("guest", "host", "arbiter")
#: seconds a job may run when its conf sets no ``timeout``
DEFAULT_JOB_TIMEOUT = 3600

_PARTY_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def _party_id(value: Any) -> str:
    """Party ids are ints in most FATE files and strings in some: keep them as strings."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _PARTY_ID.match(value):
        return value
    raise PydanticCustomError(
        "party_id",
        "a party id must be a non-negative integer or a string of letters, digits, '_', '-' or '.'",
    )


def _number_to_str(value: Any) -> Any:
    """FATE writes model versions as numbers or strings; we keep strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


PartyId = Annotated[str, BeforeValidator(_party_id)]


class _Model(BaseModel):
    """Unknown keys are mistakes (typos), never silently dropped."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    #: how an unknown key of this model is called in a problem line
    problem_label: ClassVar[str] = "key"


# ---------------------------------------------------------------- dsl.json


class DslInput(_Model):
    #: port (data|train_data|validate_data|test_data) -> ["component.output", ...]
    data: dict[str, list[str]] = Field(default_factory=dict)
    #: FATE 1.x's intersection cache input (``intersect_0.cache``): an upstream Intersection's
    #: cache (run_cache), kept in each party's own store, so this Intersection reuses its keys
    cache: list[str] = Field(default_factory=list)
    #: ["component.model"]: a model of the same kind (warm start, predict)
    model: list[str] = Field(default_factory=list)
    #: ["component.model"]: a model of another kind (e.g. binning -> selection)
    isometric_model: list[str] = Field(default_factory=list)


class DslOutput(_Model):
    data: list[str] = Field(default_factory=list)
    model: list[str] = Field(default_factory=list)
    #: FATE 1.x's intersection cache output: made by an Intersection with ``run_cache`` (else
    #: accepted with a notice that no cache is made, as FATE makes none)
    cache: list[str] = Field(default_factory=list)


class DslComponent(_Model):
    module: str = Field(min_length=1)
    input: DslInput = Field(default_factory=DslInput)
    output: DslOutput = Field(default_factory=DslOutput)
    # accepted so FATE files load unchanged; fedweave does not use them
    provider: str | None = None
    CodePath: str | None = None
    need_deploy: bool | None = None


class Dsl(_Model):
    components: dict[str, DslComponent]


# ---------------------------------------------------------------- conf.json


class Initiator(_Model):
    role: str
    party_id: PartyId


class JobParams(_Model):
    """One block of job parameters (common, or one role/party override): all optional."""

    problem_label: ClassVar[str] = "job parameter"

    job_type: Literal["train", "predict"] | None = None
    task_parallelism: PositiveInt | None = None
    computing_partitions: PositiveInt | None = None
    timeout: PositiveInt | None = None
    computing_engine: str | None = None
    storage_engine: str | None = None
    federation_engine: str | None = None
    auto_retries: NonNegativeInt | None = None
    eggroll_run: dict[str, Any] | None = None
    spark_run: dict[str, Any] | None = None
    model_id: str | None = None
    model_version: Annotated[str, BeforeValidator(_number_to_str)] | None = None
    # written by FATE's own examples; accepted and ignored so those files run unchanged
    task_cores: PositiveInt | None = None
    rabbitmq_run: dict[str, Any] | None = None
    pulsar_run: dict[str, Any] | None = None
    federated_mode: str | None = None
    adaptation_parameters: dict[str, Any] | None = None


class ResolvedJobParameters(BaseModel):
    """Job parameters of one party after merging, with fedweave's defaults filled in.

    Built once per party when a plan is made and handed to every layer as is (frozen, so
    one layer cannot change what another reads); :meth:`engines` is the one place where
    the job's engine choices meet the service's defaults.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)

    job_type: Literal["train", "predict"] = "train"
    task_parallelism: PositiveInt = 1
    computing_partitions: PositiveInt = 4
    timeout: PositiveInt = DEFAULT_JOB_TIMEOUT
    computing_engine: str | None = None
    storage_engine: str | None = None
    federation_engine: str | None = None
    auto_retries: NonNegativeInt = 0
    eggroll_run: dict[str, Any] = Field(default_factory=dict)
    spark_run: dict[str, Any] = Field(default_factory=dict)
    model_id: str | None = None
    model_version: str | None = None
    task_cores: PositiveInt | None = None
    rabbitmq_run: dict[str, Any] = Field(default_factory=dict)
    pulsar_run: dict[str, Any] = Field(default_factory=dict)
    federated_mode: str | None = None
    adaptation_parameters: dict[str, Any] = Field(default_factory=dict)

    def engines(self, defaults: EnginesConf) -> EnginesConf:
        """This party's engines: the job's choices over the service's ``defaults``, in
        lowercase (as the engine registries and ``computing.engines`` are keyed)."""
        return EnginesConf(
            computing=(self.computing_engine or defaults.computing).lower(),
            storage=(self.storage_engine or defaults.storage).lower(),
            federation=(self.federation_engine or defaults.federation).lower(),
        )

    def computing_run(self, computing: str) -> dict[str, Any]:
        """FATE's per-engine session settings (``spark_run``, ``eggroll_run``) for the
        ``computing`` engine; empty for an engine FATE has none for."""
        return {"spark": self.spark_run, "eggroll": self.eggroll_run}.get(computing.lower(), {})


class JobParametersConf(_Model):
    common: JobParams = Field(default_factory=JobParams)
    #: role -> party key ("0", "0|1", "all") -> overrides
    role: dict[str, dict[str, JobParams]] = Field(default_factory=dict)


class ComponentParametersConf(_Model):
    #: component -> params shared by every party
    common: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: role -> party key ("0", "0|1", "all") -> component -> params
    role: dict[str, dict[str, dict[str, dict[str, Any]]]] = Field(default_factory=dict)


class Conf(_Model):
    dsl_version: Literal[2] = 2
    initiator: Initiator
    #: role -> party ids (as strings)
    role: dict[str, list[PartyId]]
    job_parameters: JobParametersConf = Field(default_factory=JobParametersConf)
    component_parameters: ComponentParametersConf = Field(default_factory=ComponentParametersConf)
