"""DataTransform on bad cells: a clear error naming row and column, or imputation when asked."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from .conftest import write_job
from .test_psi import DSL, psi_conf

pytestmark = pytest.mark.e2e


def _tables(tmp_path: Path, flow, bad_value: str) -> None:
    with (tmp_path / "g.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "y", "x0", "x1"])
        for i in range(20):
            out.writerow([f"k{i}", i % 2, "" if i == 7 else i, bad_value if i == 13 else 2 * i])
    with (tmp_path / "h.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "z"])
        out.writerows([f"k{i}", i] for i in range(20))
    flow.upload(tmp_path / "g.csv", "g", label="y", namespace="psi")
    flow.upload(tmp_path / "h.csv", "h", namespace="psi")


def test_non_numeric_value_fails_naming_row_and_column(flow, tmp_path: Path):
    _tables(tmp_path, flow, bad_value="abc")
    c, d = write_job(tmp_path, psi_conf("g", "h"), DSL)
    res = flow("job", "submit", "-c", c, "-d", d, "--wait")
    assert res.code == 1 and res.data["status"] == "failed"
    reason = res.data["reason"]
    assert "data_transform_0" in reason and "guest:9999" in reason
    # whichever bad cell is met first: both name the row and the column
    assert ("row id=k7 column 'x0': value None is missing" in reason
            or "row id=k13 column 'x1': value 'abc' is not a number" in reason), reason


def test_missing_values_imputed_with_column_mean(flow, tmp_path: Path):
    _tables(tmp_path, flow, bad_value="26")
    conf = psi_conf("g", "h")
    conf["component_parameters"]["role"]["guest"]["0"]["data_transform_0"].update(
        missing_fill=True, missing_fill_method="mean")
    c, d = write_job(tmp_path, conf, DSL)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job["reason"]
    out = flow.ok("tracking", "output-data", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                  "-cpn", "data_transform_0", "-o", tmp_path / "out")[0]
    with open(out["file"]) as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    mean_x0 = sum(i for i in range(20) if i != 7) / 19
    assert abs(float(rows["k7"]["x0"]) - mean_x0) < 1e-9
    assert float(rows["k13"]["x1"]) == 26.0
