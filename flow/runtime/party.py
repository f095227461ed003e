"""One party's runtime for one job: runs its share of each component in DAG order.

Forked by the supervisor with the job's plan already parsed (:func:`run_share`), or
started on its own as ``python -m flow.runtime.party JOB_ID ROLE PARTY_ID``.
Components of the same stage run at once (up to ``task_parallelism``); parties meet
only through federation. Exit codes: 0 success, 1 this party failed, 3 a peer failed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from backends.computing import create_session
from backends.storage import engine_from_conf
from components.base import Context, Inputs, Outputs
from federation.api import Federation, Party
from flow.core import metrics_hook
from flow.core.errors import FedweaveError, PeerFailed
from flow.core.ids import check_id
from flow.core.paths import safe_join
from flow.core.settings import ServiceConf, load_service_conf
from flow.dsl import JobPlan, load_job
from flow.models.store import deployed_model, save_job_models
from flow.runtime import metrics
from flow.runtime.tracking import LOG_FORMAT, OutputKeeper, TaskTracker, component_logger
from flow.runtime.transport import make_federation
from flow.store import Store

EXIT_OK, EXIT_FAILED, EXIT_PEER_FAILED = 0, 1, 3
#: a folder: each party runtime writes cProfile files there, one for itself and one per task
PROFILE_ENV = "FEDWEAVE_PROFILE_DIR"


def job_dir(home: Path, job_id: str) -> Path:
    return safe_join(home / "jobs", check_id("job_id", job_id, "job_id"), fields=("job_id",))


class PartyRuntime:
    def __init__(self, job_id: str, party: Party, conf: ServiceConf, plan: JobPlan | None = None):
        """``plan``: the job as the caller already holds it (the supervisor it was forked
        from, ``flow job run-party``), so a process parses the job once; without it the
        job's files are read from its folder."""
        self.job_id, self.party, self.conf = job_id, party, conf
        self.home = conf.home_path
        metrics.enable(self.home, "party")  # counted into <home>/metrics for the server's /metrics
        self.store = Store(conf.database_url)
        metrics.watch_store(self.store.engine)
        jdir = job_dir(self.home, job_id)
        self.plan = plan or load_job(jdir / "conf.json", jdir / "dsl.json")
        self.job = self.store.job(job_id)
        self.params = self.plan.resolved_job_parameters(party)
        engines = self.params.engines(conf.default_engines)
        run = self.params.computing_run(engines.computing)
        self.session = create_session(
            engines.computing,
            partitions=self.params.computing_partitions,
            workers=self._workers(conf),
            **dict(conf.computing.engines.get(engines.computing) or {}),
            **({f"{engines.computing}_run": run} if run else {}),
        )
        self.storage = engine_from_conf(conf, engines.storage)
        self.federation: Federation = make_federation(
            engines.federation, conf, job_id, party, self.session, self.plan.parties,
            timeout=float(self.params.timeout),
        )
        self.keeper = OutputKeeper(self.store, self.storage, self.home, job_id, party)
        self.results: dict[str, Outputs] = {}
        self.log = logging.getLogger("fedweave.party")

    def _workers(self, conf: ServiceConf) -> int | None:
        """Worker processes of the local backend: the conf's, else all cores. In standalone
        mode every party of the job shares this machine: the data parties (guest and hosts)
        get up to all cores each but twice the cores in all. Their phases mostly alternate
        (one encrypts while the other waits for it), so a party held to its share of the
        cores left the others idle: a 200,000-id ECDH PSI took 34.6 s with one worker a party
        on two cores, 23.2 s with two. Pools start only for work that needs them."""
        if conf.computing.workers:
            return conf.computing.workers
        if conf.mode == "standalone":
            cores = os.cpu_count() or 1
            data_parties = sum(1 for p in self.plan.all_parties() if p.role in ("guest", "host")) or 1
            return max(1, min(cores, 2 * cores // data_parties))
        return None

    # ------------------------------------------------------------------
    def others(self) -> list[Party]:
        return [p for ps in self.plan.parties.values() for p in ps if p != self.party]

    def run(self) -> int:
        mine = set(self.plan.party_components(self.party))
        done = {t["component"] for t in self.store.tasks(self.job_id, self.party.role, self.party.party_id)
                if t["status"] == "success"}
        parallelism = self.params.task_parallelism
        self.store.update_party_run(self.job_id, self.party.role, self.party.party_id,
                                    status="running", pid=os.getpid(), reason="")
        try:
            with ThreadPoolExecutor(parallelism) as pool:
                for stage in self.plan.dag.stages():
                    todo = [c for c in stage if c in mine]
                    for cpn in [c for c in todo if c in done]:
                        data, model = self.keeper.load(cpn, self.session)
                        self.results[cpn] = Outputs(data=data, model=model, cache=self.keeper.load_cache(cpn))
                    for fut in [pool.submit(self.run_task, c) for c in todo if c not in done]:
                        fut.result()
        except PeerFailed as exc:
            return self._fail(str(exc), EXIT_PEER_FAILED, notify=False)
        except FedweaveError as exc:
            return self._fail(str(exc), EXIT_FAILED, notify=True)
        except Exception as exc:  # noqa: BLE001 - any crash must still reach the initiator
            return self._fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED, notify=True)
        finally:
            self.federation.close()
            self.session.stop()
        try:  # a training job's models go to this party's model store (flow model ...)
            save_job_models(self.home, self.store, self.plan, self.job_id, self.party)
        except Exception as exc:  # noqa: BLE001 - the job's outputs are there; say why the model is not
            return self._fail(f"keeping the model failed: {type(exc).__name__}: {exc}", EXIT_FAILED, notify=False)
        self.store.update_party_run(self.job_id, self.party.role, self.party.party_id, status="success")
        return EXIT_OK

    def _fail(self, reason: str, code: int, notify: bool) -> int:
        if notify:
            try:
                self.federation.abort(reason, self.others())
            except Exception:  # noqa: BLE001 - the supervisor still reports the failure
                self.log.exception("could not tell the other parties")
        self.store.update_party_run(self.job_id, self.party.role, self.party.party_id,
                                    status="failed", reason=reason)
        return code

    def run_task(self, cpn: str) -> None:
        started, status = time.monotonic(), "failed"
        try:
            self._run_task(cpn)
            status = "success"
        finally:
            metrics_hook.current().task(self.plan.module(cpn).module, self.party.role, status,
                                        time.monotonic() - started)

    def _run_task(self, cpn: str) -> None:
        party, store = self.party, self.store
        logger = component_logger(self.home, self.job_id, party, cpn)
        store.update_task(self.job_id, cpn, party.role, party.party_id, status="running",
                          attempt=int(self.job["attempt"]), progress=0, reason="")
        logger.info("start %s (%s) as %s, attempt %s", cpn, self.plan.module(cpn).module, party, self.job["attempt"])
        try:
            component = self.plan.module(cpn)()
            ctx = Context(
                job_id=self.job_id, component=cpn, local=party, parties=self.plan.parties,
                computing=self.session, federation=self.federation, storage=self.storage,
                tracker=TaskTracker(store, self.job_id, party, cpn), logger=logger,
                job_parameters=self.params.model_dump(),  # a component's own copy, as plain data
                tag_prefix=f"a{self.job['attempt']}",
            )
            outputs = self._call(component, ctx, cpn)
            self.keeper.save(cpn, outputs.data, outputs.model)
            if outputs.cache is not None:  # key material: this party's own folder only
                self.keeper.save_cache(cpn, outputs.cache)
            self.results[cpn] = outputs
        except PeerFailed as exc:
            logger.error("%s", exc)
            store.update_task(self.job_id, cpn, party.role, party.party_id, status="failed", reason=str(exc))
            raise
        except Exception as exc:
            reason = str(exc) if isinstance(exc, FedweaveError) else f"{type(exc).__name__}: {exc}"
            reason = f"{cpn} on {party}: {reason}"
            logger.error("failed: %s\n%s", reason, traceback.format_exc())
            store.update_task(self.job_id, cpn, party.role, party.party_id, status="failed", reason=reason)
            raise type(exc)(reason) if isinstance(exc, FedweaveError) else FedweaveError(reason) from exc
        store.update_task(self.job_id, cpn, party.role, party.party_id, status="success", progress=100)
        logger.info("success")

    def _call(self, component, ctx: Context, cpn: str) -> Outputs:
        args = (ctx, self.plan.component_params(cpn, self.party), self.inputs_of(cpn))
        for name, text in args[1].notices().items():
            ctx.logger.warning("%s: %s", name, text)
        folder = os.environ.get(PROFILE_ENV)
        if not folder:
            return component.run(*args)
        import cProfile  # tasks run on worker threads, which the runtime's own profile does not see

        with cProfile.Profile(time.thread_time) as prof:  # CPU seconds: the same on a busy machine
            try:
                return component.run(*args)
            finally:
                prof.dump_stats(_profile_path(folder, self.job_id, self.party, cpn))

    def _passed_through(self, up: str) -> Outputs | None:
        """Where need_run is false for this party, FATE hands the component's input data on unchanged."""
        if self.party.role not in self.plan.module(up).roles or self.plan.runs_on(up, self.party):
            return None
        given = self.inputs_of(up, models=False).data  # a skipped component's model is not needed
        return Outputs(data=[next(iter(given.values()))]) if given else None

    def inputs_of(self, cpn: str, models: bool = True) -> Inputs:
        """Upstream outputs of this party, by DSL port (absent where upstream did not run here)."""
        refs = self.plan.dag.inputs(cpn)
        inputs = Inputs()
        for port, items in refs.data.items():
            for up, out_name in items:
                outputs = self.results.get(up) or self._passed_through(up)
                names = self.plan.dsl.components[up].output.data
                index = names.index(out_name) if out_name in names else 0
                if outputs is not None and index < len(outputs.data):
                    inputs.data[port] = outputs.data[index]
                    inputs.all_data.setdefault(port, []).append(outputs.data[index])
                    inputs.sources.setdefault(port, []).append(up)
        for target, items in ((inputs.model, refs.model), (inputs.isometric_model, refs.isometric_model)):
            for up, _ in items:
                outputs = self.results.get(up)
                if outputs is not None and outputs.model is not None:
                    target.append(outputs.model)
        for up, _ in refs.cache:  # an upstream Intersection's cache (run_cache), this party's part
            outputs = self.results.get(up)
            if outputs is not None and outputs.cache is not None:
                inputs.cache.append(outputs.cache)
        module = self.plan.module(cpn).module
        for ref in refs.external_model if models else ():  # predict jobs: pipeline.<cpn>.model, own store
            inputs.model.append(deployed_model(self.home, self.plan.job_parameters(self.party), self.party,
                                               ref, module))
        return inputs


def run_share(job_id: str, party: Party, conf: ServiceConf, plan: JobPlan | None = None) -> int:
    """Run ``party``'s share in this process, logging to stderr: the body of both
    ``python -m flow.runtime.party`` and a party forked by the supervisor."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    folder = os.environ.get(PROFILE_ENV)
    if not folder:
        return PartyRuntime(job_id, party, conf, plan).run()
    import cProfile  # a developer's switch: each party's whole share profiled into one file

    profiler = cProfile.Profile(time.thread_time)
    try:
        return profiler.runcall(lambda: PartyRuntime(job_id, party, conf, plan).run())
    finally:
        profiler.dump_stats(_profile_path(folder, job_id, party, "runtime"))


def _profile_path(folder: str, job_id: str, party: Party, what: str) -> Path:
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / f"{job_id}_{party.role}_{party.party_id}_{what}.prof"


def main(argv: list[str] | None = None) -> int:
    job_id, role, party_id = (argv or sys.argv[1:])[:3]
    return run_share(job_id, Party(role, party_id), load_service_conf())


if __name__ == "__main__":
    sys.exit(main())
