"""The DAG drawn as text (issue 12 §5.3): a row of boxes per stage, edges listed, 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flow.core.errors import ValidationError
from flow.dsl.dag import JobDAG
from flow.dsl.dag_text import render_dag

REPO = Path(__file__).resolve().parents[2]


def _dsl(components: dict) -> JobDAG:
    return JobDAG.from_dsl({"components": components})


def _cpn(module: str, *data: str, model: str | None = None) -> dict:
    body: dict = {"module": module, "output": {"data": ["data"], "model": ["model"]}}
    inputs: dict = {}
    if data:
        inputs["data"] = {"data": list(data)}
    if model:
        inputs["model"] = [model]
    if inputs:
        body["input"] = inputs
    return body


def test_each_stage_is_a_row_of_boxes_and_every_edge_is_listed():
    dag = _dsl({"reader_0": _cpn("Reader"), "reader_1": _cpn("Reader"),
                "data_transform_0": _cpn("DataTransform", "reader_0.data"),
                "data_transform_1": _cpn("DataTransform", "reader_1.data", model="data_transform_0.model")})
    text = render_dag(dag, {"reader_0": "Reader", "reader_1": "Reader"})
    lines = text.splitlines()
    assert lines[0].startswith("stage 1  +") and lines[0].count("+") == 4  # two boxes side by side
    assert "| reader_0 | | reader_1 |" in lines[1] and "| Reader   | | Reader   |" in lines[2]
    assert any(line.startswith("stage 3") and "data_transform_1" in "\n".join(lines) for line in lines)
    assert [line.split("stage ")[1].split()[0] for line in lines if line.startswith("stage")] == ["1", "2", "3"]
    edges = lines[lines.index("edges") + 1:]
    assert edges == ["  reader_0 -> data_transform_0  (data)",
                     "  reader_1 -> data_transform_1  (data)",
                     "  data_transform_0 -> data_transform_1  (model)"]


def test_a_wide_stage_wraps_and_nothing_passes_80_columns():
    many = {f"reader_with_a_long_name_{i}": _cpn("Reader") for i in range(8)}
    many["union_0"] = _cpn("Union", *[f"{n}.data" for n in list(many)])
    text = render_dag(_dsl(many), {n: "Reader" for n in many})
    assert max(len(line) for line in text.splitlines()) <= 80
    assert sum(1 for line in text.splitlines() if "| reader_with" in line) >= 3  # several rows of boxes
    assert text.count(" -> union_0") == 8


def test_example_pipelines_render_within_80_columns():
    for path in sorted((REPO / "examples").glob("*/dsl.json")):
        dsl = json.loads(path.read_text())
        text = render_dag(JobDAG.from_dsl(dsl), {k: v["module"] for k, v in dsl["components"].items()})
        assert max(len(line) for line in text.splitlines()) <= 80, path
        for name in dsl["components"]:
            assert f"| {name}" in text, (path, name)


def test_a_cycle_is_refused_with_the_validators_message():
    dag = _dsl({"a": _cpn("DataTransform", "b.data"), "b": _cpn("DataTransform", "a.data")})
    with pytest.raises(ValidationError, match="cycle"):
        render_dag(dag)
