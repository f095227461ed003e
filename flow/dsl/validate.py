"""Checks of a DSL and a conf, section by section, so that one broken part does not
hide the problems of the others: every finding goes to a shared :class:`Problems`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import pydantic

from components import base as cbase
from federation.api import Party
from flow.core.registry import did_you_mean
from flow.dsl.dag import EXTERNAL_MODEL_SOURCE, JobDAG, iter_refs, parse_ref
from flow.dsl.models import (
    ROLES,
    ComponentParametersConf,
    DslComponent,
    Initiator,
    JobParametersConf,
    PartyId,
    ResolvedJobParameters,
)
from flow.dsl.problems import Path, Problems, add_pydantic, check_keys, fmt_path, json_type

CONF_KEYS = ("dsl_version", "initiator", "role", "job_parameters", "component_parameters")
CONF_REQUIRED = ("dsl_version", "initiator", "role")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_ROLE_LISTS = pydantic.TypeAdapter(dict[str, list[PartyId]])


@dataclass
class DslCheck:
    """What survived checking a DSL: enough to go on checking the conf against it."""

    #: every declared component name, broken or not (references to it are not "missing")
    names: list[str]
    #: the components whose shape is valid
    components: dict[str, DslComponent] = field(default_factory=dict)
    #: component name -> its Component class, for those whose module loaded
    modules: dict[str, type[cbase.Component]] = field(default_factory=dict)
    dag: JobDAG | None = None


@dataclass
class ConfCheck:
    """The conf's sections that are valid on their own (None where one is broken)."""

    dsl_version_ok: bool = False
    roles: dict[str, list[str]] | None = None
    initiator: Initiator | None = None
    job_parameters: JobParametersConf | None = None
    component_parameters: ComponentParametersConf | None = None


# ---------------------------------------------------------------- dsl.json


def check_dsl(raw: Any, file: str, problems: Problems) -> DslCheck | None:
    if not isinstance(raw, dict):
        problems.add(file, (), f"must be a JSON object, got {json_type(raw)}")
        return None
    check_keys(problems, file, (), raw, allowed=("components",), required=("components",))
    comps = raw.get("components")
    if comps is None:
        return None
    if not isinstance(comps, dict):
        problems.add(file, ("components",), f"must be an object of components by name, got {json_type(comps)}")
        return None
    if not comps:
        problems.add(file, ("components",), "must define at least one component")
        return None
    check = DslCheck(names=list(comps))
    for name, body in comps.items():
        if not _NAME.match(name):
            problems.add(file, ("components", name),
                         "invalid component name: use only letters, digits, '_' and '-'")
            continue
        try:
            check.components[name] = DslComponent.model_validate(body)
        except pydantic.ValidationError as exc:
            add_pydantic(problems, file, exc, body, base=("components", name), model=DslComponent)
    check.modules = _load_modules(check.components, file, problems)
    _check_ports(check, file, problems)
    _check_refs(check, file, problems)
    check.dag = JobDAG(check.components)
    for cycle in check.dag.cycles():
        problems.add(file, ("components",), f"the inputs form a cycle: {' -> '.join(cycle)}")
    return check


#: FATE 1.x's module names (DSL v2), so a FATE pipeline with a module fedweave lacks is told
#: "not supported" rather than "unknown" (a typo)
FATE_MODULES = frozenset({
    "Reader", "DataIO", "DataTransform", "Intersection", "FederatedSample", "FeatureScale", "HeteroFeatureBinning",
    "HomoFeatureBinning", "HeteroFeatureSelection", "OneHotEncoder", "HomoOneHotEncoder", "HeteroPearson",
    "HeteroLR", "HomoLR", "HeteroSSHELR", "HeteroLinR", "HeteroSSHELinR", "HeteroPoisson", "HeteroSecureBoost",
    "HeteroFastSecureBoost", "HomoSecureBoost", "HomoNN", "HeteroNN", "HeteroKmeans", "HeteroFTL", "Evaluation",
    "DataSplit", "HeteroDataSplit", "HomoDataSplit", "Union", "FeatureImputation", "ColumnExpand", "LabelTransform",
    "DataStatistics", "PSI", "Scorecard", "SampleWeight", "SecureInformationRetrieval", "SecureAddExample",
    "FeldmanVerifiableSum", "LocalBaseline", "PositiveUnlabeled", "HeteroSVM", "HomoSVM", "CacheLoader",
})


