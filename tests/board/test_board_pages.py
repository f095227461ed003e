"""The Data, Models, Schedules, Audit and Server pages in a real browser, each against the
CLI command that answers the same question: a table's engine, schema and count (a column
named as an XSS probe shown as text), its first rows; a model's predict conf; a schedule's
next firing, pause, resume and run-now; an audit entry edited by hand found as the first
broken one; the server's transport and version. A viewer may not read a table's rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from .conftest import BoardHome, log_in
from .test_board_api import login

pytestmark = pytest.mark.e2e

PROBE = '<img src=x onerror="window.__xss=3">'


def goto(page, board: BoardHome, path: str) -> None:
    page.goto(board.base + path)
    page.wait_for_selector("body[data-loaded]", state="attached")
    assert page.locator("#page .error").count() == 0, page.locator("#page").text_content()


def test_data_page_info_preview_and_probe_column(page, board_home: BoardHome, tmp_path: Path,
                                                 shots: Path):
    flow = board_home.flow
    source = tmp_path / "probe.csv"
    with source.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "x0", PROBE])
        out.writerows([[f"id{i}", i * 0.5, i] for i in range(30)])
    flow.upload(source, "probe_columns")
    info = flow.ok("table", "info", "--namespace", "experiment", "--name", "probe_columns")
    log_in(page, board_home)
    goto(page, board_home, "/data")
    page.click("tr[data-name=probe_columns] button.open-table")
    page.wait_for_selector("#preview table", state="attached")
    shown = {r[0]: r[1] for r in page.eval_on_selector_all(
        "#table-info tr", "rows => rows.map(r => [r.dataset.key, r.querySelector('td').textContent])")}
    assert shown["engine"] == info["engine"] and int(shown["count"]) == info["count"] == 30
    assert json.loads(shown["address"]) == info["address"]
    assert json.loads(shown["columns"]) == info["columns"] == ["x0", PROBE] and shown["id_column"] == "id"
    header = page.eval_on_selector_all("#preview th", "c => c.map(x => x.textContent)")
    first = page.eval_on_selector_all("#preview tbody tr", "r => r.map(x => [...x.cells].map(c => c.textContent))")
    flow.ok("data", "download", "--namespace", "experiment", "--name", "probe_columns", "-o", tmp_path / "down.csv")
    with (tmp_path / "down.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert header == rows[0] and PROBE in header and first == rows[1:21]
    assert page.locator("#page img").count() == 0 and page.evaluate("window.__xss") is None
    page.screenshot(path=shots / "data.png", full_page=True)

    token = flow.ok("user", "add", "val", "--role", "viewer")["token"]
    viewer, _ = login(board_home, token)
    try:
        assert viewer.get("/board/api/tables/experiment/probe_columns").status_code == 200
        rows_refused = viewer.get("/board/api/tables/experiment/probe_columns/preview")
        assert rows_refused.status_code == 403 and "needs operator" in rows_refused.json()["retmsg"]
    finally:
        flow.ok("user", "remove", "val")
    assert page.errors == [] and page.dialogs == []


def test_models_and_server_pages(page, board_home: BoardHome, shots: Path):
    flow = board_home.flow
    models = flow.ok("model", "list")
    log_in(page, board_home)
    goto(page, board_home, "/models")
    assert sorted(page.eval_on_selector_all("#models tbody tr", "r => r.map(x => x.dataset.version)")) == sorted(
        m["model_version"] for m in models)
    version = board_home.lr_job
    page.click(f"#models tr[data-version='{version}'] button.deploy")
    page.wait_for_selector("#predict-conf", state="attached")
    shown = json.loads(page.locator("#predict-conf").text_content())
    deployed = flow.ok("model", "deploy", "--job-id", version)
    assert shown == deployed["predict_conf"]
    with page.expect_download() as download:
        page.click("a.download[download='predict_conf.json']")
    assert json.loads(Path(download.value.path()).read_text()) == deployed["predict_conf"]
    page.screenshot(path=shots / "models.png", full_page=True)

    goto(page, board_home, "/server")
    status = flow.ok("server", "status")
    shown = {r[0]: r[1] for r in page.eval_on_selector_all(
        "#server > tbody > tr", "rows => rows.map(r => [r.dataset.key, r.querySelector('td').textContent])")}
    assert json.loads(shown["transport"]) == status["transport"] and shown["mode"] == status["mode"]
    assert f"fedweave {shown['version']}" == flow("--version").out["raw"].strip()
    assert json.loads(shown["engines"]) == status["engines"]
    assert page.errors == []


def test_schedules_page(page, board_home: BoardHome, tmp_path: Path, shots: Path):
    flow = board_home.flow
    conf, dsl = board_home.reader_conf(tmp_path)
    flow.ok("schedule", "add", "--cron", "0 3 * * *", "-c", conf, "-d", dsl, "--name", "nightly_reader")
    listed = {s["name"]: s for s in flow.ok("schedule", "list")}
    log_in(page, board_home)
    goto(page, board_home, "/schedules")
    row = "#schedules tr[data-name=nightly_reader]"
    assert page.locator(f"{row} td.c-next_fire").text_content().replace(" ", "T") in listed["nightly_reader"][
        "next_fire"].replace(" ", "T")
    page.click(f"{row} button.pause")
    page.wait_for_selector(f"{row}[data-paused=true]", state="attached")
    assert {s["name"]: s for s in flow.ok("schedule", "list")}["nightly_reader"]["paused"] is True
    page.click(f"{row} button.resume")
    page.wait_for_selector(f"{row}[data-paused=false]", state="attached")
    page.click(f"{row} button.run-now")
    page.wait_for_function("() => (document.querySelector('#schedules tr[data-name=nightly_reader] "
                           "td.c-last_job')?.textContent || '').length > 0")
    history = flow.ok("schedule", "history", "nightly_reader")
    assert history and history[-1]["job_id"]
    page.click(f"{row} button.history")
    page.wait_for_selector("#firings", state="attached")
    assert history[-1]["job_id"] in page.eval_on_selector_all("#firings tbody tr", "r => r.map(x => x.dataset.jobId)")
    page.screenshot(path=shots / "schedules.png", full_page=True)
    flow.ok("schedule", "remove", "nightly_reader")
    assert page.errors == []


def test_audit_page_finds_the_edited_entry(page, board_home: BoardHome, shots: Path):
    flow = board_home.flow
    log_in(page, board_home)
    goto(page, board_home, "/audit")
    entries = flow.ok("audit", "list")
    assert page.locator("#audit tbody tr").count() == min(200, len(entries)) > 3
    log = next(v for v in flow.ok("audit", "verify") if v["ok"])
    path = Path(log["file"])
    lines = path.read_text().splitlines(keepends=True)
    target = json.loads(lines[2])
    edited = dict(target, actor="someone-else")
    lines[2] = json.dumps(edited) + "\n"
    original = path.read_text()
    path.write_text("".join(lines))
    try:
        page.click("#verify")
        page.wait_for_selector(f"#verdict .log[data-party='{log['party']}'][data-ok=false]", state="attached")
        refused = flow("audit", "verify")
        assert refused.code == 1
        cli = next(v for v in refused.data if v["party"] == log["party"])
        assert cli["ok"] is False and cli["first_bad_seq"] == target["seq"]
        assert cli["reason"] in page.locator("#verdict").text_content()
        shown = json.loads(page.locator(f"#verdict .log[data-party='{log['party']}'] pre.first-bad").text_content())
        assert shown == edited
        assert f"broken at seq {target['seq']}" in page.locator("#verdict").text_content()
        page.screenshot(path=shots / "audit.png", full_page=True)
    finally:
        path.write_text(original + path.read_text()[len("".join(lines)):])
    page.fill("#audit-filters input[name=kind]", "server.request")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_function("() => [...document.querySelectorAll('#audit tbody tr')].every("
                           "r => r.dataset.kind.startsWith('server.request'))")
    assert page.errors == []
