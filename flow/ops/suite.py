"""FATE testsuites (``*_testsuite.json``, what ``fate_test suite`` runs) run through the Ops.

A testsuite names the tables to upload (FATE upload confs) and the tasks (conf + dsl, a
``deps`` task whose trained model a predict task uses). Each task is validated as shipped;
one that fedweave refuses only with "not supported: …" lines is *refused* (a FATE module or
option fedweave lacks), any other problem is *invalid*; the rest are submitted and waited
for. A predict task gets its model the way ``fate_test`` gives it: the ``deps`` job's model
is deployed and its ``model_id``/``model_version`` go into the conf.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from flow.core.errors import ConfigError, FedweaveError, TableExists, ValidationError
from flow.dsl.loader import plan_from_dicts
from flow.ops.api import Ops
from flow.ops.upload_conf import upload_args
from flow.store import FINAL_STATES

#: a change applied to each task's conf (dict) before it is validated; None: as shipped
ConfTweak = Callable[[dict[str, Any]], dict[str, Any]]
NOT_SUPPORTED = "not supported: "


class SuiteTask(BaseModel):
    model_config = ConfigDict(extra="allow")
    conf: str
    dsl: str
    deps: str | None = None


class SuiteFile(BaseModel):
    """A ``*_testsuite.json``: ``data`` (upload confs, plus the ``role`` that uploads) and ``tasks``."""

    model_config = ConfigDict(extra="allow")
    data: list[dict[str, Any]] = Field(default_factory=list)
    tasks: dict[str, SuiteTask] = Field(default_factory=dict)


@dataclass
class TaskResult:
    suite: str
    task: str
    #: success | failed | refused | invalid | skipped (its deps did not succeed)
    status: str
    seconds: float = 0.0
    job_id: str | None = None
    reason: str = ""
    #: the parties the job ran with (role -> ids), for a predict task that depends on it
    roles: dict[str, list[Any]] = field(default_factory=dict, repr=False)


@dataclass
class SuiteReport:
    suite: str
    path: str
    uploaded: list[str] = field(default_factory=list)
    tasks: list[TaskResult] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {"tasks": len(self.tasks), "validated": 0}
        for t in self.tasks:
            out[t.status] = out.get(t.status, 0) + 1
            out["validated"] += t.status in ("success", "failed")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "path": self.path, "uploaded": self.uploaded, **self.counts(),
                "seconds": round(self.seconds, 1), "results": [asdict(t) for t in self.tasks]}


def find_suites(paths: Iterable[Path]) -> list[Path]:
    """The testsuite files given, or found (``*testsuite.json``) under the folders given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(path.rglob("*testsuite.json"))
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"{path}: no such testsuite file or folder")
    if not found:
        raise ConfigError(f"no *testsuite.json under {', '.join(map(str, paths))}")
    return found