def _load_modules(components: Mapping[str, DslComponent], file: str,
                  problems: Problems) -> dict[str, type[cbase.Component]]:
    modules = {}
    for name, comp in components.items():
        path: Path = ("components", name, "module")
        if comp.module not in cbase.COMPONENTS:
            if comp.module in FATE_MODULES:
                problems.add(file, path, f"not supported: module {comp.module} (a FATE module fedweave does not "
                             f"have; modules here: flow module list)")
            else:
                problems.add(file, path, f"unknown module '{comp.module}'"
                             f"{did_you_mean(comp.module, cbase.COMPONENTS.names())}")
            continue
        try:
            modules[name] = cbase.get_component(comp.module)
        except Exception as exc:  # a plugin's import may raise anything; report it, go on
            problems.add(file, path, f"module '{comp.module}' could not be loaded: {type(exc).__name__}: {exc}")
    return modules


def _check_ports(check: DslCheck, file: str, problems: Problems) -> None:
    for name, comp in check.components.items():
        cls = check.modules.get(name)
        at: Path = ("components", name)
        for port, refs in comp.input.data.items():
            path = at + ("input", "data", port)
            if port not in cbase.DATA_PORTS:
                problems.add(file, path, f"unknown input data port '{port}'{did_you_mean(port, cbase.DATA_PORTS)} "
                             f"(ports: {', '.join(cbase.DATA_PORTS)})")
            elif cls is not None and port not in cls.input_data:
                accepted = ", ".join(cls.input_data) or "none"
                problems.add(file, path, f"module {comp.module} does not take input data port '{port}' "
                             f"(accepted ports: {accepted})")
            if not refs:
                problems.add(file, path, "lists no input")
        if cls is None:
            continue
        declared = {("input", "cache"): (comp.input.cache, cls.accepts_cache),
                    ("input", "model"): (comp.input.model, cls.accepts_model),
                    ("input", "isometric_model"): (comp.input.isometric_model, cls.accepts_isometric_model),
                    ("output", "data"): (comp.output.data, cls.output_data),
                    ("output", "model"): (comp.output.model, cls.output_model),
                    ("output", "cache"): (comp.output.cache, cls.output_cache)}
        for (section, kind), (given, allowed) in declared.items():
            if given and not allowed:
                problems.add(file, at + (section, kind), f"module {comp.module} has no {section}.{kind}")


def _check_refs(check: DslCheck, file: str, problems: Problems) -> None:
    for name, comp in check.components.items():
        for site in iter_refs(name, comp):
            parsed = parse_ref(site.ref)
            if parsed is None:
                problems.add(file, site.path, f"malformed reference '{site.ref}': expected '<component>.<output>'")
                continue
            up, out = parsed
            if up not in check.names:
                if site.kind in ("model", "isometric_model") and up == EXTERNAL_MODEL_SOURCE:
                    continue
                problems.add(file, site.path, f"component '{up}' does not exist{did_you_mean(up, check.names)}")
                continue
            upstream = check.components.get(up)
            if upstream is None:
                continue  # its own problems are reported where it is declared
            kind = site.kind if site.kind in ("data", "cache") else "model"
            outputs = getattr(upstream.output, kind)
            if out not in outputs:
                problems.add(file, site.path, f"component '{up}' has no {kind} output '{out}'"
                             f"{did_you_mean(out, outputs)} (its {kind} outputs: {', '.join(outputs) or 'none'})")


# ---------------------------------------------------------------- conf.json


def check_conf(raw: Any, file: str, problems: Problems, dsl_names: list[str] | None) -> ConfCheck:
    """Check the conf; ``dsl_names`` (None if the DSL is unreadable) enables the checks
    that parameters name existing components."""
    check = ConfCheck()
    if not isinstance(raw, dict):
        problems.add(file, (), f"must be a JSON object, got {json_type(raw)}")
        return check
    check_keys(problems, file, (), raw, allowed=CONF_KEYS, required=CONF_REQUIRED)
    version = raw.get("dsl_version")
    check.dsl_version_ok = version in (2, "2") and not isinstance(version, bool)
    if "dsl_version" in raw and not check.dsl_version_ok:
        problems.add(file, ("dsl_version",), f"only DSL version 2 is supported (got {version!r})")
    check.roles = _check_roles(raw, file, problems)
    check.initiator = _check_initiator(raw, check.roles, file, problems)
    sections = {"job_parameters": JobParametersConf, "component_parameters": ComponentParametersConf}
    for key, model in sections.items():
        data = raw.get(key, {})
        try:
            setattr(check, key, model.model_validate(data))
        except pydantic.ValidationError as exc:
            add_pydantic(problems, file, exc, data, base=(key,), model=model)
    # parameters for components the DSL lacks are not a problem: see unused_parameter_notices
    return check


