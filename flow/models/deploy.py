"""A training DSL turned into the predict DSL of its model, as FATE's deploy does.

- Components deployed by default: Readers, every component that left a model, and every
  data-only component that is not training-only (Evaluation and the data splits are);
  a component's ``need_deploy`` in the training DSL overrides, an explicit list replaces.
- A deployed component with a model takes it as ``input.model: ["pipeline.<cpn>.model"]``;
  ``isometric_model`` inputs go (the component's own model carries what it needs).
- ``train_data`` becomes ``test_data`` (``data`` where the module has no ``test_data``
  port), ``validate_data`` goes, ``data`` stays. An input from a component that is not
  deployed and holds no model (a data split) is taken from that component's own single
  input instead; one from an undeployed component with a model is an error.
- Outputs keep their data; models are not produced again.
"""

from __future__ import annotations

from typing import Any, Iterable

from components.base import Component, get_component
from flow.core.errors import ValidationError
from flow.core.registry import did_you_mean
from flow.dsl.dag import parse_ref
from flow.dsl.problems import Problems
from flow.dsl.validate import check_dsl

#: modules whose work is only part of training: left out of a predict DSL unless asked for
TRAINING_ONLY = frozenset({"Evaluation", "DataSplit", "HeteroDataSplit", "HomoDataSplit"})


def _problem(message: str) -> ValidationError:
    return ValidationError([f"deploy: {message}"])


def _data_refs(body: dict[str, Any]) -> list[str]:
    data = (body.get("input") or {}).get("data") or {}
    return [r for refs in data.values() for r in refs]


def _default(name: str, body: dict[str, Any], cls: type[Component], held: set[str]) -> bool:
    if body.get("need_deploy") is not None:
        return bool(body["need_deploy"])
    if name in held or body["module"] == "Reader":
        return True
    return getattr(cls, "need_deploy", body["module"] not in TRAINING_ONLY)


def choose(components: dict[str, dict[str, Any]], held: set[str], cpn_list: Iterable[str] | None) -> list[str]:
    """The components to deploy, in the training DSL's order."""
    if cpn_list is None:
        return [n for n, b in components.items() if _default(n, b, get_component(b["module"]), held)]
    wanted = list(dict.fromkeys(c.strip() for c in cpn_list if c.strip()))
    unknown = [c for c in wanted if c not in components]
    if unknown:
        raise _problem(f"--cpn-list: no component '{unknown[0]}' in the training DSL"
                       f"{did_you_mean(unknown[0], components)} (components: {', '.join(components)})")
    if not wanted:
        raise _problem("--cpn-list names no component")
    return [n for n in components if n in wanted]


def derive_predict_dsl(train_dsl: dict[str, Any], held: set[str],
                       cpn_list: Iterable[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(predict DSL, deployed components) of a training DSL whose components ``held`` left a model."""
    components: dict[str, dict[str, Any]] = train_dsl["components"]
    chosen = choose(components, held, cpn_list)
    deployed = set(chosen)

    def sources(ref: str, consumer: str) -> list[str]:
        up = (parse_ref(ref) or ("", ""))[0]
        if up in deployed:
            return [ref]
        if up in held:
            raise _problem(f"component '{consumer}' takes its data from '{up}', whose model is not deployed; "
                           f"add '{up}' to --cpn-list")
        refs = _data_refs(components.get(up, {}))
        return sources(refs[0], consumer) if len(refs) == 1 else []

    out: dict[str, Any] = {}
    for name in chosen:
        body = components[name]
        cls = get_component(body["module"])
        comp: dict[str, Any] = {"module": body["module"]}
        data: dict[str, list[str]] = {}
        for port, refs in ((body.get("input") or {}).get("data") or {}).items():
            if port == "validate_data":
                continue
            target = port if port != "train_data" else ("test_data" if "test_data" in cls.input_data else "data")
            for ref in refs:
                for src in sources(ref, name):
                    if src not in data.setdefault(target, []):
                        data[target].append(src)
        data = {p: refs for p, refs in data.items() if refs}
        if cls.input_data and not data:
            raise _problem(f"component '{name}' would have no input data: none of its inputs "
                           f"({', '.join(_data_refs(body)) or 'none'}) is deployed; add them to --cpn-list")
        inputs: dict[str, Any] = {"data": data} if data else {}
        if name in held:
            if not cls.accepts_model:
                raise _problem(f"component '{name}' ({body['module']}) left a model but cannot take one "
                               "(no predict mode); leave it out of --cpn-list")
            inputs["model"] = [f"pipeline.{name}.model"]
        if inputs:
            comp["input"] = inputs
        outputs = (body.get("output") or {}).get("data")
        if outputs:
            comp["output"] = {"data": list(outputs)}
        out[name] = comp
    dsl = {"components": out}
    problems = Problems()
    check_dsl(dsl, "predict dsl", problems)  # what deploy hands out must load as a job
    problems.raise_if_any()
    return dsl, chosen
