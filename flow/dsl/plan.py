"""JobPlan: a validated job, as the runtime, the scheduler and the CLI see it.

Everything is resolved when the plan is built (each party's parameters validated), so
holding a JobPlan means both files were correct; the methods only look things up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.base import Component, Params
from federation.api import Party
from flow.core.errors import ValidationError
from flow.core.registry import did_you_mean
from flow.dsl.dag import JobDAG
from flow.dsl.models import DEFAULT_JOB_TIMEOUT, Conf, Dsl, ResolvedJobParameters
from flow.dsl.validate import unused_parameter_notices


@dataclass
class JobPlan:
    dsl: Dsl
    conf: Conf
    #: the files' JSON as read, for the job record
    raw_dsl: dict[str, Any]
    raw_conf: dict[str, Any]
    #: role -> parties in conf order (index = FATE's party index); only roles with parties
    parties: dict[str, list[Party]]
    initiator: Party
    dag: JobDAG
    #: component name -> its Component class
    modules: dict[str, type[Component]]
    _params: dict[tuple[str, Party], Params | None] = field(repr=False, default_factory=dict)
    _job_params: dict[Party, ResolvedJobParameters] = field(repr=False, default_factory=dict)

    # ------------------------------------------------------------ lookups

    def all_parties(self) -> list[Party]:
        """Every (role, party_id) of the job, role by role (guest, host, arbiter)."""
        return [p for plist in self.parties.values() for p in plist]

    def party_index(self, party: Party) -> int:
        """FATE's index of ``party`` within its role (the "0" of ``role.guest.0``)."""
        self._check_party(party)
        return self.parties[party.role].index(party)

    def module(self, component: str) -> type[Component]:
        self._check_component(component)
        return self.modules[component]

    def resolved_job_parameters(self, party: Party) -> ResolvedJobParameters:
        """Common job parameters merged with ``party``'s role/party overrides, defaults filled:
        the typed object the runtime reads (built once, when the plan was made)."""
        self._check_party(party)
        return self._job_params[party]

    def job_parameters(self, party: Party) -> dict[str, Any]:
        """:meth:`resolved_job_parameters` as a fresh plain dict, for JSON output and the
        callers that read keys (``flow.models.store``)."""
        return self.resolved_job_parameters(party).model_dump()

    @property
    def timeout(self) -> int:
        """The job's deadline in seconds: the ``common`` block's timeout, as the job detector
        reads it (a party's own override bounds only that party's waits)."""
        return self.conf.job_parameters.common.timeout or DEFAULT_JOB_TIMEOUT

    def component_params(self, component: str, party: Party) -> Params | None:
        """The validated params of ``component`` for ``party``; None if that party does not run it."""
        self._check_component(component)
        self._check_party(party)
        return self._params.get((component, party))

    def runs_on(self, component: str, party: Party) -> bool:
        """True when ``party``'s role is one of the module's roles and need_run is not false."""
        return self.component_params(component, party) is not None

    def party_components(self, party: Party) -> list[str]:
        """The components ``party`` runs, in topological order."""
        self._check_party(party)
        return [c for c in self.dag.order() if self._params.get((c, party)) is not None]

    def to_summary(self) -> dict[str, Any]:
        """A JSON-able overview for ``flow job validate``."""
        components = {}
        for name in self.dag.order():
            ins = self.dag.inputs(name)
            components[name] = {
                "module": self.dsl.components[name].module,
                "upstreams": self.dag.upstream(name),
                "inputs": {
                    "data": {port: [f"{c}.{o}" for c, o in refs] for port, refs in ins.data.items()},
                    "model": [f"{c}.{o}" for c, o in ins.model]
                    + [f"pipeline.{m}" for m in ins.external_model],
                    "isometric_model": [f"{c}.{o}" for c, o in ins.isometric_model],
                },
            }
        return {
            "initiator": str(self.initiator),
            "roles": {role: [p.party_id for p in plist] for role, plist in self.parties.items()},
            "job_parameters": self.job_parameters(self.initiator),
            "components": components,
            "stages": self.dag.stages(),
            "party_components": {str(p): self.party_components(p) for p in self.all_parties()},
            "notices": self.notices(),
        }

    def notices(self) -> list[str]:
        """What each component's conf should be told (``Params.notices``): FATE settings accepted
        but not acted on, and what nested settings say about themselves (short Paillier keys)."""
        found: dict[str, str] = {}
        for cpn, comp in self.dsl.components.items():
            made = any(getattr(p, "run_cache", False) for (c, _), p in self._params.items() if c == cpn)
            if comp.output.cache and not made:
                found[f"{cpn}.output.cache"] = ("run_cache is not set, so no intersection cache is made "
                                                 "(as in FATE); the intersection is the data output")
        for (cpn, _), params in self._params.items():
            for name, text in (params.notices() if params is not None else {}).items():
                found.setdefault(f"{cpn}.{name}", text)
        leftovers = unused_parameter_notices(self.conf.component_parameters, list(self.dsl.components))
        return [f"{key}: {text}" for key, text in found.items()] + leftovers

    # ------------------------------------------------------------ guards

    def _check_party(self, party: Party) -> None:
        if party not in self.parties.get(party.role, []):
            known = [str(p) for p in self.all_parties()]
            raise ValidationError([f"party {party} is not in this job (parties: {', '.join(known)})"])

    def _check_component(self, component: str) -> None:
        if component not in self.modules:
            raise ValidationError([f"no component '{component}' in this job"
                                   f"{did_you_mean(component, self.modules)}"])
