"""The standalone job supervisor: starts one runtime per party and watches them.

Started detached by ``flow job submit``/``rerun``: forked from the command's own process
(which has imported the project and parsed the job), or, from a flow server or a library
caller, as a fresh interpreter through the launcher in :mod:`flow.runtime.job`; either way
"<pid> <exit code>" is left in the job's folder when it ends. It
owns the job's final state: it notices a party process that died without saying why
(killed, crashed), tells the others, enforces the job timeout, honours ``flow job stop``
(SIGTERM), and records the root-cause reason at the job.

Party runtimes are forked from the supervisor after it has imported what they need
(engines, components), so a job's parties start in milliseconds rather than each
paying a fresh interpreter's imports. Nothing of the supervisor's is shared with them
but read-only code: its database connections are closed before each fork.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import backends.computing
import backends.storage
import federation
from federation.api import Party
from flow.core.procs import ForkedChild
from flow.core.settings import EnginesConf, ServiceConf, load_service_conf
from flow.dsl import JobPlan, load_job
from flow.governance.trail import flush_audit
from flow.runtime import party as party_runtime
from flow.runtime.job import describe_exit, last_line
from flow.runtime.party import EXIT_PEER_FAILED, job_dir
from flow.runtime.transport import make_federation, release_share
from flow.store import Store, derive_status

POLL_S = 0.05  # a wait4 per party each time: cheap, and a job's end is seen within 50 ms
GRACE_S = 10.0


class ForkedParty(ForkedChild):
    """One party runtime in a forked child.

    The child runs ``party``'s share of ``plan`` as the supervisor parsed it: the job's
    files are read once, by the supervisor, not again by each party."""

    def __init__(self, job_id: str, party: Party, log: Path, conf: ServiceConf, plan: JobPlan):
        super().__init__(lambda: party_runtime.run_share(job_id, party, conf, plan), log,
                         title=f"flow: {party} of job {job_id}",
                         before_exit=lambda _code: flush_audit())  # queued audit entries: os._exit skips atexit

    def summary(self) -> str:
        """Its exit, peak memory and CPU (with the pool workers it reaped), for the supervisor's log."""
        u = self.usage
        if u is None:
            return f"exit {self.returncode}"
        return (f"exit {self.returncode}, peak RSS {u.ru_maxrss / 1024:.0f} MiB, "
                f"CPU {u.ru_utime + u.ru_stime:.1f} s")


