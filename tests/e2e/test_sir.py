"""examples/secure_information_retrieval through the CLI: the guest gets the host's columns
for its ids (missing for ids the host lacks); the host outputs nothing."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import pytest

from .conftest import EXAMPLES, load_example, write_job

pytestmark = pytest.mark.e2e
CPN = "secure_information_retrieval_0"


def _host_table(tmp_path: Path, keep: int) -> tuple[Path, dict[str, dict[str, str]]]:
    """The breast host table cut to its first ``keep`` rows: the guest's other ids are absent."""
    with (EXAMPLES / "data" / "breast_hetero_host.csv").open() as fh:
        rows = list(csv.DictReader(fh))[:keep]
    path = tmp_path / "host.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, {r["id"]: r for r in rows}


@pytest.mark.parametrize("raw", [False, True])
def test_sir_example_returns_the_host_values_of_the_guest_ids(flow, tmp_path: Path, raw: bool):
    host_csv, host = _host_table(tmp_path, 400)
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    flow.upload(host_csv, "breast_hetero_host")
    conf, dsl = load_example("secure_information_retrieval")
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"][CPN]["raw_retrieval"] = raw
    cols = conf["component_parameters"]["common"][CPN]["target_cols"]
    c, d = write_job(tmp_path, conf, dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job.get("reason")

    (out,) = flow.ok("tracking", "output-data", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                     "-cpn", CPN, "-o", tmp_path / "out")
    with open(out["file"]) as fh:
        got = {r["id"]: r for r in csv.DictReader(fh)}
    with (EXAMPLES / "data" / "breast_hetero_guest.csv").open() as fh:
        guest_ids = [r["id"] for r in csv.DictReader(fh)]
    assert set(got) == set(guest_ids)
    for i in guest_ids:
        for col in cols:
            value = float(got[i][col]) if got[i][col] not in ("", "nan", "NaN") else math.nan
            if i in host:
                assert value == float(host[i][col]), (i, col)
            else:
                assert math.isnan(value), (i, col)
    host_out = flow("tracking", "output-data", "-j", job["job_id"], "-r", "host", "-p", "10000", "-cpn", CPN,
                    "-o", tmp_path / "host_out")
    assert not host_out.data  # nothing on the host
    metrics = flow.ok("tracking", "metrics", "-j", job["job_id"], "-r", "guest", "-p", "9999", "-cpn", CPN)
    assert metrics["retrieval"]["retrieved_count"] == 400


def test_target_col_absent_on_the_host_is_one_line_at_validation(breast, tmp_path: Path):
    conf, dsl = load_example("secure_information_retrieval")
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"][CPN]["target_cols"] = ["x0", "x99"]
    c, d = write_job(tmp_path, conf, dsl)
    res = breast("job", "submit", "-c", c, "-d", d)
    assert res.code == 2
    lines = [line for line in res.out["retmsg"].splitlines() if "target_cols" in line]
    assert len(lines) == 1 and "'x99' is not a column of data_transform_0's data on host:10000" in lines[0], res.out
    assert "secure_information_retrieval_0.target_cols" in lines[0]
