"""The board's fixtures: a home with two finished jobs (examples/hetero_lr with 512-bit
keys, and a guest-only Reader job whose description is an XSS probe), its flow server in
this process, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from flow.core.settings import ServiceConf
from tests.conftest import service_unavailable
from tests.e2e.conftest import EXAMPLES, FlowCLI, load_example
from tests.served import Served

TOKEN = "board-test-token"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: a job description that would run script if the board rendered it as HTML
XSS = '<img src=x onerror="window.__xss=1;alert(1)">'


@dataclass
class BoardHome:
    flow: FlowCLI
    base: str
    served: Served
    lr_job: str
    reader_job: str
    tmp: Path

    def tree_job(self) -> str:
        """The binning/selection/scale/SecureBoost job, run once when a test first asks."""
        if not getattr(self, "_tree_job", None):
            conf, dsl = tree_job_files()
            (self.tmp / "tree_conf.json").write_text(json.dumps(conf))
            (self.tmp / "tree_dsl.json").write_text(json.dumps(dsl))
            self._tree_job = _submit(self.flow, self.tmp / "tree_conf.json", self.tmp / "tree_dsl.json", "trees")
        return self._tree_job

    def reader_conf(self, tmp: Path) -> tuple[Path, Path]:
        """A guest-only job: Reader then DataTransform on the guest's table (a few seconds)."""
        conf = {"dsl_version": 2, "initiator": {"role": "guest", "party_id": 9999}, "role": {"guest": [9999]},
                "component_parameters": {"role": {"guest": {"0": {
                    "reader_0": {"table": {"name": "breast_hetero_guest", "namespace": "experiment"}},
                    "data_transform_0": {"with_label": True, "label_name": "y", "output_format": "dense"}}}}}}
        dsl = {"components": {
            "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
            "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                                 "output": {"data": ["data"], "model": ["model"]}}}}
        c, d = tmp / "reader_conf.json", tmp / "reader_dsl.json"
        c.write_text(json.dumps(conf))
        d.write_text(json.dumps(dsl))
        return c, d


def lr_job_files() -> tuple[dict, dict]:
    """examples/hetero_lr, shortened: 3 iterations with 512-bit keys, validated on its
    training rows after every iteration (so the board has validation curves to draw)."""
    conf, dsl = load_example("hetero_lr")
    conf, dsl = copy.deepcopy(conf), copy.deepcopy(dsl)
    conf["component_parameters"]["common"]["hetero_lr_0"].update(
        max_iter=3, validation_freqs=1, metrics=["auc", "ks"],
        encrypt_param={"key_length": 512, "allow_short_key": True})
    dsl["components"]["hetero_lr_0"]["input"]["data"]["validate_data"] = ["feature_scale_0.data"]
    return conf, dsl


def tree_job_files() -> tuple[dict, dict]:
    """examples/binning_selection_lr with SecureBoost (3 trees of depth 3, 512-bit keys) in
    place of HeteroLR: binning, selection, scale and tree models on one job."""
    conf, dsl = load_example("binning_selection_lr")
    conf, dsl = copy.deepcopy(conf), copy.deepcopy(dsl)
    common = conf["component_parameters"]["common"]
    common["hetero_feature_binning_0"]["encrypt_param"] = {"key_length": 512, "allow_short_key": True}
    common["hetero_feature_selection_0"]["iv_top_k_param"] = {"k": 16}
    del common["hetero_lr_0"]
    common["hetero_secureboost_0"] = {
        "task_type": "classification", "num_trees": 3, "bin_num": 16,
        "tree_param": {"max_depth": 3}, "encrypt_param": {"key_length": 512, "allow_short_key": True}}
    body = dsl["components"].pop("hetero_lr_0")
    dsl["components"]["hetero_secureboost_0"] = {**body, "module": "HeteroSecureBoost"}
    dsl["components"]["evaluation_0"]["input"]["data"]["data"] = ["hetero_secureboost_0.data"]
    return conf, dsl


def _submit(flow: FlowCLI, conf: Path, dsl: Path, description: str) -> str:
    job = flow.ok("job", "submit", "-c", conf, "-d", dsl, "--description", description, "--wait")
    assert job["status"] == "success", job
    return job["job_id"]


@pytest.fixture(scope="package")
def board_home(tmp_path_factory) -> Iterator[BoardHome]:
    home = tmp_path_factory.mktemp("board_home")
    tmp = tmp_path_factory.mktemp("board_jobs")
    flow = FlowCLI(home)
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    conf, dsl = lr_job_files()
    (tmp / "lr_conf.json").write_text(json.dumps(conf))
    (tmp / "lr_dsl.json").write_text(json.dumps(dsl))
    lr_job = _submit(flow, tmp / "lr_conf.json", tmp / "lr_dsl.json", "hetero lr on breast")
    board = BoardHome(flow, "", None, lr_job, "", tmp)  # type: ignore[arg-type]
    board.reader_job = _submit(flow, *board.reader_conf(tmp), XSS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOW_HOME", str(home))
        mp.delenv("FEDWEAVE_SERVICE_CONF", raising=False)
        board.served = Served(ServiceConf(), TOKEN)
        board.base = f"http://127.0.0.1:{board.served.port}"
        try:
            yield board
        finally:
            board.served.stop()


@pytest.fixture(scope="package")
def chromium():
    """Debian's Chromium under Playwright (its own browser download cannot be reached)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_unavailable("playwright (pip install -e '.[test]')")
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        service_unavailable("chromium (bash tests/services_browser.sh)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where a test keeps its screenshots (the test's pytest tmp dir)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


@pytest.fixture
def page(chromium, board_home: BoardHome):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    try:
        yield page
    finally:
        context.close()


def log_in(page, board: BoardHome) -> None:
    page.goto(board.base + "/")
    assert page.url.endswith("/login")
    page.fill("#token", TOKEN)
    page.click("#login-button")
    page.wait_for_selector("#jobs tbody tr[data-job-id]")
