"""FeldmanVerifiableSum through the CLI: guest and host of breast_hetero after Intersection; the
guest's output is the plain per-id sum of the chosen CSV columns of both parties."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from .conftest import EXAMPLES, write_job

pytestmark = pytest.mark.e2e

DSL = {"components": {
    "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
    "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                         "output": {"data": ["data"], "model": ["model"]}},
    "intersection_0": {"module": "Intersection", "input": {"data": {"data": ["data_transform_0.data"]}},
                       "output": {"data": ["data"]}},
    "feldman_verifiable_sum_0": {"module": "FeldmanVerifiableSum",
                                 "input": {"data": {"data": ["intersection_0.data"]}}, "output": {"data": ["data"]}},
}}

GUEST_COLS, HOST_COLS = [0, 3, 7], [2, 5, 19]


def conf() -> dict:
    return {
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "job_parameters": {"common": {"computing_partitions": 2}},
        "component_parameters": {"common": {"intersection_0": {"intersect_method": "raw"}}, "role": {
            "guest": {"0": {"reader_0": {"table": {"namespace": "experiment", "name": "breast_hetero_guest"}},
                            "data_transform_0": {"with_label": True, "label_name": "y"},
                            "feldman_verifiable_sum_0": {"sum_cols": GUEST_COLS, "q_n": 6}}},
            "host": {"0": {"reader_0": {"table": {"namespace": "experiment", "name": "breast_hetero_host"}},
                           "data_transform_0": {"with_label": False},
                           "feldman_verifiable_sum_0": {"sum_cols": HOST_COLS, "q_n": 6}}},
        }},
    }


def features(name: str, skip: int) -> tuple[list[str], dict[str, list[float]]]:
    """A CSV's feature names and rows by id (``skip`` leading non-feature columns after the id)."""
    with (EXAMPLES / "data" / name).open() as fh:
        rows = list(csv.reader(fh))
    return rows[0][1 + skip:], {r[0]: [float(v) for v in r[1 + skip:]] for r in rows[1:]}


def test_guest_gets_the_plain_per_id_sum(breast, tmp_path: Path):
    c, d = write_job(tmp_path, conf(), DSL)
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    (out,) = breast.ok("tracking", "output-data", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                       "-cpn", "feldman_verifiable_sum_0", "-o", tmp_path / "out")
    with open(out["file"]) as fh:
        rows = list(csv.reader(fh))
    header, got = rows[0], {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}

    g_names, guest = features("breast_hetero_guest.csv", skip=1)
    _, host = features("breast_hetero_host.csv", skip=0)
    assert header[1:] == [g_names[i] for i in GUEST_COLS]
    common = set(guest) & set(host)
    assert set(got) == common
    for key in common:
        plain = [guest[key][i] + host[key][j] for i, j in zip(GUEST_COLS, HOST_COLS)]
        assert all(abs(a - b) < 1e-9 for a, b in zip(got[key], plain)), key
