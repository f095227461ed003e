"""End-to-end fixtures: a private FLOW_HOME and the real `flow` CLI in a subprocess."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
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
    """The real `flow` command in a subprocess, against a private FLOW_HOME."""

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

    def models(self, job_id: str, component: str,
               parties: tuple[tuple[str, str], ...] = (("guest", "9999"), ("host", "10000"))) -> dict[str, dict]:
        """Each party's model of ``component`` in the job, by role."""
        return {role: self.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid, "-cpn", component)
                ["model"] for role, pid in parties}  # fmt: skip

    def wait(self, job_id: str, timeout: float = 600) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            detail = self.ok("job", "query", "-j", job_id)
            if detail["status"] in ("success", "failed", "canceled", "timeout"):
                return detail
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s")


class InProcessCLI(FlowCLI):
    """The real `flow` command run in this process (click's runner): no interpreter start
    per command (commands load their own modules: flow.cli.main.COMMANDS)."""

    def __call__(self, *args: str, timeout: float = 600) -> FlowResult:
        from click.testing import CliRunner

        from flow.cli.main import cli

        env = {"FLOW_HOME": str(self.home), "FEDWEAVE_SERVICE_CONF": None}
        res = CliRunner(env=env).invoke(cli, [str(a) for a in args], catch_exceptions=False)
        try:
            out = json.loads(res.stdout) if res.stdout.strip() else {}
        except json.JSONDecodeError:
            out = {"raw": res.stdout}
        return FlowResult(res.exit_code, out, res.stderr)


@pytest.fixture(scope="session")
def suite_run(tmp_path_factory):
    """``suite_run(name)``: FATE's suite ``name`` run once per session (tests/fate_examples.py)."""
    from tests.fate_examples import SuiteRuns

    return SuiteRuns(tmp_path_factory.mktemp("fate_suites"))


@pytest.fixture
def flow(tmp_path: Path) -> FlowCLI:
    home = tmp_path / "flow_home"
    home.mkdir()
    return FlowCLI(home)


def load_example(name: str) -> tuple[dict, dict]:
    folder = EXAMPLES / name
    return json.loads((folder / "conf.json").read_text()), json.loads((folder / "dsl.json").read_text())


def joined(name: str, standardise: bool = False) -> tuple[list[str], np.ndarray, np.ndarray, list[str], list[str]]:
    """examples/data/<name>_{guest,host}.csv joined centrally: ids (sorted), X = [guest
    features | host features] (z-scored if asked, as FeatureScale's standard_scale), y,
    and the guest's and the host's feature names."""
    def read(suffix: str) -> tuple[list[str], dict[str, list[str]]]:
        with (EXAMPLES / "data" / f"{name}_{suffix}.csv").open() as fh:
            rows = list(csv.reader(fh))
        return rows[0], {r[0]: r[1:] for r in rows[1:]}

    g_head, guest = read("guest")
    h_head, host = read("host")
    ids = sorted(set(guest) & set(host))
    y = np.array([float(guest[i][0]) for i in ids])
    x = np.array([[float(v) for v in guest[i][1:]] + [float(v) for v in host[i]] for i in ids])
    if standardise:
        x = (x - x.mean(0)) / x.std(0)
    return ids, x, y, g_head[2:], h_head[1:]


def write_job(tmp_path: Path, conf: dict, dsl: dict, tag: str = "job") -> tuple[Path, Path]:
    c, d = tmp_path / f"{tag}_conf.json", tmp_path / f"{tag}_dsl.json"
    c.write_text(json.dumps(conf))
    d.write_text(json.dumps(dsl))
    return c, d


def with_lr_params(conf: dict, **params) -> dict:
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"]["hetero_lr_0"].update(params)
    return conf


#: the example tables most jobs here read: (file, table name, label column)
BREAST = ((EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", "y"),
          (EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host", None))


def upload_here(home: Path, tables: Iterable[tuple[Path, str, str | None]], partitions: int | None = None) -> None:
    """Upload ``(file, name, label column)`` CSVs into ``home`` with ``flow data upload`` run in
    this process (:class:`InProcessCLI`): set-up for a test whose subject is a job, without a
    CLI process (about a second) per table."""
    cli = InProcessCLI(home)
    for file, name, label in tables:
        cli.ok("data", "upload", "-f", file, "--namespace", "experiment", "--name", name,
               *(["--label-column", label] if label else []),
               *(["--partitions", str(partitions)] if partitions else []))


@pytest.fixture
def breast(flow: FlowCLI) -> FlowCLI:
    """A FLOW_HOME with the breast_hetero tables uploaded (:func:`upload_here`)."""
    upload_here(flow.home, BREAST)
    return flow
