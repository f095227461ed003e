"""The job's component graph, built with networkx from a DSL's input references.

Only references to components that exist become edges; the others are kept in
``dangling`` so a validator can name them. Every ordering is deterministic: ties are
broken by the order in which the DSL declares its components, so all parties of a job
compute the same order and the same stages.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import networkx as nx

from flow.core.errors import ValidationError
from flow.core.registry import did_you_mean

#: the reference kinds of a component's ``input`` section (``cache``: FATE 1.x's intersection cache)
INPUT_KINDS = ("data", "model", "isometric_model", "cache")
#: ``pipeline.<component>`` model references name a deployed model (FATE predict jobs)
EXTERNAL_MODEL_SOURCE = "pipeline"


def parse_ref(ref: Any) -> tuple[str, str] | None:
    """``"cpn.output"`` -> ``("cpn", "output")``; None when it is not of that form."""
    if not isinstance(ref, str):
        return None
    cpn, sep, out = ref.partition(".")
    if not sep or not cpn or not out or any(ch.isspace() for ch in ref):
        return None
    return cpn, out


@dataclass(frozen=True)
class RefSite:
    """Where one input reference is written: ``components.<component>.input.<kind>[.<port>][index]``."""

    component: str
    kind: str  # data | model | isometric_model | cache
    port: str | None  # the data port; None for model kinds
    index: int
    ref: str

    @property
    def path(self) -> tuple[str | int, ...]:
        mid = (self.kind, self.port) if self.port is not None else (self.kind,)
        return ("components", self.component, "input", *mid, self.index)


@dataclass
class ComponentInputs:
    """A component's input references, resolved to (component, output name) pairs."""

    data: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    model: list[tuple[str, str]] = field(default_factory=list)
    isometric_model: list[tuple[str, str]] = field(default_factory=list)
    #: ``input.cache``: an upstream Intersection's cache (FATE 1.x's intersect cache flow)
    cache: list[tuple[str, str]] = field(default_factory=list)
    #: ``pipeline.<component>`` references: models of an earlier (deployed) training job
    external_model: list[str] = field(default_factory=list)

    def upstream_names(self) -> list[str]:
        refs = [r for port in self.data.values() for r in port] + self.model + self.isometric_model + self.cache
        return list(dict.fromkeys(c for c, _ in refs))


def _input_lists(body: Any) -> tuple[dict[str, list[str]], list[str], list[str], list[str]]:
    """(data ports, model, isometric_model, cache) of a DSL component, pydantic model or raw dict."""
    if isinstance(body, Mapping):
        inp = body.get("input")
        inp = inp if isinstance(inp, Mapping) else {}
        data = inp.get("data") if isinstance(inp.get("data"), Mapping) else {}
        return ({p: list(v) for p, v in data.items() if isinstance(v, list)},
                _as_list(inp.get("model")), _as_list(inp.get("isometric_model")), _as_list(inp.get("cache")))
    inp = body.input
    return ({p: list(v) for p, v in inp.data.items()}, list(inp.model), list(inp.isometric_model), list(inp.cache))


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else []


def iter_refs(name: str, body: Any) -> Iterator[RefSite]:
    """Every input reference of one component, with where it is written."""
    data, model, iso, cache = _input_lists(body)
    for port, refs in data.items():
        for i, ref in enumerate(refs):
            yield RefSite(name, "data", port, i, ref)
    for kind, refs in (("model", model), ("isometric_model", iso), ("cache", cache)):
        for i, ref in enumerate(refs):
            yield RefSite(name, kind, None, i, ref)


