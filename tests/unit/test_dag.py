"""flow.dsl.dag: order, stages, up/downstream, cycles and resolved inputs of a DSL's graph."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from flow.core.errors import ValidationError
from flow.dsl.dag import JobDAG, parse_ref
from flow.dsl.models import Dsl

FIXTURES = Path(__file__).parent / "fixtures"


def comp(*data: str, port: str = "data", model: tuple[str, ...] = (), iso: tuple[str, ...] = ()) -> dict:
    inp: dict = {}
    if data:
        inp["data"] = {port: list(data)}
    if model:
        inp["model"] = list(model)
    if iso:
        inp["isometric_model"] = list(iso)
    return {"module": "X", "input": inp, "output": {"data": ["data"], "model": ["model"]}}


def dag_of(**components: dict) -> JobDAG:
    return JobDAG.from_dsl({"components": components})


def diamond() -> JobDAG:
    """reader -> (scale, binning) -> lr -> eval, plus an independent second reader."""
    return dag_of(
        reader_0=comp(),
        scale_0=comp("reader_0.data"),
        binning_0=comp("reader_0.data"),
        reader_1=comp(),
        lr_0=comp("scale_0.data", port="train_data", iso=("binning_0.model",)),
        eval_0=comp("lr_0.data", "reader_1.data"),
    )


def test_example_pipeline_from_model_and_from_dict() -> None:
    raw = json.loads((FIXTURES / "hetero_lr" / "dsl.json").read_text())
    expected = ["reader_0", "data_transform_0", "intersection_0", "hetero_lr_0", "evaluation_0"]
    for dag in (JobDAG.from_dsl(raw), JobDAG.from_dsl(Dsl.model_validate(raw))):
        assert dag.order() == expected
        assert dag.stages() == [[c] for c in expected]
        assert dag.inputs("hetero_lr_0").data == {"train_data": [("intersection_0", "data")]}


def test_order_respects_edges_and_declaration_order() -> None:
    dag = diamond()
    order = dag.order()
    for up, down in dag.graph.edges:
        assert order.index(up) < order.index(down)
    # ties follow the DSL: scale_0 is declared before binning_0, reader_1 before lr_0
    assert order == ["reader_0", "scale_0", "binning_0", "reader_1", "lr_0", "eval_0"]


def test_order_is_deterministic_for_a_random_dag() -> None:
    rng = random.Random(7)
    names = [f"c{i}" for i in range(30)]
    comps = {n: comp(*[f"{names[j]}.data" for j in range(i) if rng.random() < 0.15])
             for i, n in enumerate(names)}
    shuffled = dict(rng.sample(sorted(comps.items()), len(comps)))
    first, again = JobDAG.from_dsl({"components": shuffled}), JobDAG.from_dsl({"components": dict(shuffled)})
    assert first.order() == again.order()
    order = first.order()
    assert all(order.index(u) < order.index(v) for u, v in first.graph.edges)


def test_stages_hold_components_without_paths_between_them() -> None:
    dag = diamond()
    stages = dag.stages()
    assert stages == [["reader_0", "reader_1"], ["scale_0", "binning_0"], ["lr_0"], ["eval_0"]]
    stage_of = {c: i for i, s in enumerate(stages) for c in s}
    for up, down in dag.graph.edges:
        assert stage_of[up] < stage_of[down]
    for stage in stages:
        for a in stage:
            assert not set(dag.downstream(a)) & set(stage)


def test_upstream_and_downstream() -> None:
    dag = diamond()
    assert dag.upstream("lr_0") == ["scale_0", "binning_0"]
    assert dag.upstream("eval_0", transitive=True) == ["reader_0", "scale_0", "binning_0", "reader_1", "lr_0"]
    assert dag.downstream("reader_0") == ["scale_0", "binning_0", "lr_0", "eval_0"]
    assert dag.downstream("reader_0", transitive=False) == ["scale_0", "binning_0"]
    assert dag.downstream("eval_0") == []
    assert dag.upstream("reader_1") == []


def test_unknown_component_is_refused_with_suggestion() -> None:
    with pytest.raises(ValidationError, match="did you mean 'lr_0'"):
        diamond().upstream("lr0")


def test_inputs_resolved_per_kind() -> None:
    dag = dag_of(
        a=comp(), b=comp(),
        c=comp("a.data", "b.data", port="train_data", model=("a.model",), iso=("b.model",)),
        d=comp("c.data", model=("pipeline.c",)),
    )
    ins = dag.inputs("c")
    assert ins.data == {"train_data": [("a", "data"), ("b", "data")]}
    assert ins.model == [("a", "model")] and ins.isometric_model == [("b", "model")]
    assert ins.upstream_names() == ["a", "b"]
    assert dag.graph.edges["a", "c"]["kinds"] == {"data", "model"}
    # pipeline.<cpn> names a deployed model: no edge, no dangling reference
    assert dag.inputs("d").external_model == ["c"] and dag.upstream("d") == ["c"]
    assert dag.dangling == []


def test_dangling_and_malformed_references_are_kept_not_edges() -> None:
    dag = dag_of(a=comp(), b=comp("a.data", "ghost.data", "nodot"), c=comp("pipeline.a"))
    assert [(s.ref, s.path) for s in dag.dangling] == [
        ("ghost.data", ("components", "b", "input", "data", "data", 1)),
        ("nodot", ("components", "b", "input", "data", "data", 2)),
        ("pipeline.a", ("components", "c", "input", "data", "data", 0)),  # data cannot come from a deployed model
    ]
    assert dag.upstream("b") == ["a"] and dag.order() == ["a", "b", "c"]


@pytest.mark.parametrize("ref,expected", [
    ("reader_0.data", ("reader_0", "data")), ("a.b.c", ("a", "b.c")),
    ("reader_0", None), (".data", None), ("reader_0.", None), ("a .b", None), (3, None),
])
def test_parse_ref(ref: object, expected: tuple[str, str] | None) -> None:
    assert parse_ref(ref) == expected


def test_cycles_are_found_and_named_from_their_first_component() -> None:
    dag = dag_of(a=comp("c.data"), b=comp("a.data"), c=comp("b.data"), d=comp("a.data"))
    assert dag.find_cycle() == ["a", "b", "c", "a"]
    with pytest.raises(ValidationError, match="cycle: a -> b -> c -> a"):
        dag.order()
    with pytest.raises(ValidationError):
        dag.stages()
    # downstream still answers (used to report what a cycle blocks)
    assert set(dag.downstream("a")) == {"b", "c", "d"}


def test_self_loop_and_several_cycles() -> None:
    dag = dag_of(a=comp("a.data"), b=comp("c.data"), c=comp("b.data"), d=comp())
    assert dag.cycles() == [["a", "a"], ["b", "c", "b"]]
    assert dag_of(x=comp(), y=comp("x.data")).find_cycle() is None
