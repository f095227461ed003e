"""FATE DSL v2 jobs: parse and validate a conf.json + dsl.json pair into a JobPlan.

``load_job(conf_path, dsl_path)`` is the entry point; it raises
:class:`flow.core.errors.ValidationError` carrying every problem of both files, one line each.
"""

from flow.dsl.loader import load_job, parse_json, plan_from_dicts, read_json
from flow.dsl.models import (
                             ROLES,
                             ComponentParametersConf,
                             Conf,
                             Dsl,
                             DslComponent,
                             DslInput,
                             DslOutput,
                             Initiator,
                             JobParametersConf,
                             JobParams,
                             ResolvedJobParameters,
)
from flow.dsl.plan import JobPlan

__all__ = [
    "ROLES", "ComponentParametersConf", "Conf", "Dsl", "DslComponent", "DslInput", "DslOutput",
    "Initiator", "JobParametersConf", "JobParams", "JobPlan", "ResolvedJobParameters",
    "load_job", "parse_json", "plan_from_dicts", "read_json",
]
