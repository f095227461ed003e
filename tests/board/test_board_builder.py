"""The builder in a real browser: Reader → DataTransform → Intersection → HeteroLR →
Evaluation dragged from the palette and connected with the mouse, a refused connection,
the host's table left out and the validator's own line shown on that field, fixed,
exported (the files pass `flow job validate`) and submitted (the job succeeds); a job
written by hand opened in the builder exports back to its own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import BoardHome, log_in, lr_job_files

pytestmark = pytest.mark.e2e

PROBE = '<img src=x onerror="window.__xss=4">'
CHAIN = [("Reader", 90), ("DataTransform", 170), ("Intersection", 250), ("HeteroLR", 330), ("Evaluation", 410)]


def canvas_point(page, node: str) -> tuple[float, float]:
    box = page.locator("#canvas").bounding_box()
    at = page.evaluate("id => window.fedweaveBuilder.cy.getElementById(id).renderedPosition()", node)
    return box["x"] + at["x"], box["y"] + at["y"]


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def drop_module(page, module: str, y: float) -> None:
    source = page.locator(f".palette-item[data-module={module}]")
    source.scroll_into_view_if_needed()
    item = source.bounding_box()
    box = page.locator("#canvas").bounding_box()
    drag(page, (item["x"] + item["width"] / 2, item["y"] + item["height"] / 2), (box["x"] + 260, box["y"] + y))


def connect(page, source: str, target: str, kind: str = "data") -> None:
    page.select_option("#edge-kind", kind)
    drag(page, canvas_point(page, source), canvas_point(page, target))


def select_node(page, node: str, scope: str = "common") -> None:
    page.click("#mode-move")
    page.mouse.click(*canvas_point(page, node))
    page.wait_for_function("n => document.getElementById('node-name').textContent === n", arg=node)
    page.select_option("#param-scope", scope)


def set_param(page, field: str, value: str) -> None:
    target = page.locator(f"#param-form [id='param-{field}']")
    if target.evaluate("e => e.tagName") == "SELECT":
        target.select_option(json.dumps(json.loads(value)))
    else:
        target.fill(value)
        target.press("Tab")  # the change event


def validated(page) -> bool:
    page.wait_for_selector("body[data-validated]:not([data-validated=''])", state="attached")
    return page.evaluate("document.body.dataset.valid") == "true"


def test_compose_validate_fix_export_submit(page, board_home: BoardHome, tmp_path: Path, shots: Path):
    flow = board_home.flow
    log_in(page, board_home)
    page.goto(board_home.base + "/builder")
    page.wait_for_selector("body[data-loaded]")
    listed = {m["module"] for m in flow.ok("module", "list")}
    assert set(page.eval_on_selector_all(".palette-item", "e => e.map(x => x.dataset.module)")) == listed
    for module, y in CHAIN:
        drop_module(page, module, y)
    names = ["reader_0", "data_transform_0", "intersection_0", "hetero_lr_0", "evaluation_0"]
    assert sorted(page.evaluate("window.fedweaveBuilder.cy.nodes().map(n => n.id())")) == sorted(names)

    page.click("#mode-connect")
    connect(page, "reader_0", "hetero_lr_0", "model")  # a Reader has no model: refused, nothing drawn
    assert "reader_0 (Reader) has no model output" in page.locator("#message").text_content()
    assert page.evaluate("window.fedweaveBuilder.cy.edges().length") == 0
    for source, target in zip(names, names[1:]):
        connect(page, source, target)
    edges = page.evaluate("window.fedweaveBuilder.cy.edges().map(e => [e.source().id(), e.target().id(), "
                          "e.data('kind'), e.data('port')])")
    assert sorted(edges) == sorted([[s, t, "data", "train_data" if t == "hetero_lr_0" else "data"]
                                    for s, t in zip(names, names[1:])])

    for role, ids in (("guest", "9999"), ("host", "10000"), ("arbiter", "10000")):
        page.fill(f"#role-{role}", ids)
    page.fill("#initiator-party", "9999")
    page.press("#initiator-party", "Tab")
    select_node(page, "reader_0", "guest:0")
    set_param(page, "table.name", "breast_hetero_guest")
    set_param(page, "table.namespace", "experiment")  # the host's table: left out
    select_node(page, "data_transform_0", "guest:0")
    set_param(page, "with_label", "true")
    set_param(page, "label_name", "y")
    select_node(page, "data_transform_0", "host:0")
    set_param(page, "with_label", "false")
    select_node(page, "hetero_lr_0")
    set_param(page, "max_iter", "3")
    set_param(page, "encrypt_param.key_length", "512")
    set_param(page, "encrypt_param.allow_short_key", "true")
    select_node(page, "evaluation_0", "host:0")
    set_param(page, "need_run", "false")

    assert validated(page) is False
    page.click("#export")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "conf.json").write_text(page.locator("#conf-json").text_content())
    (broken / "dsl.json").write_text(page.locator("#dsl-json").text_content())
    cli = flow("job", "validate", "-c", broken / "conf.json", "-d", broken / "dsl.json")
    assert cli.code == 2
    expected = [line.replace(str(broken / "conf.json"), "conf.json") for line in cli.err.splitlines()
                if "reader_0.table" in line]
    assert len(expected) == 1 and "required parameter not set for host party 0" in expected[0]
    select_node(page, "reader_0", "host:0")
    shown = page.locator("#param-form .field[data-field=table] .field-problem").text_content()
    assert shown == expected[0]
    assert page.evaluate("window.fedweaveBuilder.cy.getElementById('reader_0').hasClass('invalid')") is True
    page.screenshot(path=shots / "builder_invalid.png", full_page=True)

    set_param(page, "table.name", "breast_hetero_host")
    set_param(page, "table.namespace", "experiment")
    assert validated(page) is True
    select_node(page, "data_transform_0", "guest:0")
    set_param(page, "label_name", PROBE)  # a value that is markup: the validator's line shows it as text
    assert validated(page) is False
    assert PROBE in page.locator("#param-form .field[data-field=label_name] .field-problem").text_content()
    assert page.locator("main img").count() == 0 and page.evaluate("window.__xss") is None
    set_param(page, "label_name", "y")
    assert validated(page) is True
    assert page.locator("#param-form .field-problem:not(:empty)").count() == 0
    page.fill("#description", "built in the board")
    page.click("#export")
    for name in ("dsl", "conf"):
        with page.expect_download() as download:
            page.click(f"#download-{name}")
        download.value.save_as(tmp_path / f"{name}.json")
    flow.ok("job", "validate", "-c", tmp_path / "conf.json", "-d", tmp_path / "dsl.json")
    page.screenshot(path=shots / "builder_valid.png", full_page=True)

    page.click("#submit")
    page.wait_for_selector("body[data-submitted]", state="attached")
    job_id = page.evaluate("document.body.dataset.submitted")
    detail = flow.wait(job_id)
    assert detail["status"] == "success" and detail["description"] == "built in the board"
    assert page.errors == [] and page.dialogs == []


def test_a_job_written_by_hand_opens_and_exports_back(page, board_home: BoardHome, shots: Path):
    log_in(page, board_home)
    page.goto(f"{board_home.base}/builder?job={board_home.lr_job}")
    page.wait_for_selector("body[data-loaded]")
    assert validated(page) is True
    assert page.locator("#description").input_value() == "hetero lr on breast"
    page.click("#export")
    # the same two files: the builder reads and writes FATE's DSL v2 as people write it
    assert json.loads(page.locator("#dsl-json").text_content()) == lr_job_files()[1]
    assert json.loads(page.locator("#conf-json").text_content()) == lr_job_files()[0]
    page.screenshot(path=shots / "builder_opened.png", full_page=True)
    assert page.errors == []
