"""FATE's own example suites (``../shared/fate-examples`` beside the checkout, or
``$FEDWEAVE_FATE_EXAMPLES``), read in place, never copied, and what the tests of them share:
the testsuite files, uploads through ``flow data upload -c``, the data files read centrally,
AUC, and one run of each suite per pytest session (:class:`SuiteRuns`) whose jobs every test
checks, so that each FATE task runs once in ``make test``.

The shared run shrinks each conf (:func:`shrink`): ``max_iter`` and ``num_trees`` to at most 2,
cross-validation to 2 folds and Paillier keys to 512 bits, and it reads the 30,000-row tables
in part (:data:`SAMPLED`); ``bench/fate_examples.py`` runs the suites at FATE's sizes.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pytest

from tests.conftest import service_unavailable

if TYPE_CHECKING:
    from flow.ops.suite import SuiteReport, TaskResult
    from tests.e2e.conftest import FlowCLI

ROOT = Path(__file__).resolve().parents[1]
GUEST = ("guest", "9999")


def fate_examples() -> Path:
    """The folder, or a failure in CI (a skip elsewhere) when it is not there."""
    for candidate in (os.environ.get("FEDWEAVE_FATE_EXAMPLES"), ROOT.parent / "shared" / "fate-examples",
                      "/work/shared/fate-examples"):
        if candidate and Path(candidate, "dsl").is_dir():
            return Path(candidate)
    service_unavailable("FATE's example suites (../shared/fate-examples or $FEDWEAVE_FATE_EXAMPLES)")
    raise AssertionError("unreachable")


def suite_path(suite: str) -> Path:
    """The suite's ``*_testsuite.json``."""
    (path,) = (fate_examples() / "dsl" / suite).glob("*_testsuite.json")
    return path


def read_suite(suite: str) -> dict[str, Any]:
    return json.loads(suite_path(suite).read_text())


def task_files(suite: str, task: str) -> tuple[Path, Path]:
    """The task's conf and dsl, in place."""
    spec = read_suite(suite)["tasks"][task]
    folder = fate_examples() / "dsl" / suite
    return folder / spec["conf"], folder / spec["dsl"]


def task_params(suite: str, task: str) -> dict[str, Any]:
    """The ``component_parameters.common`` of the task's conf as shipped."""
    return json.loads(task_files(suite, task)[0].read_text())["component_parameters"]["common"]


def data_file(file: str) -> Path:
    """An upload entry's ``file`` (FATE writes ``examples/data/x.csv``) in the examples folder."""
    return fate_examples() / file.removeprefix("examples/")


def upload(flow: FlowCLI, suite: str, tables: Iterable[str], tmp: Path) -> None:
    """Upload each named table with the suite's own upload entry, as FATE's flow does
    (``flow data upload -c``); a table several roles list is uploaded once."""
    wanted = set(tables)
    for entry in read_suite(suite)["data"]:
        if entry["table_name"] not in wanted:
            continue
        wanted.discard(entry["table_name"])
        conf = {k: v for k, v in entry.items() if k != "role"} | {"file": str(data_file(entry["file"]))}
        path = tmp / f"upload_{entry['table_name']}.json"
        path.write_text(json.dumps(conf))
        flow.ok("data", "upload", "-c", path)
    assert not wanted, f"not in the {suite} suite: {wanted}"