def _check_roles(raw: Mapping[str, Any], file: str, problems: Problems) -> dict[str, list[str]] | None:
    if "role" not in raw:
        return None
    data = raw["role"]
    try:
        roles = _ROLE_LISTS.validate_python(data)
    except pydantic.ValidationError as exc:
        add_pydantic(problems, file, exc, data, base=("role",))
        return None
    ok = True
    for role, ids in roles.items():
        if role not in ROLES:
            problems.add(file, ("role", role), f"unknown role '{role}'{did_you_mean(role, ROLES)} "
                         f"(roles: {', '.join(ROLES)})")
            ok = False
        for i, pid in enumerate(ids):
            if pid in ids[:i]:
                problems.add(file, ("role", role, i), f"party id '{pid}' is listed twice for role '{role}'")
                ok = False
    if not any(roles.values()):
        problems.add(file, ("role",), "must list at least one party")
        ok = False
    return roles if ok else None


def _check_initiator(raw: Mapping[str, Any], roles: dict[str, list[str]] | None,
                     file: str, problems: Problems) -> Initiator | None:
    if "initiator" not in raw:
        return None
    data = raw["initiator"]
    try:
        initiator = Initiator.model_validate(data)
    except pydantic.ValidationError as exc:
        add_pydantic(problems, file, exc, data, base=("initiator",), model=Initiator)
        return None
    if roles is None:
        return initiator
    if not roles.get(initiator.role):
        problems.add(file, ("initiator", "role"), f"initiator role '{initiator.role}' has no parties in this job "
                     f"(roles: {', '.join(r for r in roles if roles[r])}){did_you_mean(initiator.role, roles)}")
        return None
    if initiator.party_id not in roles[initiator.role]:
        problems.add(file, ("initiator", "party_id"),
                     f"initiator {initiator.role}:{initiator.party_id} is not a party of this job "
                     f"({initiator.role} parties: {', '.join(roles[initiator.role])})")
        return None
    return initiator


def unused_parameter_notices(cp: ComponentParametersConf, names: list[str]) -> list[str]:
    """One notice per conf block that sets parameters for a component the DSL does not
    contain (FATE 1.x ignores them, and so does the plan: only DSL components are resolved)."""
    out: list[str] = []

    def check(component: str, path: Path) -> None:
        if component not in names:
            out.append(f"{fmt_path(path)}: parameters for component '{component}', which is not in the DSL, "
                       f"are ignored (as FATE does){did_you_mean(component, names)}")

    for component in cp.common:
        check(component, ("component_parameters", "common", component))
    for role, by_key in cp.role.items():
        for key, block in by_key.items():
            for component in block:
                check(component, ("component_parameters", "role", role, key, component))
    return out


def parties_of(roles: Mapping[str, list[str]]) -> dict[str, list[Party]]:
    """Role -> Party list in FATE's role order; roles without parties are left out."""
    return {r: [Party(r, pid) for pid in roles[r]] for r in ROLES if roles.get(r)}


def check_predict(dag: JobDAG, job_params: Mapping[Party, ResolvedJobParameters], file: str,
                  problems: Problems) -> None:
    """A predict job names its model (model_id, model_version) and takes deployed models
    (``pipeline.<component>.model``); a training DSL with ``job_type`` predict is a mistake."""
    external = [f"pipeline.{m}" for c in dag.components for m in dag.inputs(c).external_model]
    for params in job_params.values():
        missing = [k for k, v in (("model_id", params.model_id), ("model_version", params.model_version)) if not v]
        if external and missing:
            problems.add(file, ("job_parameters", "common", missing[0]),
                         f"the DSL takes deployed models ({', '.join(external)}): set model_id and model_version "
                         "('flow model deploy' prints them)")
        if params.job_type == "predict" and not external:
            problems.add(file, ("job_parameters", "common", "job_type"),
                         "job_type 'predict' needs a predict DSL, whose components take deployed models "
                         "(input.model \"pipeline.<component>.model\"); 'flow model deploy' makes one")

