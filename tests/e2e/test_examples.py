"""Every pipeline under examples/ is valid as shipped, listed in examples/README.md, and
run end to end (against a centralised computation) by one of the e2e test modules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import EXAMPLES

HERE = Path(__file__).resolve().parent
PIPELINES = sorted(p.parent.name for p in EXAMPLES.glob("*/conf.json"))


def test_the_examples_are_found():
    assert {"hetero_lr", "homo_lr", "hetero_secureboost", "hetero_lr_predict"} <= set(PIPELINES)


def _upload_tables(flow, name: str) -> None:
    """The tables ``name``'s conf reads, from examples/data (validate checks this home's tables)."""
    conf = json.loads((EXAMPLES / name / "conf.json").read_text())
    tables = {(c["table"]["namespace"], c["table"]["name"]) for parties in conf["component_parameters"]["role"].values()
              for block in parties.values() for c in block.values() if isinstance(c, dict) and "table" in c}
    for namespace, table in sorted(tables):
        path = EXAMPLES / "data" / f"{table}.csv"
        if path.is_file():
            header = path.read_text().split("\n", 1)[0].split(",")
            flow.upload(path, table, label="y" if "y" in header else None, namespace=namespace)


@pytest.mark.parametrize("name", PIPELINES)
def test_example_validates(flow, name: str):
    _upload_tables(flow, name)
    summary = flow.ok("job", "validate", "-c", EXAMPLES / name / "conf.json", "-d", EXAMPLES / name / "dsl.json")
    assert summary["components"], summary


@pytest.mark.parametrize("name", PIPELINES)
def test_example_is_documented_and_run_end_to_end(name: str):
    readme = (EXAMPLES / "README.md").read_text()
    assert re.search(rf"^\| `{name}` \|", readme, re.M), f"examples/README.md has no row for {name}"
    runners = [p.name for p in HERE.glob("test_*.py") if p.name != Path(__file__).name
               and re.search(rf"[\"'/]{name}[\"'/]", p.read_text())]
    assert runners, f"no e2e test runs examples/{name}"
