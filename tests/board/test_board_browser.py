"""The board in a real browser (Debian's Chromium under Playwright): log in, the jobs
list and its filters, a job's DAG and states, Evaluation's ROC and AUC against
`flow tracking metrics`, HeteroLR's guest weights against `flow tracking output-model`,
a description that is an XSS probe shown as text, a new job arriving live, and no data
without the session cookie. Screenshots are kept under each test's tmp dir."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.e2e.conftest import load_example, write_job

from .conftest import XSS, BoardHome, log_in

pytestmark = pytest.mark.e2e


def job_ids(page) -> list[str]:
    return page.eval_on_selector_all("#jobs tbody tr[data-job-id]", "rows => rows.map(r => r.dataset.jobId)")


def wait_rows(page, expected: list[str]) -> None:
    page.wait_for_function("ids => JSON.stringify([...document.querySelectorAll('#jobs tbody tr[data-job-id]')]"
                           ".map(r => r.dataset.jobId).sort()) === JSON.stringify(ids)", arg=sorted(expected))


def open_component(page, name: str, party: str, tab: str):
    page.click(f"#states a:text-is('{name}')")
    page.select_option("#cpn-party", party)
    page.click(f"#tabs button[data-tab={tab}]")
    page.wait_for_selector(f"#panel-{tab}[data-ready=true]", state="attached")


def test_jobs_list_filters_and_xss_probe(page, board_home: BoardHome, shots: Path):
    log_in(page, board_home)
    wait_rows(page, [board_home.lr_job, board_home.reader_job])
    page.screenshot(path=shots / "jobs.png", full_page=True)
    row = page.locator(f"tr[data-job-id='{board_home.reader_job}']")
    assert row.locator("td.description .note-text").text_content() == XSS  # shown as text
    assert page.locator("#jobs img").count() == 0
    assert page.evaluate("window.__xss") is None and page.dialogs == []
    lr = page.locator(f"tr[data-job-id='{board_home.lr_job}']")
    assert lr.get_attribute("data-status") == "success"
    assert "host 10000" in lr.text_content() and "guest:9999" in lr.text_content()

    page.select_option("select[name=role]", "host")
    page.click("#apply-filters")
    wait_rows(page, [board_home.lr_job])
    assert "role=host" in page.url
    page.click("#reset-filters")
    wait_rows(page, [board_home.lr_job, board_home.reader_job])
    page.fill("input[name=q]", board_home.reader_job)
    page.click("#apply-filters")
    wait_rows(page, [board_home.reader_job])
    page.select_option("select[name=status]", "failed")
    page.click("#apply-filters")
    wait_rows(page, [])
    page.click("#reset-filters")
    wait_rows(page, [board_home.lr_job, board_home.reader_job])
    created = datetime.fromisoformat(board_home.flow.ok("job", "query", "-j", board_home.lr_job)["created"])
    day = created.astimezone(timezone.utc).date()
    page.fill("input[name=since]", day.isoformat())
    page.fill("input[name=until]", day.isoformat())  # the chosen day is included
    page.click("#apply-filters")
    wait_rows(page, [board_home.lr_job, board_home.reader_job])
    page.fill("input[name=since]", (day + timedelta(days=1)).isoformat())
    page.fill("input[name=until]", "")
    page.click("#apply-filters")
    wait_rows(page, [])
    page.screenshot(path=shots / "jobs_filtered.png", full_page=True)
    assert page.errors == []


def test_job_page_dag_roc_and_model(page, board_home: BoardHome, shots: Path):
    flow, job = board_home.flow, board_home.lr_job
    log_in(page, board_home)
    page.click(f"a.job-link:text-is('{job}')")
    page.wait_for_selector("body[data-loaded]")
    components = [c["component_name"] for c in flow.ok("component", "list", "-j", job)["components"]]
    nodes = page.evaluate("window.fedweaveBoard.cy.nodes().map(n => [n.id(), n.data('state')])")
    assert sorted(nodes) == sorted([c, "success"] for c in components)
    edges = page.evaluate("window.fedweaveBoard.cy.edges().map(e => [e.source().id(), e.target().id()])")
    assert ["hetero_lr_0", "evaluation_0"] in edges and len(edges) == len(components) - 1
    page.screenshot(path=shots / "job.png", full_page=True)

    open_component(page, "evaluation_0", "guest 9999", "metrics")
    metrics = flow.ok("tracking", "metrics", "-j", job, "-r", "guest", "-p", "9999", "-cpn", "evaluation_0")
    evaluation = metrics["evaluation"]
    shown = page.locator("#metrics-table tr[data-name=auc] td.metric-value").text_content()
    assert float(shown) == evaluation["auc"]
    roc = page.evaluate("""() => { const o = window.fedweaveBoard.charts.roc.getOption();
                                   return {title: o.title[0].text, points: o.series[0].data}; }""")
    assert roc["points"] == [[x, y] for x, y in zip(evaluation["roc_curve"]["fpr"], evaluation["roc_curve"]["tpr"])]
    assert f"{evaluation['auc']:.4f}" in roc["title"]
    assert page.locator("#chart-roc canvas").count() >= 1 and page.locator("#chart-ks canvas").count() >= 1
    page.screenshot(path=shots / "evaluation.png", full_page=True)

    open_component(page, "hetero_lr_0", "guest 9999", "model")
    model = flow.ok("tracking", "output-model", "-j", job, "-r", "guest", "-p", "9999", "-cpn", "hetero_lr_0")["model"]
    rows = page.eval_on_selector_all("#weights-table tbody tr", "rows => rows.map(r => [r.dataset.feature, "
                                     "r.querySelector('.weight').textContent])")
    assert [(f, float(w)) for f, w in rows if f != "(intercept)"] == list(zip(model["header"], model["weights"]))
    assert dict(rows)["(intercept)"] and float(dict(rows)["(intercept)"]) == model["intercept"]
    page.screenshot(path=shots / "hetero_lr_model.png", full_page=True)

    open_component(page, "hetero_lr_0", "guest 9999", "data")
    data = flow.ok("tracking", "output-data", "-j", job, "-r", "guest", "-p", "9999", "-cpn", "hetero_lr_0",
                   "--limit", "3")[0]
    first = page.eval_on_selector_all(".data-table tbody tr", "rows => rows.slice(0, 3).map(r => "
                                      "[...r.cells].map(c => c.textContent))")
    assert [[str(v) for v in row] for row in data["rows"]] == [[c if i == 0 else str(float(c)) if c else c
                                                               for i, c in enumerate(r)] for r in first]
    open_component(page, "hetero_lr_0", "guest 9999", "logs")
    page.wait_for_selector("#log-lines[data-ended=true]", state="attached")
    assert "[guest 9999 hetero_lr_0]" in page.locator("#log-lines").text_content()
    assert page.errors == [] and page.dialogs == []


def test_a_new_job_arrives_live_without_reloading(page, board_home: BoardHome, tmp_path: Path, shots: Path):
    log_in(page, board_home)
    page.evaluate("window.__sameDocument = true")
    job = board_home.flow.ok("job", "submit", *sum((["-c", c] if i == 0 else ["-d", c]
                                                    for i, c in enumerate(board_home.reader_conf(tmp_path))), []),
                             "--description", "arrives live")["job_id"]
    page.wait_for_selector(f"tr[data-job-id='{job}'][data-status=success]", timeout=120_000)
    assert page.evaluate("window.__sameDocument") is True  # the same page: no reload
    page.screenshot(path=shots / "live.png", full_page=True)


def test_no_session_no_data(chromium, board_home: BoardHome):
    context = chromium.new_context()
    try:
        page = context.new_page()
        for path in ("/board/api/jobs", f"/board/api/jobs/{board_home.lr_job}", "/board/api/events"):
            res = page.request.get(board_home.base + path)
            assert res.status == 401, path
        page.goto(f"{board_home.base}/jobs/{board_home.lr_job}")
        assert page.url.endswith("/login")
    finally:
        context.close()


def test_stop_a_running_job_from_its_page(page, board_home: BoardHome, tmp_path: Path, shots: Path):
    conf, dsl = load_example("hetero_lr")
    conf["component_parameters"]["common"]["hetero_lr_0"].update(
        max_iter=1000, tol=1e-12, encrypt_param={"key_length": 512, "allow_short_key": True})
    c, d = write_job(tmp_path, conf, dsl, "long")
    job = board_home.flow.ok("job", "submit", "-c", c, "-d", d, "--description", "stopped from the board")["job_id"]
    log_in(page, board_home)
    page.goto(f"{board_home.base}/jobs/{job}")
    page.wait_for_selector("body[data-loaded]")
    assert page.evaluate("window.fedweaveBoard.page.job.final") is False  # a thousand encrypted iterations
    page.evaluate("window.__sameDocument = true")
    # the page follows the job: HeteroLR's row turns running without a reload
    page.wait_for_selector("#states tr[data-component=hetero_lr_0][data-state=running]", timeout=120_000)
    node = page.evaluate("window.fedweaveBoard.cy.getElementById('hetero_lr_0').data('state')")
    assert node == "running"
    page.click("#stop")
    page.wait_for_selector("#job-status .s-canceled", timeout=120_000)
    assert page.evaluate("window.__sameDocument") is True
    assert board_home.flow.ok("job", "query", "-j", job)["status"] == "canceled"
    states = page.evaluate("window.fedweaveBoard.cy.nodes().map(n => n.data('state'))")
    assert "running" not in states and "waiting" not in states
    assert page.locator("#stop").is_hidden()
    page.screenshot(path=shots / "stopped.png", full_page=True)


def _save_note(page, job: str, text: str) -> None:
    row = f"tr[data-job-id='{job}']"
    page.click(f"{row} button.note-edit")
    page.fill(f"{row} input.note-input", text)
    page.click(f"{row} button.note-save")
    page.wait_for_function("([sel, t]) => document.querySelector(sel + ' .note-text')?.textContent === t",
                           arg=[row, text])


def test_jobs_paging_sorting_notes_and_clone(page, board_home: BoardHome, shots: Path):
    flow = board_home.flow
    listed = [j["job_id"] for j in flow.ok("job", "list", "-l", "1000")]
    log_in(page, board_home)
    page.goto(board_home.base + "/?limit=1")
    page.wait_for_selector("body[data-loaded]")
    pages = []
    for i in range(len(listed)):
        wait_rows(page, [listed[i]])
        assert page.locator("#range").text_content() == f"{i + 1}–{i + 1} of {len(listed)}"
        pages.append(job_ids(page)[0])
        if i + 1 < len(listed):
            page.click("#next-page")
    assert pages == listed and page.locator("#next-page").is_disabled()

    page.goto(board_home.base + "/")
    wait_rows(page, listed)
    page.click("button.sort[data-sort=duration]")  # longest first, then shortest first
    for order in ("desc", "asc"):
        page.wait_for_function("o => new URLSearchParams(location.search).get('order') === o && "
                               "document.querySelector('th[aria-sort]:not([aria-sort=none]) button')?.dataset.sort "
                               "=== 'duration'", arg=order)
        wait_rows(page, listed)
        # the rows are the same set in either order: wait for the re-ordered table, not just the URL
        durations = ("() => [...document.querySelectorAll('#jobs tbody td.duration')]"
                     ".map(x => x.dataset.seconds).filter(s => s).map(Number)")
        page.wait_for_function(f"o => {{ const s = ({durations})(); return s.length >= 2 && "
                               "s.every((v, i) => i === 0 || (o === 'asc' ? s[i - 1] <= v : s[i - 1] >= v)); }",
                               arg=order)
        seconds = [float(s) for s in page.eval_on_selector_all("#jobs tbody td.duration", "c => c.map(x => "
                                                                "x.dataset.seconds)") if s]
        assert seconds == sorted(seconds, reverse=order == "desc") and len(seconds) >= 2
        if order == "desc":
            page.click("button.sort[data-sort=duration]")

    note = "<script>window.__xss = 2</script> checked"  # shown as text, never run
    before = flow.ok("job", "query", "-j", board_home.lr_job)["description"]
    try:
        _save_note(page, board_home.lr_job, note)
        assert flow.ok("job", "query", "-j", board_home.lr_job)["description"] == note
        assert page.locator("#jobs script").count() == 0 and page.evaluate("window.__xss") is None
        page.screenshot(path=shots / "jobs_note.png", full_page=True)
    finally:
        _save_note(page, board_home.lr_job, before)

    page.click(f"tr[data-job-id='{board_home.lr_job}'] a.clone")
    page.wait_for_selector("body.builder[data-loaded]")
    nodes = page.evaluate("window.fedweaveBuilder.cy.nodes().map(n => n.id())")
    components = [c["component_name"] for c in flow.ok("component", "list", "-j", board_home.lr_job)["components"]]
    assert sorted(nodes) == sorted(components)
    assert page.errors == [] and page.dialogs == []


def test_rerun_from_a_chosen_component(page, board_home: BoardHome, tmp_path: Path):
    flow = board_home.flow
    conf, dsl = board_home.reader_conf(tmp_path)
    job = flow.ok("job", "submit", "-c", conf, "-d", dsl, "--description", "rerun me", "--wait")["job_id"]
    before = {t["component"]: t for t in flow.ok("job", "query", "-j", job)["tasks"]}
    log_in(page, board_home)
    page.goto(f"{board_home.base}/jobs/{job}")
    page.wait_for_selector("body[data-loaded]")
    assert page.eval_on_selector_all("#rerun-from option", "o => o.map(x => x.value)") == [
        "", "reader_0", "data_transform_0"]
    page.select_option("#rerun-from", "data_transform_0")
    page.click("#rerun")
    page.wait_for_function("() => window.fedweaveBoard.page.job.status !== 'success' || "
                           "document.getElementById('message').textContent", timeout=120_000)
    assert page.locator("#message").text_content() == ""
    final = flow.wait(job)
    assert final["attempt"] == 1 and final["status"] == "success"
    page.wait_for_selector("#job-status .s-success", state="attached", timeout=120_000)
    after = {t["component"]: t for t in final["tasks"]}
    assert after["reader_0"]["started"] == before["reader_0"]["started"]  # upstream of the choice: kept
    assert after["data_transform_0"]["started"] > before["data_transform_0"]["ended"]
    assert page.errors == []
