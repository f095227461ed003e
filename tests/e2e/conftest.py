"""End-to-end fixtures: a private FLOW_HOME and the real `flow` CLI in a subprocess."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass
class FlowResult:
    code: int
    out: dict
    err: str

    @property
    def data(self):
        return self.out.get("data")


class FlowCLI:
    def __init__(self, home: Path):
        self.home = home
        self.env = dict(os.environ, FLOW_HOME=str(home))
        self.env.pop("FEDWEAVE_SERVICE_CONF", None)

    def __call__(self, *args: str, timeout: float = 600) -> FlowResult:
        proc = subprocess.run([sys.executable, "-m", "flow.cli.main", *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        try:
            out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except json.JSONDecodeError:
            out = {"raw": proc.stdout}
        return FlowResult(proc.returncode, out, proc.stderr)

    def ok(self, *args: str, timeout: float = 600) -> dict:
        res = self(*args, timeout=timeout)
        assert res.code == 0, f"flow {' '.join(map(str, args))} exited {res.code}: {res.err}\n{res.out}"
        return res.data

    def upload(self, path: Path, name: str, label: str | None = None, namespace: str = "experiment") -> dict:
        extra = ["--label-column", label] if label else []
        return self.ok("data", "upload", "-f", path, "--namespace", namespace, "--name", name, *extra)

    def wait(self, job_id: str, timeout: float = 600) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            detail = self.ok("job", "query", "-j", job_id)
            if detail["status"] in ("success", "failed", "canceled", "timeout"):
                return detail
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s")


@pytest.fixture
def flow(tmp_path: Path) -> FlowCLI:
    home = tmp_path / "flow_home"
    home.mkdir()
    return FlowCLI(home)


def load_example(name: str) -> tuple[dict, dict]:
    folder = EXAMPLES / name
    return json.loads((folder / "conf.json").read_text()), json.loads((folder / "dsl.json").read_text())


def write_job(tmp_path: Path, conf: dict, dsl: dict, tag: str = "job") -> tuple[Path, Path]:
    c, d = tmp_path / f"{tag}_conf.json", tmp_path / f"{tag}_dsl.json"
    c.write_text(json.dumps(conf))
    d.write_text(json.dumps(dsl))
    return c, d


def with_lr_params(conf: dict, **params) -> dict:
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"]["hetero_lr_0"].update(params)
    return conf


@pytest.fixture
def breast(flow: FlowCLI) -> FlowCLI:
    """A FLOW_HOME with the breast_hetero tables uploaded."""
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    return flow
