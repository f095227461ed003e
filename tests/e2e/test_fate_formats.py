"""FATE's own tag and sparse DataTransform examples, checked on the session's suite runs
(``suite_run``): the tables uploaded with the testsuite's upload entries (head 0 / 1), and
DataTransform's output checked against a direct parse of the file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.fate_examples import SuiteRun, fate_examples

pytestmark = pytest.mark.e2e


def _output(run: SuiteRun, job_id: str, role: str, party: str, where: Path) -> tuple[list[str], dict[str, list[str]]]:
    with open(run.download(job_id, role, party, "data_transform_0", where), newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], {r[0]: r[1:] for r in rows[1:]}


def _lines(name: str, skip_first: bool) -> dict[str, list[str]]:
    text = (fate_examples() / "data" / name).read_text().splitlines()[1 if skip_first else 0:]
    return {line.split(",")[0]: line.split(",")[1:] for line in text if line.strip()}


def test_svmlight_example_sparse_input(suite_run, tmp_path: Path):
    run = suite_run("data_transform")
    job_id = run.job("data_transform_svmlight")
    for role, party, file, with_label in (("guest", "9999", "svmlight_guest.csv", True),
                                          ("host", "10000", "svmlight_host.csv", False)):
        header, out = _output(run, job_id, role, party, tmp_path / role)
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


def test_tag_value_example_union_head_0(suite_run):
    info = suite_run("union").flow.ok("table", "info", "--namespace", "experiment", "--name", "tag_value_1")
    assert info["count"] == 1000  # head: 0: every line is data


def test_tag_value_example_tag_input(suite_run, tmp_path: Path):
    run = suite_run("data_transform")
    job_id = run.job("data_transform_tag_value")
    header, out = _output(run, job_id, "host", "9998", tmp_path / "host")
    source = _lines("tag_value_1000_140.csv", skip_first=True)
    tags = sorted({t.split(":")[0] for toks in source.values() for t in toks})
    assert header[1:] == tags and set(out) == set(source)
    for key, toks in list(source.items())[:200]:
        want = dict.fromkeys(tags, 0.0) | {t.split(":")[0]: float(t.split(":")[1]) for t in toks}
        assert [float(v) for v in out[key]] == [want[t] for t in tags]
