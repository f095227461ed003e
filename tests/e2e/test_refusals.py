"""Issue 12 §3 through the real CLI: what used to be accepted is refused in one line per problem
(missing tables, a label column that is not there, re-uploads without --drop), and tasks after a
failed one are shown canceled with the reason."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import EXAMPLES, load_example, write_job


def _nothing_created(flow) -> None:
    jobs = flow.home / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())


def test_validate_and_submit_refuse_a_missing_table_and_a_label_that_is_not_a_column(flow, tmp_path: Path):
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    conf, dsl = load_example("hetero_lr")
    conf["component_parameters"]["role"]["guest"]["0"]["data_transform_0"]["label_name"] = "label"
    c, d = write_job(tmp_path, conf, dsl)
    for command in ("validate", "submit"):
        res = flow("job", command, "-c", c, "-d", d)
        assert res.code == 2, res
        lines = [ln for ln in res.err.splitlines() if ln.strip()]
        assert lines == [
            f"{c}: component_parameters.role.guest.0.data_transform_0.label_name: label column 'label' is not a "
            "column of reader_0's table on guest:9999 (columns: y, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9)",
            f"{c}: component_parameters.role.host.0.reader_0.table: table experiment/breast_hetero_host does not "
            "exist on host:10000 (storage localfs) (did you mean 'breast_hetero_guest'?)"], lines
    _nothing_created(flow)


def test_validate_in_cluster_mode_names_the_parties_it_could_not_check(flow, tmp_path: Path):
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    service = tmp_path / "service.yaml"
    service.write_text(f"mode: cluster\nhome: {flow.home}\nserver:\n  party_id: '9999'\n")
    root = EXAMPLES / "hetero_lr"
    res = flow("--service-conf", service, "job", "validate", "-c", root / "conf.json", "-d", root / "dsl.json")
    assert res.code == 0, res
    assert res.data["unchecked_tables"] == [
        "host:10000: tables not checked (not this party; this home is party 9999)",
        "arbiter:10000: tables not checked (not this party; this home is party 9999)"]
    assert "notice: host:10000: tables not checked" in res.err


def test_uploading_an_existing_table_is_refused_unless_dropped(flow, tmp_path: Path):
    data = EXAMPLES / "data"
    flow.upload(data / "breast_hetero_host.csv", "breast_guest")
    res = flow("data", "upload", "-f", data / "breast_hetero_guest.csv", "--namespace", "experiment",
               "--name", "breast_guest", "--label-column", "y")
    assert res.code == 2, res
    assert [ln for ln in res.err.splitlines() if ln.strip()] == [
        "error: table experiment/breast_guest exists; pass --drop to replace it"]
    assert flow.ok("table", "info", "--namespace", "experiment", "--name", "breast_guest")["label_column"] is None
    up = flow.ok("data", "upload", "-f", data / "breast_hetero_guest.csv", "--namespace", "experiment",
                 "--name", "breast_guest", "--label-column", "y", "--drop")
    assert up["columns"][0] == "y"
    conf = tmp_path / "upload.json"  # FATE's upload conf: "drop": 1 replaces, 0 refuses
    for drop, code in ((0, 2), (1, 0)):
        conf.write_text(json.dumps({"file": str(data / "breast_hetero_host.csv"), "namespace": "experiment",
                                    "table_name": "breast_guest", "head": 1, "partition": 2, "drop": drop}))
        assert flow("data", "upload", "-c", conf).code == code
    assert flow.ok("table", "info", "--namespace", "experiment", "--name", "breast_guest")["label_column"] is None


def test_tasks_after_a_failed_one_are_canceled_with_the_reason(flow, tmp_path: Path):
    rows = (EXAMPLES / "data" / "breast_hetero_guest.csv").read_text().splitlines()
    cells = rows[5].split(",")
    cells[3] = "not-a-number"  # DataTransform fails on the guest at run time
    rows[5] = ",".join(cells)
    bad = tmp_path / "guest.csv"
    bad.write_text("\n".join(rows) + "\n")
    flow.upload(bad, "breast_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    conf, dsl = load_example("hetero_lr")
    c, d = write_job(tmp_path, conf, dsl)
    job_id = flow.ok("job", "submit", "-c", c, "-d", d)["job_id"]
    detail = flow.wait(job_id, timeout=300)
    assert detail["status"] == "failed"
    detail = flow.ok("job", "query", "-j", job_id)
    by = {(t["component"], t["role"]): t for t in detail["tasks"]}
    assert by[("data_transform_0", "guest")]["status"] == "failed"
    assert not [t for t in detail["tasks"] if t["status"] == "waiting"], detail["tasks"]
    for cpn in ("intersection_0", "feature_scale_0", "hetero_lr_0", "evaluation_0"):
        assert by[(cpn, "guest")]["status"] == "canceled"
        assert by[(cpn, "guest")]["reason"] == "upstream data_transform_0 failed", by[(cpn, "guest")]
    assert by[("hetero_lr_0", "arbiter")]["status"] in ("failed", "canceled")  # it may have been waiting on peers
