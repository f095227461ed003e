"""The fuzz suite's world: a sandbox, a seeded home, hostile payloads and the checks.

Layout (one per session, under pytest's tmp dir)::

  <root>/outside/          files planted OUTSIDE every home, each holding CANARY
  <root>/a/b/c/d/e/f/      deep enough that "../../../../etc/passwd" from a home or the
                           working directory still lands inside <root> (so a write there is
                           seen, and nothing of the real machine is touched)
        .../cwd/           the process's working directory while a case runs
        .../inputs/        plausible files for the CLI (conf.json, dsl.json, a CSV, ...)
        .../template/home  a home with two tables, a finished job, a schedule, a grant
        .../h-<n>/home     a fresh copy of the template per case

We run as whatever user runs pytest (root, on some machines), so the payloads never name
a real file that a write could damage: the "absolute path" payload is the planted
``<root>/outside/etc/passwd`` wherever a request may write, and the real ``/etc/passwd``
only where it may only be read (HTTP GET, CLI input options).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import pytest

CANARY = f"FEDWEAVE-CANARY-{uuid.uuid4().hex}"
#: what the real /etc/passwd holds on every Linux machine
PASSWD_MARK = "root:x:0:0:"
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "')
#: how deep below <root> the homes and the working directory sit
DEPTH = ("a", "b", "c", "d", "e", "f")
#: "../" repeated enough to climb to "/" from any folder a home uses, then down to an absolute path
CLIMB = "../" * 40

#: plausible values of the job the template home holds
GUEST, HOST = "9999", "10000"
SEED_CONF: dict[str, Any] = {
    "dsl_version": 2,
    "initiator": {"role": "guest", "party_id": int(GUEST)},
    "role": {"guest": [int(GUEST)], "host": [int(HOST)]},
    "component_parameters": {"role": {
        "guest": {"0": {"reader_0": {"table": {"name": "fuzz_guest", "namespace": "experiment"}},
                        "data_transform_0": {"with_label": True, "label_name": "y"}}},
        "host": {"0": {"reader_0": {"table": {"name": "fuzz_host", "namespace": "experiment"}},
                       "data_transform_0": {"with_label": False}}}}},
}
SEED_DSL: dict[str, Any] = {"components": {
    "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
    "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                         "output": {"data": ["data"], "model": ["model"]}},
}}
#: a one-party job: what `flow job run` runs in the foreground without waiting for a peer
SOLO_CONF: dict[str, Any] = {
    "dsl_version": 2,
    "initiator": {"role": "guest", "party_id": int(GUEST)},
    "role": {"guest": [int(GUEST)]},
    "component_parameters": {"role": {"guest": {"0": {
        "reader_0": {"table": {"name": "fuzz_guest", "namespace": "experiment"}}}}}},
}
SOLO_DSL: dict[str, Any] = {"components": {"reader_0": {"module": "Reader", "output": {"data": ["data"]}}}}
CSV_TEXT = "id,y,a,b\n" + "".join(f"u{i},{i % 2},{i * 0.5},{-i}\n" for i in range(12))
#: storage engines the conf names but that are not reachable: a bind fails fast, no hang
SERVICE_CONF_YAML = """\
storage:
  hdfs: {url: "http://127.0.0.1:9"}
  hive: {host: "127.0.0.1", port: 9}
