"""FATE's own tag and sparse DataTransform examples, run unchanged: the tables uploaded
with the testsuite's upload entries (head 0 / 1), the job submitted, and DataTransform's
output checked against a direct parse of the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.fate_examples import fate_examples

pytestmark = pytest.mark.e2e


def _upload_suite(flow, suite: str, tmp_path: Path, only: set[str]) -> None:
    root = fate_examples()
    spec = json.loads(next((root / "dsl" / suite).glob("*_testsuite.json")).read_text())
    for item in spec["data"]:
        if item["table_name"] not in only:
            continue
        conf = {"file": str(root / item["file"].replace("examples/", "", 1)), "table_name": item["table_name"],
                "namespace": item["namespace"], "head": item["head"], "partition": item["partition"], "drop": 1}
        path = tmp_path / f"up_{item['table_name']}.json"
        path.write_text(json.dumps(conf))
        flow.ok("data", "upload", "-c", path)


def _run(flow, suite: str, task: str, tmp_path: Path) -> str:
    root = fate_examples() / "dsl" / suite
    spec = json.loads(next(root.glob("*_testsuite.json")).read_text())["tasks"][task]
    job = flow.ok("job", "submit", "-c", root / spec["conf"], "-d", root / spec["dsl"], "--wait")
    assert job["status"] == "success", job
    return job["job_id"]


def _output(flow, job_id: str, role: str, party: str, where: Path) -> tuple[list[str], dict[str, list[str]]]:
    items = flow.ok("tracking", "output-data", "-j", job_id, "-r", role, "-p", party, "-cpn", "data_transform_0",
                    "-o", where)
    with open(items[0]["file"]) as fh:
        rows = list(csv.reader(fh))
    return rows[0], {r[0]: r[1:] for r in rows[1:]}


def _lines(name: str, skip_first: bool) -> dict[str, list[str]]:
    text = (fate_examples() / "data" / name).read_text().splitlines()[1 if skip_first else 0:]
    return {line.split(",")[0]: line.split(",")[1:] for line in text if line.strip()}


def test_svmlight_example_sparse_input(flow, tmp_path: Path):
    _upload_suite(flow, "data_transform", tmp_path, {"svmlight_guest", "svmlight_host"})
    job_id = _run(flow, "data_transform", "data_transform_svmlight", tmp_path)
    for role, party, file, with_label in (("guest", "9999", "svmlight_guest.csv", True),
                                          ("host", "10000", "svmlight_host.csv", False)):
        header, out = _output(flow, job_id, role, party, tmp_path / role)
        source = _lines(file, skip_first=True)  # head: 1, as FATE: the first line is the header
        assert set(out) == set(source)
        dim = 1 + max(int(t.split(":")[0]) for toks in source.values() for t in toks if ":" in t)
        assert len(header) == 1 + dim + (1 if with_label else 0)
        for key, toks in source.items():
            want = [0.0] * dim
            label = toks[0] if with_label else None
            for tok in toks[1:] if with_label else toks:
                idx, val = tok.split(":")
                want[int(idx)] = float(val)
            got = [float(v) for v in out[key]]
            if with_label:
                assert got[0] == float(label)
                got = got[1:]
            assert got == pytest.approx(want)


def test_tag_value_example_union_head_0(flow, tmp_path: Path):
    _upload_suite(flow, "union", tmp_path, {"tag_value_1", "tag_value_2", "tag_value_3"})
    info = flow.ok("table", "info", "--namespace", "experiment", "--name", "tag_value_1")
    assert info["count"] == 1000  # head: 0: every line is data


def test_tag_value_example_tag_input(flow, tmp_path: Path):
    _upload_suite(flow, "data_transform", tmp_path, {"breast_hetero_guest", "tag_value_1000_140"})
    job_id = _run(flow, "data_transform", "data_transform_tag_value", tmp_path)
    header, out = _output(flow, job_id, "host", "9998", tmp_path / "host")
    source = _lines("tag_value_1000_140.csv", skip_first=True)
    tags = sorted({t.split(":")[0] for toks in source.values() for t in toks})
    assert header[1:] == tags and set(out) == set(source)
    for key, toks in list(source.items())[:200]:
        want = dict.fromkeys(tags, 0.0) | {t.split(":")[0]: float(t.split(":")[1]) for t in toks}
        assert [float(v) for v in out[key]] == [want[t] for t in tags]