def table(name: str) -> tuple[list[str], dict[str, list[float]]]:
    """data/<name>.csv: the header after the id column, and id -> values (an empty cell: NaN)."""
    with open(fate_examples() / "data" / f"{name}.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0][1:], {r[0]: [float(v) if v.strip() else math.nan for v in r[1:]] for r in rows[1:]}


@dataclass(frozen=True)
class Joined:
    """<data>_hetero_guest and _host over the ids both hold (sorted as strings), centrally."""

    ids: list[str]
    gx: np.ndarray
    y: np.ndarray
    hx: np.ndarray
    gnames: list[str]
    hnames: list[str]


def joined(data: str) -> Joined:
    g_head, guest = table(f"{data}_hetero_guest")
    h_head, host = table(f"{data}_hetero_host")
    ids = sorted(guest.keys() & host.keys())
    return Joined(ids, np.array([guest[i][1:] for i in ids]), np.array([guest[i][0] for i in ids]),
                  np.array([host[i] for i in ids]), g_head[1:], h_head)


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """The probability that a positive scores above a negative (ties count half)."""
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


#: FATE's tables the session's run reads in part: file stem -> k, for one id in k. The ids are
#: picked by their CRC-32, so every party keeps the same ones and the intersection is as large.
#: default_credit's 30,000 rows cost over a minute of RSA, Paillier and binning per task; the
#: binning takes exact quantiles (``compress_thres`` is inert), so 3,000 rows run the same code.
SAMPLED: dict[str, int] = {"default_credit_hetero_guest": 10, "default_credit_hetero_host": 10}


def sampled_data(root: Path) -> Path:
    """``root/data/<stem>.csv`` for each :data:`SAMPLED` table (written once), to be found before
    FATE's own files (the runner's ``data_base_dir``); the other tables are read in place."""
    for stem, k in SAMPLED.items():
        path = root / "data" / f"{stem}.csv"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(fate_examples() / "data" / f"{stem}.csv", newline="") as src:
            rows = list(csv.reader(src))
        kept = [r for r in rows[1:] if zlib.crc32(r[0].encode()) % k == 0]
        with open(path, "w", newline="") as out:
            csv.writer(out).writerows([rows[0], *kept])
    return root


def shrink(conf: dict[str, Any]) -> dict[str, Any]:
    """The conf with at most 2 iterations / trees / cross-validation folds and 512-bit Paillier
    keys (the tests' run only)."""
    conf = copy.deepcopy(conf)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("max_iter", "num_trees") and isinstance(value, int) and value > 2:
                    node[key] = 2
                elif key == "encrypt_param" and isinstance(value, dict) and "key_length" in value:
                    value.update(key_length=512, allow_short_key=True)
                elif (key == "cv_param" and isinstance(value, dict) and value.get("need_cv")
                      and isinstance(value.get("n_splits"), int) and value["n_splits"] > 2):
                    value["n_splits"] = 2
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(conf)
    return conf


@dataclass
class SuiteRun:
    """One suite run by :class:`flow.ops.suite.SuiteRunner` in its own home."""

    path: Path
    flow: FlowCLI
    report: SuiteReport

    def result(self, task: str) -> TaskResult:
        found = [t for t in self.report.tasks if t.task == task]
        assert found, f"{self.report.suite}: no task {task}"
        return found[0]

    def job(self, task: str) -> str:
        """The job id of the task, which must have succeeded."""
        res = self.result(task)
        assert res.status == "success" and res.job_id, (
            f"{self.report.suite}/{task}: {res.status} job {res.job_id}: {res.reason[:600]}")
        return res.job_id

    def params(self, job_id: str, component: str, role: str = GUEST[0], party: str = GUEST[1]) -> dict[str, Any]:
        """The parameters the component ran with (the shrunk ones), by ``flow component parameters``."""
        return self.flow.ok("component", "parameters", "-j", job_id, "-r", role, "-p", party,
                            "-cpn", component)["parameters"]

    def metrics(self, job_id: str, component: str, role: str = GUEST[0], party: str = GUEST[1]) -> dict[str, Any]:
        return self.flow.ok("tracking", "metrics", "-j", job_id, "-r", role, "-p", party, "-cpn", component)

    def download(self, job_id: str, role: str, party: str, component: str, where: Path) -> Path:
        """The component's output data, downloaded to a CSV file under ``where``."""
        items = self.flow.ok("tracking", "output-data", "-j", job_id, "-r", role, "-p", party, "-cpn", component,
                             "-o", where)
        return Path(items[0]["file"])

    def output(self, job_id: str, role: str, party: str, component: str, where: Path) -> list[dict[str, str]]:
        """The component's output data rows, by column name."""
        with open(self.download(job_id, role, party, component, where), newline="") as fh:
            return list(csv.DictReader(fh))


@dataclass
class SuiteRuns:
    """``suite_run(name)``: the suite run once per session, on first use, in ``root/<name>``."""

    root: Path
    runs: dict[str, SuiteRun | BaseException] = field(default_factory=dict)

    def __call__(self, suite: str) -> SuiteRun:
        if suite not in self.runs:
            try:
                self.runs[suite] = self._run(suite)
            except Exception as exc:  # one failure, reported to every test of the suite
                self.runs[suite] = exc
        run = self.runs[suite]
        if isinstance(run, BaseException):
            raise run
        return run

    def _run(self, suite: str) -> SuiteRun:
        from flow.core.settings import load_service_conf
        from flow.ops.local import LocalOps
        from flow.ops.suite import SuiteRunner
        from flow.store import Store
        from tests.e2e.conftest import FlowCLI

        home, path = self.root / suite, suite_path(suite)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FLOW_HOME", str(home))
            mp.delenv("FEDWEAVE_SERVICE_CONF", raising=False)
            conf = load_service_conf()
            conf.home_path.mkdir(parents=True, exist_ok=True)
            store = Store(conf.database_url)
            try:
                report = SuiteRunner(LocalOps(conf, lambda: store), tweak=shrink, job_timeout=600,
                                     data_base_dir=sampled_data(self.root / "sampled"), parallel=2).run(path)
            finally:
                store.close()
        return SuiteRun(path, FlowCLI(home), report)