"""


@dataclass(frozen=True)
class Payload:
    family: str
    label: str
    value: str
    #: a family's first payload: the one every field gets
    representative: bool = False


@dataclass
class Seed:
    job_id: str
    model_id: str
    status: str
    template: Path
    inputs: dict[str, Path]


@dataclass
class Sandbox:
    root: Path
    outside: Path
    deep: Path
    cwd: Path
    inputs: Path
    _n: Any = field(default_factory=count)

    def new_home(self, template: Path) -> Path:
        home = self.deep / f"h-{next(self._n)}" / "home"
        shutil.copytree(template, home, ignore=shutil.ignore_patterns("*.sqlite-wal", "*.sqlite-shm"))
        return home

    def snapshot(self, home: Path) -> set[str]:
        """Every file and folder under <root> but the home of the case (and the template)."""
        skip = {str(home), str(self.deep / "template")}
        seen: set[str] = set()
        for top, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
            rel = os.path.relpath(top, self.root)
            seen.update(os.path.normpath(os.path.join(rel, d)) + "/" for d in dirs)
            seen.update(os.path.normpath(os.path.join(rel, f)) for f in files)
        return seen

    # -- payloads -------------------------------------------------------------------
    def payloads(self, home: Path, *, may_write: bool) -> list[Payload]:
        """The hostile values, by family; ``may_write``: the request may write where the
        value points (then no payload names a real file of this machine)."""
        secret = self.outside / "secret"
        passwd = str(self.outside / "etc" / "passwd") if may_write else "/etc/passwd"
        fams: list[tuple[str, list[tuple[str, str]]]] = [
            ("traversal", [("up4-passwd", "../../../../etc/passwd"), ("dotdot-slash", "../"), ("dotdot", ".."),
                           ("urlenc", "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd")]),
            ("planted", [("climb-secret", CLIMB + str(secret).lstrip("/")),
                         ("climb-outside", CLIMB + str(self.outside).lstrip("/")),
                         ("home-relative", os.path.relpath(secret, home)),
                         ("absolute-secret", str(secret)),
                         ("absolute-secret.log", str(self.outside / "secret.log")),
                         ("absolute-outside", str(self.outside))]),
            ("absolute", [("passwd", passwd)]),
            ("nul", [("nul-suffix", "fuzz\x00.json"), ("nul-traversal", "x\x00/../../etc/passwd")]),
            ("overlong", [("5000", "A" * 5000)]),
            ("html", [("script", "<script>alert(1)</script>")]),
            ("sql", [("or", "' OR 1=1 --"), ("drop", '"; DROP TABLE jobs; --')]),
            ("shell", [("subst", "$(id)"), ("backtick", "`id`"), ("rm", "; rm -rf ~"), ("pipe", "| cat /etc/passwd")]),
        ]
        return [Payload(fam, label, value, i == 0) for fam, values in fams for i, (label, value) in enumerate(values)]


#: parameter names whose values become file, folder, queue or SQL names: every payload
IDENTIFIER_NAMES = {"job_id", "job", "model_id", "model_version", "role", "party_id", "party", "component",
                    "component_name", "cpn", "cpn_list", "namespace", "name", "filename", "conf_file", "dsl_file",
                    "engine", "user", "username"}


def is_identifier(name: str) -> bool:
    n = name.lower().replace("-", "_")
    return n in IDENTIFIER_NAMES or n.endswith(("_id", "_path", "_file")) or n in ("file", "output", "conf", "dsl")


def payloads_for(box: Sandbox, home: Path, name: str, *, may_write: bool) -> list[Payload]:
    """Every payload for an identifier-like field, a family's first one (and the planted
    file's) for the others."""
    every = box.payloads(home, may_write=may_write)
    if is_identifier(name):
        return every
    return [p for p in every if p.representative or p.family == "planted"]


def _plant(outside: Path) -> None:
    """CANARY in every kind of file a home holds, at the places a traversal would reach:
    ``secret.<ext>`` (a value that ends a path), nested logs (a value a glob continues
    under), and the home's own layouts (logs/<role>/<party>/<cpn>.log, meta.json ...)."""
    text = f"{CANARY} planted outside the home\n"
    blob = json.dumps({"canary": CANARY, "namespace": CANARY, "name": CANARY, "job_id": CANARY})
    for rel in ("secret", "secret.log", "secret.txt", "secret.yaml", "x/secret.log", "x/y/secret.log",
                "guest/9999/reader_0.log", "9999/reader_0.log", "reader_0.log", "x/9999/reader_0.log",
                "etc/passwd", "server_token"):
        (outside / rel).parent.mkdir(parents=True, exist_ok=True)
        (outside / rel).write_text(text)
    for rel in ("secret.json", "meta.json", "x/meta.json", "model.json", "part.json", "conf.json", "dsl.json",
                "deploy.json", "x/y/meta.json", "reader_0.json"):
        (outside / rel).parent.mkdir(parents=True, exist_ok=True)
        (outside / rel).write_text(blob)
    (outside / "secret.csv").write_text(f"id,y\n{CANARY},1\n")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Sandbox:
    root = tmp_path_factory.mktemp("fuzz")
    outside = root / "outside"
    deep = root.joinpath(*DEPTH)
    box = Sandbox(root, outside, deep, deep / "cwd", deep / "inputs")
    for folder in (outside, box.cwd, box.inputs):
        folder.mkdir(parents=True)
    _plant(outside)
    return box


def _wait(ops, job_id: str, timeout: float = 90) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = ops.job_query(job_id)["status"]
        if status in ("success", "failed", "canceled", "timeout"):
            return status
        time.sleep(0.2)
    return "unfinished"


@pytest.fixture(scope="session")
def seed(sandbox: Sandbox) -> Seed:
    """The template home: tables fuzz_guest/fuzz_host, a finished two-party job (its logs,
    outputs and, if it succeeded, its models), a paused schedule and a grant."""
    from flow.core.settings import load_service_conf
    from flow.dsl.loader import plan_from_dicts
    from flow.ops.local import LocalOps
    from flow.store import Store

    home = sandbox.deep / "template" / "home"
    home.mkdir(parents=True)
    (home / "service_conf.yaml").write_text(SERVICE_CONF_YAML)
    inputs = _inputs(sandbox.inputs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOW_HOME", str(home))
        mp.delenv("FEDWEAVE_SERVICE_CONF", raising=False)
        mp.chdir(sandbox.cwd)
        conf = load_service_conf()
        store = Store(conf.database_url)
        ops = LocalOps(conf, store)
        ops.data_upload(inputs["csv"], "experiment", "fuzz_guest", label_column="y")
        ops.data_upload(inputs["csv"], "experiment", "fuzz_host")
        info = ops.job_submit(plan_from_dicts(SEED_CONF, SEED_DSL), "conf.json", "dsl.json")
        job_id = info["job_id"]
        status = _wait(ops, job_id)
        for role, pid in (("guest", GUEST), ("host", HOST)):  # the logs a job leaves, even a broken one
            log = home / "logs" / job_id / role / pid / "reader_0.log"
            if not log.exists():
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text("seeded log line\n")
        ops.schedule_add("0 2 * * *", SEED_CONF, SEED_DSL, name="fuzz_sched", paused=True)
        ops.privilege_grant(f"guest:{GUEST}", "experiment", "fuzz_guest")
        try:  # a model archive for `model import`; a junk zip when the job left no model
            ops.model_export(inputs["zip"], job_id=job_id)
        except Exception:  # noqa: BLE001
            with zipfile.ZipFile(inputs["zip"], "w") as z:
                z.writestr("model.json", "{}")
        pid = store.job(job_id).get("supervisor_pid")
        store.close()
    _gone(pid)
    _checkpoint(home / "flow.sqlite")
    return Seed(job_id, info["model_info"]["model_id"], status, home, inputs)


def _gone(pid: int | None, timeout: float = 15) -> None:
    """Wait for the seed job's supervisor to exit (it writes the store until then)."""
    end = time.monotonic() + timeout
    while pid and time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)


