"""Job operations behind the CLI: submit, stop, rerun, query.

Submitting validates both files first (nothing is created for a bad job), records the
job with a waiting task per (component, party), writes the files next to the job's
logs, then starts the supervisor detached so the CLI returns the job id at once.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from federation.api import Party
from flow.core.errors import FedweaveError, StoreError
from flow.core.procs import ForkedChild, pid_exists
from flow.core.settings import ServiceConf, load_service_conf
from flow.dsl import JobPlan, load_job
from flow.governance.trail import flush_audit
from flow.models.store import check_predict_model, model_info
from flow.runtime.party import job_dir
from flow.runtime.transport import release_share
from flow.store import FINAL_STATES, Store, derive_status


def new_job_id() -> str:
    """FATE-style sortable id: UTC timestamp with microseconds plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f") + f"{secrets.randbelow(100):02d}"


#: what the supervisor prints (stdout and stderr), and the "<pid> <exit code>" its launcher leaves
SUPERVISOR_LOG, SUPERVISOR_EXIT = "supervisor.log", "supervisor.exit"
#: begins each start's part of the supervisor log, so that its last line is this start's
LOG_MARK = "--- flow: starting the supervisor of job "
#: the supervisor's launcher (``python -c``): runs the supervisor of job JOB_ID and, however it
#: ends short of a signal (an import of the project that fails included), writes "<pid> <exit
#: code>" to the file named by its second argument, for a ``flow job query`` in another process
#: to report. Nothing but the standard library runs before the project. The supervisor is
#: imported, not run as ``__main__``: the parties' spawned pool workers re-import the main
#: module, and with the supervisor there each would import the whole project (~1 CPU-second).
_LAUNCHER = """\
import os, sys
code = 1
try:
    from flow.runtime.supervisor import main
    code = main([sys.argv[1]])
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    if isinstance(exc.code, str):
        print(exc.code, file=sys.stderr)
except BaseException:
    import traceback
    traceback.print_exc()
finally:
    try:
        with open(sys.argv[2], "w") as fh:
            fh.write(f"{os.getpid()} {code}")
    except OSError:
        pass
sys.exit(code)
"""
#: supervisors this process started, by pid: reaped here, their exit status kept
_started: dict[int, subprocess.Popen] = {}
#: the home of each job whose supervisor this process started
_homes: dict[str, Path] = {}
#: the supervisor's pid of each job whose supervisor this process started
_pids: dict[str, int] = {}


def child_python(cwd: Path) -> tuple[list[str], Path | None]:
    """(interpreter options, working directory) for a child that imports only the installed
    project: with ``-P`` (Python 3.11+) nothing is imported from the working directory, where a
    user's folder named ``components``, ``flow``, ``backends`` or ``federation`` would win over
    the project's; before 3.11 the child starts in ``cwd`` (a folder of the project's own) instead."""
    if sys.version_info >= (3, 11):
        return ["-P"], None
    return [], cwd


#: set by `flow job submit` and `rerun` in the console script's own process (short-lived, one thread): start supervisors
#: by forking it, not as a fresh interpreter (a flow server, a test, a library keep spawning)
fork_supervisors = False


