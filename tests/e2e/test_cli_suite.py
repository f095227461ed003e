"""``flow suite run``: FATE testsuites through the CLI, as ``fate_test suite`` runs them —
tables uploaded from their upload confs, a task refused as "not supported" counted apart
from one that is wrong, a predict task after its training task, bad suites in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fate_examples import fate_examples

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def union() -> Path:
    return fate_examples() / "dsl" / "union"


def _suite(tmp_path: Path, union: Path, tasks: dict, data: list | None = None) -> Path:
    shipped = json.loads((union / "union_testsuite.json").read_text())
    path = tmp_path / "my_testsuite.json"
    entries = data if data is not None else [
        {**e, "file": str(fate_examples() / e["file"].removeprefix("examples/"))} for e in shipped["data"][:2]]
    path.write_text(json.dumps({"data": entries, "tasks": tasks}))
    return path


def _dsl_with_module(tmp_path: Path, union: Path, module: str) -> Path:
    dsl = json.loads((union / "test_union_basic_job_dsl.json").read_text())
    dsl["components"]["union_0"]["module"] = module
    path = tmp_path / f"dsl_{module}.json"
    path.write_text(json.dumps(dsl))
    return path


def test_a_shipped_task_runs_and_the_tables_are_uploaded_once(flow, union: Path):
    res = flow("suite", "run", "-i", union / "union_testsuite.json", "-t", "union-basic")
    assert res.code == 0, res
    (report,) = res.data["suites"]
    assert report["suite"] == "union" and report["tasks"] == 1 and report["success"] == 1
    assert report["uploaded"] == ["experiment/breast_hetero_guest", "experiment/breast_hetero_host",
                                  "experiment/tag_value_1", "experiment/tag_value_2", "experiment/tag_value_3"]
    (task,) = report["results"]
    assert flow.ok("job", "query", "-j", task["job_id"])["status"] == "success"
    assert flow.ok("table", "info", "--namespace", "experiment", "--name", "tag_value_1")["count"] == 1000
    again = flow("suite", "run", "-i", union / "union_testsuite.json", "-t", "union-basic")
    assert again.code == 0 and "experiment/breast_hetero_guest: exists, kept" in again.err


def test_not_supported_is_refused_a_typo_is_invalid_and_a_predict_waits_for_its_training(
        flow, union: Path, tmp_path: Path):
    conf = str(union / "test_union_basic_job_conf.json")
    suite = _suite(tmp_path, union, {
        "lacks": {"conf": conf, "dsl": str(_dsl_with_module(tmp_path, union, "HeteroFTL"))},
        "typo": {"conf": conf, "dsl": str(_dsl_with_module(tmp_path, union, "Unoin"))},
        "after_typo": {"conf": conf, "dsl": str(union / "test_union_basic_job_dsl.json"), "deps": "typo"},
    })
    res = flow("suite", "run", "-i", suite, "--parallel", "3")  # after_typo still waits for typo
    assert res.code == 1, res  # a wrong task fails the run; a refused one alone would not
    by_task = {t["task"]: t for t in res.data["suites"][0]["results"]}
    assert by_task["lacks"]["status"] == "refused"
    assert "not supported: module HeteroFTL" in by_task["lacks"]["reason"]
    assert by_task["typo"]["status"] == "invalid" and "unknown module 'Unoin'" in by_task["typo"]["reason"]
    assert by_task["after_typo"]["status"] == "skipped" and "typo" in by_task["after_typo"]["reason"]
    assert list(by_task) == ["lacks", "typo", "after_typo"]
    counts = res.data["suites"][0]
    assert (counts["refused"], counts["invalid"], counts["skipped"], counts["validated"]) == (1, 1, 1, 0)


def test_bad_suites_are_one_line_naming_the_file(flow, union: Path, tmp_path: Path):
    cases = {
        "missing": (tmp_path / "nothing_testsuite.json", "no such testsuite file or folder"),
        "no data file": (_suite(tmp_path, union, {}, data=[{"file": "examples/data/absent.csv", "head": 1,
                                                             "table_name": "t", "namespace": "n"}]),
                         "data: file examples/data/absent.csv not found"),
    }
    for name, (path, expected) in cases.items():
        res = flow("suite", "run", "-i", path)
        assert res.code == 2, (name, res)
        assert expected in res.out["retmsg"] and str(path.name) in res.out["retmsg"], (name, res.out)
    res = flow("suite", "run", "-i", union / "union_testsuite.json", "-t", "nonesuch", "--skip-data")
    assert res.code == 2 and "no task nonesuch" in res.out["retmsg"], res
    cycle = _suite(tmp_path, union, {"a": {"conf": "c", "dsl": "d", "deps": "b"},
                                     "b": {"conf": "c", "dsl": "d", "deps": "a"}})
    res = flow("suite", "run", "-i", cycle, "--skip-data")
    assert res.code == 2 and "tasks.a.deps: a cycle (a -> b -> a)" in res.out["retmsg"], res