class JobDAG:
    """Components as nodes, an edge ``a -> b`` when ``b`` takes an input from ``a``."""

    def __init__(self, components: Mapping[str, Any]):
        self.graph: nx.DiGraph = nx.DiGraph()
        self._rank = {name: i for i, name in enumerate(components)}
        self._inputs: dict[str, ComponentInputs] = {}
        #: references that are malformed or name no component of this DSL
        self.dangling: list[RefSite] = []
        self.graph.add_nodes_from(components)
        for name, body in components.items():
            self._inputs[name] = self._resolve(name, body)

    @classmethod
    def from_dsl(cls, dsl: Any) -> JobDAG:
        """From a :class:`flow.dsl.models.Dsl` or a raw ``{"components": {...}}`` dict."""
        comps = dsl.get("components") if isinstance(dsl, Mapping) else dsl.components
        return cls(comps if isinstance(comps, Mapping) else {})

    def _resolve(self, name: str, body: Any) -> ComponentInputs:
        ins = ComponentInputs()
        for site in iter_refs(name, body):
            parsed = parse_ref(site.ref)
            if site.port is not None:
                ins.data.setdefault(site.port, [])
            if parsed is None:
                self.dangling.append(site)
                continue
            up, out = parsed
            if up not in self._rank:
                if site.kind in ("model", "isometric_model") and up == EXTERNAL_MODEL_SOURCE:
                    ins.external_model.append(out)
                else:
                    self.dangling.append(site)
                continue
            target = ins.data[site.port] if site.port is not None else getattr(ins, site.kind)
            target.append((up, out))
            if self.graph.has_edge(up, name):
                self.graph.edges[up, name]["kinds"].add(site.kind)
            else:
                self.graph.add_edge(up, name, kinds={site.kind})
        return ins

    # ------------------------------------------------------------ queries

    @property
    def components(self) -> list[str]:
        """Component names in DSL declaration order."""
        return list(self._rank)

    def _check(self, component: str) -> None:
        if component not in self._rank:
            raise ValidationError([f"components: no component '{component}' in this job"
                                   f"{did_you_mean(component, self._rank)}"])

    def _sorted(self, names: Any) -> list[str]:
        return sorted(names, key=self._rank.__getitem__)

    def inputs(self, component: str) -> ComponentInputs:
        self._check(component)
        return self._inputs[component]

    def find_cycle(self) -> list[str] | None:
        """One cycle as a closed path (``["a", "b", "a"]``), or None when acyclic."""
        cycles = self.cycles(limit=1)
        return cycles[0] if cycles else None

    def cycles(self, limit: int = 10) -> list[list[str]]:
        """Up to ``limit`` simple cycles, each a closed path starting at its earliest component."""
        found = []
        for cyc in itertools.islice(nx.simple_cycles(self.graph), limit):
            start = cyc.index(min(cyc, key=self._rank.__getitem__))
            rotated = cyc[start:] + cyc[:start]
            found.append(rotated + rotated[:1])
        return sorted(found, key=lambda c: [self._rank[n] for n in c])

    def _require_acyclic(self) -> None:
        cycle = self.find_cycle()
        if cycle:
            raise ValidationError([f"components: the inputs form a cycle: {' -> '.join(cycle)}"])

    def order(self) -> list[str]:
        """A topological order; ties follow DSL declaration order."""
        self._require_acyclic()
        return list(nx.lexicographical_topological_sort(self.graph, key=self._rank.__getitem__))

    def stages(self) -> list[list[str]]:
        """Layers of the DAG: a component sits one stage after its latest upstream, so no
        two components of a stage depend on each other and a stage may run in parallel."""
        self._require_acyclic()
        return [self._sorted(gen) for gen in nx.topological_generations(self.graph)]

    def upstream(self, component: str, transitive: bool = False) -> list[str]:
        """Components ``component`` takes inputs from (all ancestors if ``transitive``)."""
        self._check(component)
        names = nx.ancestors(self.graph, component) if transitive else self.graph.predecessors(component)
        return self._topo_sorted(names)

    def downstream(self, component: str, transitive: bool = True) -> list[str]:
        """Every component that depends on ``component`` (only direct ones if not ``transitive``):
        what must run again when ``component`` is rerun."""
        self._check(component)
        names = nx.descendants(self.graph, component) if transitive else self.graph.successors(component)
        return self._topo_sorted(names)

    def _topo_sorted(self, names: Any) -> list[str]:
        wanted = set(names)
        if self.find_cycle():
            return self._sorted(wanted)
        return [c for c in self.order() if c in wanted]
