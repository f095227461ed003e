"""The job page's result views in Chromium: Evaluation's PR, gain, lift and confusion charts
and HeteroLR's validation curves (each chart's series read back from its ECharts instance),
SecureBoost's trees and feature importance, binning WOE/IV, selection and scale tables
against `flow tracking output-model`, column statistics and the CSV download, and the log
pane's level filter, search and download. Screenshots are kept under each test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import BoardHome, log_in
from .test_board_browser import open_component
from .test_board_results_api import output_csv

pytestmark = pytest.mark.e2e


def series(page, chart: str, index: int = 0) -> list:
    return page.evaluate(f"window.fedweaveBoard.charts[{chart!r}].getOption().series[{index}].data")


def open_job(page, board: BoardHome, job: str) -> None:
    log_in(page, board)
    page.goto(f"{board.base}/jobs/{job}")
    page.wait_for_selector("body[data-loaded]")


def model_of(board: BoardHome, job: str, component: str, role: str = "guest", party: str = "9999") -> dict:
    return board.flow.ok("tracking", "output-model", "-j", job, "-r", role, "-p", party, "-cpn", component)["model"]


def test_evaluation_curves_and_validation_charts(page, board_home: BoardHome, shots: Path):
    flow, job = board_home.flow, board_home.lr_job
    open_job(page, board_home, job)
    open_component(page, "evaluation_0", "guest 9999", "metrics")
    page.wait_for_selector("#chart-confusion[data-threshold]")
    curves = page.evaluate("window.fedweaveBoard.curves")["evaluation"]
    metrics = flow.ok("tracking", "metrics", "-j", job, "-r", "guest", "-p", "9999", "-cpn", "evaluation_0")
    c = metrics["evaluation"]["confusion_matrix"]
    assert curves["confusion"] == c  # the same counts the API test checks against scikit-learn
    assert series(page, "pr") == [list(p) for p in zip(curves["pr"]["recall"], curves["pr"]["precision"])]
    assert series(page, "gain") == [list(p) for p in zip(curves["gain"]["fraction"], curves["gain"]["gain"])]
    assert series(page, "lift") == [list(p) for p in zip(curves["lift"]["fraction"], curves["lift"]["lift"])]
    assert sorted(series(page, "confusion")) == sorted([[0, 1, c["tn"]], [1, 1, c["fp"]], [0, 0, c["fn"]],
                                                        [1, 0, c["tp"]]])
    assert page.locator("#chart-pr canvas").count() == 1
    page.fill("#confusion-threshold", "0.3")
    page.dispatch_event("#confusion-threshold", "change")
    page.wait_for_function("() => document.querySelector('#chart-confusion').dataset.threshold !== '0.5'")
    low = page.evaluate("window.fedweaveBoard.curves")["evaluation"]["confusion"]
    assert low["threshold"] >= 0.3 and [1, 0, low["tp"]] in series(page, "confusion")
    page.screenshot(path=shots / "evaluation_curves.png", full_page=True)

    open_component(page, "hetero_lr_0", "guest 9999", "metrics")
    page.wait_for_selector("#chart-validate_iterations canvas")
    logged = flow.ok("tracking", "metrics", "-j", job, "-r", "guest", "-p", "9999", "-cpn",
                     "hetero_lr_0")["validate_iterations"]
    option = page.evaluate("(() => { const o = window.fedweaveBoard.charts.validate_iterations.getOption();"
                           " return o.series.map(s => [s.name, s.data]); })()")
    assert dict(option) == {name: [[i, v] for i, v in zip(curve["iteration"], curve["value"])]
                            for name, curve in logged.items()}
    assert len(logged["auc"]["value"]) == 3
    page.screenshot(path=shots / "validation.png", full_page=True)
    assert page.errors == []


def walk(n: dict, tree: dict, splits: list[dict], seen: list[int]) -> None:
    """Check a drawn tree node (and those under it) against the stored tree."""
    node = tree["nodes"][n["nodeId"]]
    seen.append(node["id"])
    if node["party"] is None:
        assert n["value"] == node["weight"] and not n.get("children")
    elif node["party"] == "guest":
        split = splits[node["split_id"]]
        assert (n["feature"], n["threshold"]) == (split["feature"], split["threshold"])
        assert n["name"].startswith(f"{split['feature']} ≤ ")
    else:  # a host's split: the party only, its feature and threshold stay there
        assert n["threshold"] is None and n["name"] == f"host {node['party']} split"
    for child, at in zip(n.get("children") or [], (node["left"], node["right"])):
        assert child["nodeId"] == at
        walk(child, tree, splits, seen)


def test_secureboost_binning_selection_and_scale_views(page, board_home: BoardHome, shots: Path):
    job = board_home.tree_job()
    open_job(page, board_home, job)
    open_component(page, "hetero_secureboost_0", "guest 9999", "model")
    model = model_of(board_home, job, "hetero_secureboost_0")
    page.wait_for_function("n => window.fedweaveBoard.charts.trees?.filter(Boolean).length === n",
                           arg=len(model["trees"]))
    for i, tree in enumerate(model["trees"]):
        root = page.evaluate(f"window.fedweaveBoard.charts.trees[{i}].getOption().series[0].data[0]")
        seen: list[int] = []
        walk(root, tree, model["splits"], seen)
        assert sorted(seen) == [n["id"] for n in tree["nodes"]]
    owners = {n["party"] for t in model["trees"] for n in t["nodes"]}
    assert {"guest", "10000"} <= owners  # both kinds of split drawn
    importance = model["feature_importance"]
    assert series(page, "importance") == [e["importance"] for e in reversed(importance)]
    assert page.locator("#chart-tree-0 canvas").count() == 1
    page.screenshot(path=shots / "secureboost_guest.png", full_page=True)

    open_component(page, "hetero_secureboost_0", "host 10000", "model")
    host = model_of(board_home, job, "hetero_secureboost_0", "host", "10000")
    rows = page.eval_on_selector_all("#splits-table tbody tr", "r => r.map(x => [...x.cells].map(c => c.textContent))")
    assert [(f, float(t)) for _, f, t, _ in rows] == [(s["feature"], s["threshold"]) for s in host["splits"]]
    assert page.locator(".tree-chart").count() == 0  # the trees are the guest's

    open_component(page, "hetero_feature_binning_0", "guest 9999", "model")
    binning = model_of(board_home, job, "hetero_feature_binning_0")["binning_result"]
    ivs = page.eval_on_selector_all("#binning-table tbody tr", "r => r.map(x => [x.dataset.feature, "
                                    "x.querySelector('.iv').textContent, x.querySelector('.woe').textContent])")
    assert {f: float(iv) for f, iv, _ in ivs} == {f: r["iv"] for f, r in binning.items()}
    assert all(woe.startswith("[") for _, _, woe in ivs)

    open_component(page, "hetero_feature_selection_0", "guest 9999", "model")
    selection = model_of(board_home, job, "hetero_feature_selection_0")
    shown = page.eval_on_selector_all("#selection-table tbody tr", "r => r.map(x => [x.dataset.column, "
                                      "x.dataset.kept, x.querySelector('.filter').textContent])")
    dropped = {c: step["method"] for step in selection["filter_results"] for c in step["filtered_out"]}
    assert {c for c, kept, _ in shown if kept == "true"} == set(selection["left_cols"])
    assert {c: f for c, kept, f in shown if kept == "false"} == dropped and dropped  # k=16 of 20 columns

    open_component(page, "feature_scale_0", "guest 9999", "model")
    scale = model_of(board_home, job, "feature_scale_0")
    cells = page.eval_on_selector_all("#scale-table tbody tr", "r => r.map(x => [x.dataset.column, "
                                      "Number(x.querySelector('[data-param=scale]').textContent)])")
    assert cells == [[c, s] for c, s in zip(scale["columns"], scale["scale"])]
    page.screenshot(path=shots / "scale.png", full_page=True)
    assert page.errors == []


def test_data_statistics_and_csv_download(page, board_home: BoardHome, tmp_path: Path, shots: Path):
    open_job(page, board_home, board_home.lr_job)
    open_component(page, "hetero_lr_0", "guest 9999", "data")
    stats = page.evaluate("window.fedweaveBoard.dataStats")[0]["columns"]
    shown = page.eval_on_selector_all(".stats-table tbody tr", "r => r.map(x => [x.dataset.column, "
                                      "x.querySelector('[data-stat=mean]').dataset.value, "
                                      "x.querySelector('[data-stat=std]').textContent])")
    assert [r[:2] for r in shown] == [[s["column"], "" if s["mean"] is None else str(s["mean"])] for s in stats]
    assert [float(r[2]) for r in shown] == [pytest.approx(s["std"], rel=1e-5) for s in stats]
    with page.expect_download() as info:
        page.click("a.csv-download")
    got = tmp_path / "board.csv"
    info.value.save_as(got)
    assert got.read_bytes() == output_csv(board_home, board_home.lr_job, "hetero_lr_0", tmp_path / "cli").read_bytes()
    page.screenshot(path=shots / "data.png", full_page=True)
    assert page.errors == []


def test_log_pane_filters_searches_and_downloads(page, board_home: BoardHome, tmp_path: Path):
    open_job(page, board_home, board_home.lr_job)
    open_component(page, "hetero_lr_0", "guest 9999", "logs")
    page.wait_for_selector("#log-lines[data-ended=true]", state="attached")
    every = page.locator("#log-lines").text_content().splitlines()
    assert len(every) > 3
    page.select_option("#log-level", "WARNING")
    warned = [line for line in every if " WARNING " in line or " ERROR " in line]
    assert page.locator("#log-lines").text_content().splitlines() == warned
    page.select_option("#log-level", "")
    page.fill("#log-search", "iteration")
    found = page.locator("#log-lines").text_content().splitlines()
    assert found == [line for line in every if "iteration" in line.lower()] and found
    with page.expect_download() as info:
        page.click("#log-download")
    saved = tmp_path / "log.txt"
    info.value.save_as(saved)
    assert saved.read_text().splitlines() == found
    assert page.errors == []