def _start_supervisor(conf: ServiceConf, job_id: str, store: Store | None = None, plan: JobPlan | None = None) -> int:
    """Start the job's supervisor detached; its pid. Forked from this process when it may be
    (:data:`fork_supervisors`, one thread, ``store`` given so its connections can be closed
    first): the supervisor then starts with the project imported and ``plan`` parsed, ~1 s
    sooner than a fresh interpreter, and records how it ended as the launcher does."""
    jdir = job_dir(conf.home_path, job_id)
    exit_file = jdir / SUPERVISOR_EXIT
    exit_file.unlink(missing_ok=True)  # a rerun's supervisor reports afresh
    env = dict(os.environ, FLOW_HOME=str(conf.home_path))
    if conf.source:  # absolute: the supervisor may start in another directory
        env["FEDWEAVE_SERVICE_CONF"] = str(Path(conf.source).resolve())
    fork = store if fork_supervisors and threading.active_count() == 1 else None
    with open(jdir / SUPERVISOR_LOG, "ab") as fh:
        how = f", forked from {os.getpid()}" if fork is not None else ""
        fh.write(f"{LOG_MARK}{job_id} ({datetime.now(timezone.utc).isoformat(timespec='seconds')}{how})\n".encode())
        fh.flush()
        proc: subprocess.Popen | ForkedChild
        if fork is not None:
            fork.engine.dispose()  # no open database connection may cross the fork
            flush_audit()  # nor a queued audit entry (the child would write it again)
            proc = ForkedChild(lambda: _supervise(job_id, conf, env, plan), jdir / SUPERVISOR_LOG,
                               title=f"flow: supervisor of job {job_id}", new_session=True,
                               before_exit=lambda code: _write_exit(exit_file, code))
        else:
            options, cwd = child_python(jdir)
            proc = subprocess.Popen(  # noqa: S603 - this interpreter, the launcher above, a checked job id
                [sys.executable, *options, "-c", _LAUNCHER, job_id, str(exit_file)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env, cwd=cwd,
            )
    ended = reap_supervisors()
    if len(_started) > 256:  # forget supervisors long ended (their launchers wrote how)
        for pid in ended:
            del _started[pid]
    _started[proc.pid] = proc
    _homes[job_id] = conf.home_path
    _pids[job_id] = proc.pid
    return proc.pid


def _supervise(job_id: str, conf: ServiceConf, env: dict[str, str], plan: JobPlan | None) -> int:
    """The forked supervisor: the environment a spawned one would get, then its run."""
    from flow.runtime.supervisor import Supervisor  # imports this module

    os.environ.update(env)
    return Supervisor(job_id, conf, plan).run()


def _write_exit(exit_file: Path, code: int) -> None:
    """What the launcher leaves: "<pid> <exit code>"."""
    flush_audit()
    try:
        exit_file.write_text(f"{os.getpid()} {code}")
    except OSError:
        pass


def pause(job_id: str, seconds: float) -> None:
    """Sleep ``seconds``, or less if this process started the job's supervisor and it ends
    first: ``flow job submit --wait`` then reports the end at once, not at its next poll."""
    proc = _started.get(_pids.get(job_id, 0))
    if proc is None:
        time.sleep(seconds)
        return
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pass


def submit_job(conf: ServiceConf, store: Store, conf_path: Path, dsl_path: Path) -> dict[str, Any]:
    return submit_plan(conf, store, load_job(conf_path, dsl_path), str(conf_path), str(dsl_path))


def submit_plan(conf: ServiceConf, store: Store, plan: JobPlan, conf_path: str, dsl_path: str,
                description: str | None = None) -> dict[str, Any]:
    """Record and start a validated job (the files were read here, or by a client of the server);
    ``description``: what the person submitting it says it is, shown by query and list."""
    check_predict_model(conf.home_path, plan)  # a predict job's model must be here before anything starts
    job_id = new_job_id()
    jdir = job_dir(conf.home_path, job_id)
    jdir.mkdir(parents=True)
    try:
        (jdir / "conf.json").write_text(json.dumps(plan.raw_conf, indent=2))
        (jdir / "dsl.json").write_text(json.dumps(plan.raw_dsl, indent=2))
        parties = [p for ps in plan.parties.values() for p in ps]
        components = {
            (p.role, p.party_id): [(c, plan.module(c).module) for c in plan.party_components(p)] for p in parties
        }
        store.create_job(job_id, conf=plan.raw_conf, dsl=plan.raw_dsl,
                         initiator=(plan.initiator.role, plan.initiator.party_id),
                         parties=[(p.role, p.party_id) for p in parties], components=components,
                         conf_path=str(conf_path), dsl_path=str(dsl_path), description=description or "")
    except Exception:
        shutil.rmtree(jdir, ignore_errors=True)
        raise
    pid = _start_supervisor(conf, job_id, store, plan)
    store.update_job(job_id, supervisor_pid=pid)
    return {"job_id": job_id, "dsl_path": str(jdir / "dsl.json"), "conf_path": str(jdir / "conf.json"),
            "parties": {r: [p.party_id for p in ps] for r, ps in plan.parties.items()},
            "model_info": model_info(plan, job_id)}


def run_party(conf: ServiceConf, store: Store, conf_path: Path, dsl_path: Path, job_id: str,
              party: Party) -> tuple[dict[str, Any], int]:
    """Run one party's share of a job in this process, against this party's own home.

    For deployments where each organisation starts its share itself (a batch scheduler,
    Airflow): every party runs the same files under the same agreed job id and meets the
    others only through the federation transport. Running it again resumes: components
    that succeeded are reused.
    """
    from flow.runtime.party import PartyRuntime  # heavy: only this command needs it

    plan = load_job(conf_path, dsl_path)
    plan.party_index(party)  # ValidationError naming the parties if this one is not in the job
    jdir = job_dir(conf.home_path, job_id)
    # a home normally belongs to one organisation: record every role it plays in this job
    mine = [p for p in plan.all_parties() if p.party_id == party.party_id]
    components = {(p.role, p.party_id): [(c, plan.module(c).module) for c in plan.party_components(p)]
                  for p in plan.all_parties()}
    try:
        recorded = store.job(job_id)
    except StoreError:
        recorded = None
        jdir.mkdir(parents=True, exist_ok=True)
        (jdir / "conf.json").write_text(json.dumps(plan.raw_conf, indent=2))
        (jdir / "dsl.json").write_text(json.dumps(plan.raw_dsl, indent=2))
        try:
            store.create_job(job_id, conf=plan.raw_conf, dsl=plan.raw_dsl,
                             initiator=(plan.initiator.role, plan.initiator.party_id),
                             parties=[(p.role, p.party_id) for p in mine], components=components,
                             conf_path=str(conf_path), dsl_path=str(dsl_path))
        except SQLAlchemyError:  # another party of this home recorded it at the same moment
            pass
    store.add_parties(job_id, [(party.role, party.party_id)], components)
    store.update_job(job_id, status="running")
    # the files recorded first are the job's: a resumed run given other files runs those
    same = recorded is None or (recorded["conf"], recorded["dsl"]) == (plan.raw_conf, plan.raw_dsl)
    code = PartyRuntime(job_id, party, conf, plan if same else None).run()
    # what only this party reads can go now, whatever the others still do; a rerun
    # starts on empty channels
    release_share(conf, plan, job_id, party)
    run = next(r for r in store.party_runs(job_id) if r["role"] == party.role and r["party_id"] == party.party_id)
    status = derive_status([t["status"] for t in store.tasks(job_id, party.role, party.party_id)])
    store.update_job(job_id, status=status, reason=run["reason"])
    return job_detail(store, job_id, conf.home_path), code


def reap_supervisors() -> list[int]:
    """Collect the exit status of every supervisor this process started that has ended (a
    long-running server would otherwise keep each as a zombie); their pids."""
    return [pid for pid, p in list(_started.items()) if p.poll() is not None]


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid in _started:  # a child of ours: reap it rather than see a zombie
        return _started[pid].poll() is None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def process_alive(pid: int | None, job_id: str) -> bool:
    """Whether ``pid`` is a live process of ``job_id`` (a reused pid, or a zombie, is not)."""
    if not pid:
        return False
    if pid in _started:  # a supervisor this process started: reap it, keep its exit status
        return _started[pid].poll() is None
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is another dead child of this process
    except ChildProcessError:
        pass
    if not pid_exists(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():  # no procfs: trust kill(0)
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and job_id.encode() in cmdline


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def last_line(log: Path, after: str | None = None, limit: int = 300) -> str:
    """The last non-empty line of ``log`` (of what follows the last line starting with
    ``after``), "" when there is none."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    if after is not None:
        marks = [i for i, line in enumerate(lines) if line.startswith(after)]
        lines = lines[marks[-1] + 1:] if marks else lines
    line = next((x.strip() for x in reversed(lines) if x.strip()), "")
    return line if len(line) <= limit else line[:limit - 3] + "..."


def supervisor_gone(home: Path | None, job: dict[str, Any]) -> str:
    """Why a job's supervisor is gone, for the job's reason: whether it had started the job,
    its exit status and the last line it printed, where they can be found."""
    pid = job["supervisor_pid"]
    code, last = None, ""
    if home is not None:
        jdir = job_dir(home, job["job_id"])
        try:
            got_pid, got_code = (jdir / SUPERVISOR_EXIT).read_text().split()
            code = int(got_code) if int(got_pid) == pid else None
        except (OSError, ValueError):
            pass
        last = last_line(jdir / SUPERVISOR_LOG, after=LOG_MARK)
    if code is None and pid in _started:
        code = _started[pid].poll()
    what = "ended before it started the job" if job["status"] == "waiting" else "is gone"
    how = f" ({describe_exit(code)})" if code is not None else ""
    return f"job supervisor (pid {pid}) {what}{how}" + (f": {last}" if last else "")


def _home_of(job_id: str) -> Path | None:
    """Where ``job_id``'s files are when the caller did not say: where this process started
    its supervisor, else this process's own home."""
    if job_id in _homes:
        return _homes[job_id]
    try:
        return load_service_conf().home_path
    except FedweaveError:
        return None


def stop_job(store: Store, job_id: str) -> dict[str, Any]:
    job = store.job(job_id)
    if job["status"] in FINAL_STATES:
        raise FedweaveError(f"job {job_id} is already {job['status']}")
    if job["status"] == "waiting":
        # its supervisor may still be importing, before it handles SIGTERM: record the stop first,
        # so the job ends canceled however the signal finds it (the supervisor checks on start)
        store.update_tasks(job_id, ("running", "waiting"), status="canceled", reason="stopped by user")
        store.update_job(job_id, status="canceled", reason="stopped by user")
        if _alive(job["supervisor_pid"]):
            os.kill(job["supervisor_pid"], signal.SIGTERM)
    elif _alive(job["supervisor_pid"]):
        os.kill(job["supervisor_pid"], signal.SIGTERM)
    else:  # no supervisor left: stop the parties ourselves
        for run in store.party_runs(job_id):
            if _alive(run["pid"]):
                os.kill(run["pid"], signal.SIGKILL)
        store.update_tasks(job_id, ("running", "waiting"), status="canceled", reason="stopped by user")
        store.update_job(job_id, status="canceled", reason="stopped by user")
    return {"job_id": job_id, "status": "canceling"}


def rerun_job(conf: ServiceConf, store: Store, job_id: str, component: str | None = None) -> dict[str, Any]:
    """Rerun from ``component`` (or the earliest failed one) and everything downstream of it."""
    job = store.job(job_id)
    if job["status"] not in FINAL_STATES:
        raise FedweaveError(f"job {job_id} is {job['status']}; stop it before rerunning")
    jdir = job_dir(conf.home_path, job_id)
    plan = load_job(jdir / "conf.json", jdir / "dsl.json")
    order = plan.dag.order()
    tasks = store.tasks(job_id)
    if component is None:
        unfinished = {t["component"] for t in tasks if t["status"] != "success"}
        if not unfinished:
            raise FedweaveError(f"job {job_id} has no failed component; name one with -cpn")
        component = min(unfinished, key=order.index)
    elif component not in order:
        raise FedweaveError(f"job {job_id} has no component '{component}'")
    again = {component} | set(plan.dag.downstream(component))
    for t in tasks:
        if t["component"] in again or t["status"] == "canceled":  # canceled: never ran, runs now
            store.update_task(job_id, t["component"], t["role"], t["party_id"], status="waiting",
                              reason="", progress=0)
    for run in store.party_runs(job_id):
        store.update_party_run(job_id, run["role"], run["party_id"], status="waiting", reason="", pid=None)
    store.update_job(job_id, status="waiting", reason="", attempt=int(job["attempt"]) + 1, ended=None)
    store.update_job(job_id, supervisor_pid=_start_supervisor(conf, job_id, store, plan))
    return {"job_id": job_id, "rerun_from": component, "components": sorted(again, key=order.index)}


def end_orphaned(store: Store, job: dict[str, Any], home: Path | None = None) -> dict[str, Any]:
    """Fail ``job`` when it is not final but its supervisor is gone (crashed, killed, or
    never got as far as starting it), with a reason saying how it ended; the job as it is now."""
    job_id = job["job_id"]
    if job["status"] in FINAL_STATES or not job["supervisor_pid"] or process_alive(job["supervisor_pid"], job_id):
        return job
    job = store.job(job_id)  # a supervisor records the job's outcome just before it ends
    if job["status"] in FINAL_STATES:
        return job
    reason = job["reason"] or supervisor_gone(home if home is not None else _home_of(job_id), job)
    store.end_job(job_id, "failed", reason)  # unless another part ended it meanwhile, with its reason
    return store.job(job_id)


def job_detail(store: Store, job_id: str, home: Path | None = None) -> dict[str, Any]:
    """The job and its tasks; a job whose supervisor is gone is failed first (``home``: where
    its files are, default :func:`_home_of`)."""
    job = end_orphaned(store, store.job(job_id), home)
    tasks = store.tasks(job_id)

    def when(v):
        return v.isoformat() if v else None

    return {
        "job_id": job_id, "status": job["status"], "reason": job["reason"], "attempt": job["attempt"],
        "description": job.get("description") or "",
        "initiator": {"role": job["initiator_role"], "party_id": job["initiator_party"]},
        "created": when(job["created"]), "started": when(job["started"]), "ended": when(job["ended"]),
        "tasks": [{"component": t["component"], "module": t["module"], "role": t["role"],
                   "party_id": t["party_id"], "status": t["status"], "progress": t["progress"],
                   "attempt": t["attempt"], "reason": t["reason"],
                   "started": when(t["started"]), "ended": when(t["ended"])} for t in tasks],
    }