class Supervisor:
    def __init__(self, job_id: str, conf: ServiceConf, plan: JobPlan | None = None):
        """``plan``: the job's files as the submitting process parsed them (a supervisor forked
        from it); else they are read from the job's folder."""
        self.job_id, self.conf = job_id, conf
        self.home = conf.home_path
        self.store = Store(conf.database_url)
        self.children: dict[Party, ForkedParty] = {}
        self.stopping = False
        self.root_reason = ""
        jdir = job_dir(self.home, job_id)
        self.plan = plan or load_job(jdir / "conf.json", jdir / "dsl.json")
        self._preload()

    def _engines(self, party: Party) -> EnginesConf:
        """``party``'s engines, decided as its runtime decides them (one rule, in the plan)."""
        return self.plan.resolved_job_parameters(party).engines(self.conf.default_engines)

    def _preload(self) -> None:
        """Import every engine the parties will use, so the forked runtimes find them loaded."""
        for p in self.plan.all_parties():
            engines = self._engines(p)
            backends.computing.ENGINES.get(engines.computing)
            backends.storage.ENGINES.get(engines.storage)
            federation.ENGINES.get(engines.federation)

    def _log(self, party: Party) -> Path:
        return job_dir(self.home, self.job_id) / f"runtime_{party.role}_{party.party_id}.log"

    def _spawn(self, party: Party) -> ForkedParty:
        self.store.engine.dispose()  # no open database connection may cross the fork
        proc = ForkedParty(self.job_id, party, self._log(party), self.conf, self.plan)
        self.store.update_party_run(self.job_id, party.role, party.party_id, pid=proc.pid, status="running")
        return proc

    def _on_term(self, *_args) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        if self.store.job(self.job_id)["status"] == "canceled":  # stopped before this handler was in place
            return 0
        timeout = float(self.plan.timeout)
        self.store.update_job(self.job_id, status="running", supervisor_pid=os.getpid(), reason="")
        parties = [Party(r["role"], r["party_id"]) for r in self.store.party_runs(self.job_id)]
        for party in parties:
            self.children[party] = self._spawn(party)
        deadline = time.monotonic() + timeout
        final = None
        while self.children:
            time.sleep(POLL_S)
            if self.stopping:
                final = self._end_all("canceled", "stopped by user")
                break
            if time.monotonic() > deadline:
                final = self._end_all("timeout", f"job exceeded its timeout of {timeout:g}s")
                break
            for party, proc in list(self.children.items()):
                code = proc.poll()
                if code is None:
                    continue
                del self.children[party]
                print(f"{party}: {proc.summary()}", flush=True)
                if code != 0:
                    self._party_failed(party, code)
        status = final or derive_status([t["status"] for t in self.store.tasks(self.job_id)])
        if status == "running":  # every process ended but some task never ran
            status = "failed"
            self.root_reason = self.root_reason or "party runtimes ended before every task ran"
        if status == "failed":
            cancel_unrun(self.store, self.plan, self.job_id)
        self.store.update_job(self.job_id, status=status, reason=self.root_reason if status != "success" else "")
        if self.conf.mode == "standalone":  # elsewhere other organisations may still be reading
            self._cleanup_transport(parties)
        return 0 if status == "success" else 1

    def _party_failed(self, party: Party, code: int) -> None:
        run = next(r for r in self.store.party_runs(self.job_id)
                   if r["role"] == party.role and r["party_id"] == party.party_id)
        reason = run["reason"] if run["status"] == "failed" and run["reason"] else ""
        if not reason:  # died without a word: killed or crashed (then its last line may say why)
            reason = f"{party} runtime ended unexpectedly ({describe_exit(code)})"
            if code > 0 and (last := last_line(self._log(party))):
                reason += f": {last}"
            self.store.update_party_run(self.job_id, party.role, party.party_id, status="failed", reason=reason)
            for task in self.store.tasks(self.job_id, party.role, party.party_id):
                if task["status"] == "running":
                    self.store.update_task(self.job_id, task["component"], party.role, party.party_id,
                                           status="failed", reason=reason)
            self._abort_others(party, reason)
        if code != EXIT_PEER_FAILED and not self.root_reason:
            self.root_reason = reason
        elif not self.root_reason and not self.children:
            self.root_reason = reason

    def _abort_others(self, failed: Party, reason: str) -> None:
        """Speak for the dead party (standalone: its key is on this machine), through its own
        transport, so peers stop waiting."""
        others = [p for p in self.children]
        if not others:
            return
        fed = make_federation(self._engines(failed).federation, self.conf, self.job_id, failed, None, {},
                              timeout=1.0)
        try:
            fed.abort(reason, others)
        finally:
            fed.close()

    def _end_all(self, status: str, reason: str) -> str:
        for proc in self.children.values():
            proc.terminate()
        end = time.monotonic() + GRACE_S
        for proc in self.children.values():
            try:
                proc.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()
        self.store.update_tasks(self.job_id, ("running", "waiting"), status=status, reason=reason)
        for run in self.store.party_runs(self.job_id):
            if run["status"] == "running":
                self.store.update_party_run(self.job_id, run["role"], run["party_id"], status=status, reason=reason)
        self.root_reason = reason
        return status

    def _cleanup_transport(self, parties: list[Party]) -> None:
        for party in parties:
            release_share(self.conf, self.plan, self.job_id, party)


def cancel_unrun(store: Store, plan: JobPlan, job_id: str) -> None:
    """Tasks of a failed job that never started will not: ``canceled``, saying why (the
    failed component upstream of each, else that the job failed)."""
    tasks = store.tasks(job_id)
    failed = [c for c in plan.dag.order() if any(t["component"] == c and t["status"] in ("failed", "timeout")
                                                 for t in tasks)]
    for t in tasks:
        if t["status"] != "waiting":
            continue
        upstream = set(plan.dag.upstream(t["component"], transitive=True))
        culprit = next((c for c in failed if c in upstream), None)
        reason = f"upstream {culprit} failed" if culprit else "job failed"
        store.update_task(job_id, t["component"], t["role"], t["party_id"], status="canceled", reason=reason)


def main(argv: list[str] | None = None) -> int:
    job_id = (argv or sys.argv[1:])[0]
    return Supervisor(job_id, load_service_conf()).run()


if __name__ == "__main__":
    sys.exit(main())