def _checkpoint(db: Path) -> None:
    """Fold SQLite's write-ahead log into the database file: a copy of the file alone is whole."""
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _inputs(folder: Path) -> dict[str, Path]:
    files = {"conf": folder / "conf.json", "dsl": folder / "dsl.json", "csv": folder / "table.csv",
             "upload_conf": folder / "upload_conf.json", "service_conf": folder / "service_conf.yaml",
             "zip": folder / "model.zip"}
    files["conf"].write_text(json.dumps(SOLO_CONF))
    files["dsl"].write_text(json.dumps(SOLO_DSL))
    files["csv"].write_text(CSV_TEXT)
    files["upload_conf"].write_text(json.dumps({"file": str(files["csv"]), "namespace": "experiment",
                                                "table_name": "fuzz_upload", "partition": 1}))
    files["service_conf"].write_text(SERVICE_CONF_YAML)
    return files


def plausible(name: str, where: str, seed: Seed) -> Any:
    """A value a user would give for a parameter called ``name`` (of route or command
    ``where``), or None when the name says nothing."""
    n = name.lower().replace("-", "_")
    table = {
        "job_id": seed.job_id, "job": seed.job_id, "model_version": seed.job_id, "model_id": seed.model_id,
        "role": "guest", "party_id": GUEST, "party": f"guest:{GUEST}",
        "component": "reader_0", "component_name": "reader_0", "cpn": "reader_0",
        "namespace": "experiment", "engine": "hdfs", "cron": "0 2 * * *", "timezone": "UTC",
        "since": "2026-01-01T00:00Z", "kind": "data", "id_column": "id", "label_column": "y",
        "ip": "127.0.0.1", "host": "127.0.0.1", "token": "fuzz-token", "promote_if": "auc>=current",
        "filename": "fuzz.csv", "conf_file": "conf.json", "dsl_file": "dsl.json",
    }
    if n == "name":
        return "fuzz_sched" if "schedule" in where else "fuzz_guest"
    return table.get(n)


def leaks(text: str) -> list[str]:
    """What of the planted files (or the machine's /etc/passwd) an answer shows."""
    out = []
    if CANARY in text:
        out.append("shows a file planted outside the home (canary)")
    if PASSWD_MARK in text:
        out.append("shows /etc/passwd")
    return out


def traceback_in(text: str) -> list[str]:
    return [f"traceback text {m!r} in the answer" for m in TRACEBACK_MARKS if m in text]


def written_outside(before: set[str], after: set[str], allowed: tuple[Path, ...] = (), root: Path | None = None,
                    ) -> list[str]:
    """New or removed paths outside the home (``allowed``: targets a command was told to
    write, with their folders)."""
    new = sorted(after - before)
    if allowed and root is not None:
        targets = [os.path.relpath(t, root) for t in allowed]
        exact = {os.path.join(*Path(t).parts[:i]) for t in targets for i in range(1, len(Path(t).parts) + 1)}
        new = [p for p in new if p.rstrip("/") not in exact and not any(p.startswith(t + "/") for t in targets)]
    problems = []
    if new:
        problems.append(f"wrote outside the home: {', '.join(new[:5])}{' ...' if len(new) > 5 else ''}")
    gone = sorted(before - after)
    if gone:
        problems.append(f"removed outside the home: {', '.join(gone[:5])}")
    return problems


def audit_lines(home: Path) -> dict[Path, int]:
    folder = home / "audit"
    return {p: len(p.read_bytes().splitlines()) for p in folder.glob("*.log")} if folder.is_dir() else {}


def new_refusal_entries(home: Path, before: dict[Path, int]) -> list[dict]:
    """Audit entries written since ``before`` that record a refused request."""
    found = []
    for path in (home / "audit").glob("*.log"):
        for line in path.read_bytes().splitlines()[before.get(path, 0):]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if any(w in str(entry.get("kind", "")) for w in ("refus", "denied", "reject", "forbid")):
                found.append(entry)
    return found


def short(value: str, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."