def read_suite(path: Path) -> SuiteFile:
    try:
        return SuiteFile.model_validate(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:  # a binary file: not JSON
        raise ConfigError(f"{path}: cannot read testsuite: {exc}") from exc
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


def data_file(suite_path: Path, file: str, data_base_dir: Path | None) -> Path:
    """Where an upload entry's ``file`` is: FATE writes it from FATE's root
    (``examples/data/x.csv``); look under ``data_base_dir`` and then each folder above the
    suite, with and without the leading ``examples/``."""
    rel = Path(file)
    if rel.is_absolute():
        return rel
    bases = ([data_base_dir] if data_base_dir else []) + list(suite_path.resolve().parents)
    candidates = [rel] + ([Path(*rel.parts[1:])] if rel.parts[:1] == ("examples",) else [])
    for base in bases:
        for c in candidates:
            if (base / c).is_file():
                return base / c
    raise ConfigError(f"{suite_path}: data: file {file} not found (give --data-base-dir, FATE's root)")


class SuiteRunner:
    """Runs testsuites through ``ops`` (this home's, or a flow server's)."""

    def __init__(self, ops: Ops, *, data_base_dir: Path | None = None, tweak: ConfTweak | None = None,
                 drop: bool = False, poll: float = 0.5,
                 progress: Callable[[str], None] | None = None, job_timeout: float = 3600.0,
                 parallel: int = 1) -> None:
        self.ops, self.data_base_dir, self.tweak, self.drop = ops, data_base_dir, tweak, drop
        self.poll, self.job_timeout = poll, job_timeout
        #: tasks run at once (a task waits for the task it depends on); a job mostly waits on
        #: process starts and peers, so two at a time keep two cores busier than one
        self.parallel = max(1, parallel)
        self.progress = progress or (lambda _line: None)

    def run(self, suite_path: Path, only: Iterable[str] = (), skip_data: bool = False) -> SuiteReport:
        started = time.monotonic()
        suite = read_suite(suite_path)
        report = SuiteReport(suite_path.parent.name or suite_path.stem, str(suite_path))
        if not skip_data:
            report.uploaded = self.upload(suite_path, suite)
        wanted = set(only)
        unknown = wanted - set(suite.tasks)
        if unknown:
            raise ConfigError(f"{suite_path}: no task {', '.join(sorted(unknown))} "
                              f"(tasks: {', '.join(suite.tasks)})")
        names = [n for n in self._order(suite_path, suite)
                 if not wanted or n in wanted or self._needed(n, wanted, suite)]
        futures: dict[str, Future[TaskResult]] = {}

        def one(name: str) -> TaskResult:
            task = suite.tasks[name]
            dep = futures[task.deps].result() if task.deps else None  # submitted before this one: FIFO
            result = self.run_task(suite_path, report.suite, name, task, dep)
            self.progress(f"{report.suite}/{name}: {result.status} ({result.seconds:.1f} s)"
                          + (f": {result.reason.splitlines()[0]}" if result.reason else ""))
            return result

        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="suite") as pool:
            for name in names:
                futures[name] = pool.submit(one, name)
        report.tasks = [futures[n].result() for n in names if not wanted or n in wanted]
        report.seconds = time.monotonic() - started
        return report

    @staticmethod
    def _needed(name: str, wanted: set[str], suite: SuiteFile) -> bool:
        """Whether ``name`` is the deps of a wanted task (a predict task needs its training job)."""
        return any(suite.tasks[w].deps == name for w in wanted)

    @staticmethod
    def _order(suite_path: Path, suite: SuiteFile) -> list[str]:
        """Tasks in file order, each after the task it depends on."""
        order: list[str] = []

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if name in order:
                return
            if name in chain:
                raise ConfigError(f"{suite_path}: tasks.{name}.deps: a cycle ({' -> '.join(chain + (name,))})")
            deps = suite.tasks[name].deps
            if deps:
                if deps not in suite.tasks:
                    raise ConfigError(f"{suite_path}: tasks.{name}.deps: no task {deps!r}")
                visit(deps, chain + (name,))
            order.append(name)

        for name in suite.tasks:
            visit(name, ())
        return order

    def upload(self, suite_path: Path, suite: SuiteFile) -> list[str]:
        """Upload each table once (several roles may list the same one); an existing table is
        kept unless ``drop`` (FATE's ``"drop": 1`` in an entry replaces it too)."""
        uploaded: list[str] = []
        for i, entry in enumerate(suite.data):
            where = f"{suite_path}: data[{i}]"
            if "file" not in entry:
                raise ConfigError(f"{where}: missing file")
            raw = {**{k: v for k, v in entry.items() if k != "role"},
                   "file": str(data_file(suite_path, str(entry["file"]), self.data_base_dir))}
            args = upload_args(raw, where)
            key = f"{args['namespace']}/{args['name']}"
            if key in uploaded:
                continue
            try:
                self.ops.data_upload(args["file"], args["namespace"], args["name"],
                                     id_column=args["id_column"] or "id", label_column=args["label_column"],
                                     partitions=args["partitions"], drop=self.drop or bool(args["drop"]),
                                     head=args["head"] is not False)
            except TableExists:
                self.progress(f"{key}: exists, kept (--drop replaces it)")
            uploaded.append(key)
        return uploaded

    def run_task(self, suite_path: Path, suite: str, name: str, task: SuiteTask,
                 dep: TaskResult | None) -> TaskResult:
        started = time.monotonic()
        result = TaskResult(suite, name, "invalid")
        conf_path, dsl_path = suite_path.parent / task.conf, suite_path.parent / task.dsl
        try:
            if task.deps and (dep is None or dep.status != "success"):
                result.status, result.reason = "skipped", f"its deps {task.deps} did not succeed"
                return result
            conf, dsl = _read_json(conf_path), _read_json(dsl_path)
            if self.tweak is not None:
                conf = self.tweak(conf)
            if dep is not None and dep.job_id:
                conf = self._with_model(conf, dep.job_id, dep.roles)
            try:
                plan = plan_from_dicts(conf, dsl, conf_file=str(conf_path), dsl_file=str(dsl_path))
            except ValidationError as exc:
                result.reason = str(exc)
                result.status = "refused" if all(NOT_SUPPORTED in p for p in exc.problems) else "invalid"
                return result
            result.roles = conf.get("role") or {}
            info = self.ops.job_submit(plan, str(conf_path), str(dsl_path), description=f"{suite}/{name}")
            result.job_id = info["job_id"]
            detail = self._wait(info["job_id"])
            result.status = "success" if detail["status"] == "success" else "failed"
            if result.status != "success":
                result.reason = f"{detail['status']}: {detail.get('reason') or ''}".strip()
        except FedweaveError as exc:
            result.status, result.reason = ("failed" if result.job_id else "invalid"), str(exc)
        finally:
            result.seconds = time.monotonic() - started
        return result

    def _with_model(self, conf: dict[str, Any], train_job: str, trained_roles: dict[str, list[Any]]) -> dict[str, Any]:
        """The predict conf with the deps job's deployed model named and the training job's
        parties (by role and position), as fate_test fills them: FATE's own predict confs may
        name other party ids than the training confs they follow."""
        deployed = self.ops.model_deploy(job_id=train_job)
        info = deployed.get("predict_conf", {}).get("job_parameters", {}).get("common", {})
        conf = json.loads(json.dumps(conf))
        common = conf.setdefault("job_parameters", {}).setdefault("common", {})
        common["model_id"] = info.get("model_id") or deployed.get("model_id")
        common["model_version"] = info.get("model_version") or deployed.get("model_version")
        roles = conf.get("role")
        if isinstance(roles, dict) and trained_roles:
            initiator = conf.get("initiator") or {}
            given = roles.get(initiator.get("role"), [])
            at = next((i for i, pid in enumerate(given) if str(pid) == str(initiator.get("party_id"))), None)
            for role, ids in roles.items():
                trained = trained_roles.get(role) or []
                if isinstance(ids, list) and len(ids) <= len(trained):
                    roles[role] = trained[:len(ids)]
            if at is not None and initiator.get("role") in roles:
                initiator["party_id"] = roles[initiator["role"]][at]
        return conf

    def _wait(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.job_timeout
        detail = self.ops.job_query(job_id)
        while detail["status"] not in FINAL_STATES:
            if time.monotonic() > deadline:
                self.ops.job_stop(job_id)
                return {**detail, "status": "timeout", "reason": f"still {detail['status']} after "
                        f"{self.job_timeout:.0f} s; stopped"}
            time.sleep(self.poll)
            detail = self.ops.job_query(job_id)
        return detail


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:  # a binary file: not JSON
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
