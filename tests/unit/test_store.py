"""The job store, one suite run on SQLite and on PostgreSQL: every method, writers in
several processes at once, and the Alembic migrations from an empty database."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import traceback
from datetime import datetime, timezone
from typing import Iterator

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from flow.core.errors import JobNotFound, StoreError
from flow.store import Store, derive_status
from flow.store.migrate import BASELINE, HEAD, SCRIPT_LOCATION, current_revision, downgrade, include_name, upgrade
from flow.store.models import Base, Job
from flow.store.schedules import Deployment
from tests.postgres import fresh_database, postgres_url, require_postgres  # noqa: F401  (fixture)

BACKENDS = ["sqlite", "postgresql"]
#: the tables of revision 0001 (what ``create_all`` made before migrations existed)
TABLES_0001 = {"jobs", "party_runs", "tasks", "metrics", "outputs"}
TABLES = TABLES_0001 | {"privileges", "cron_schedules", "cron_firings", "users"}
GUEST, HOST = ("guest", "9999"), ("host", "10000")
COMPONENTS = [("reader_0", "Reader"), ("psi_0", "Intersection"), ("lr_0", "HeteroLR")]


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_scratch() -> Iterator[str]:
    """A second PostgreSQL database, emptied before each migration test."""
    require_postgres()
    with fresh_database("fedweave_scratch") as url:
        yield url


def _wipe_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path) -> str:
    """An empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flow.sqlite'}"
    url = request.getfixturevalue("pg_scratch")
    _wipe_postgres(url)
    return url


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> str:
    """A migrated database of each backend holding no rows."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flow.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    Store(url).close()  # migrated once per session; later calls only check the revision
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(sorted(TABLES))} RESTART IDENTITY")
    engine.dispose()
    return url


@pytest.fixture
def store(store_url) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.close()


def _job(store: Store, job_id: str = "j1", parties=(GUEST, HOST), components=COMPONENTS, **kw) -> None:
    store.create_job(job_id, conf={"initiator": {"role": "guest"}, "n": [1, 2.5]}, dsl={"components": {}},
                     initiator=GUEST, parties=list(parties),
                     components={p: list(components) for p in parties}, **kw)


def _task(store: Store, job_id: str, component: str, party=GUEST) -> dict:
    return next(t for t in store.tasks(job_id, *party) if t["component"] == component)


# -- jobs ---------------------------------------------------------------------------------------

def test_create_job_records_job_party_runs_and_tasks(store):
    _job(store, conf_path="/c.json", dsl_path="/d.json")
    job = store.job("j1")
    assert job["status"] == "waiting" and job["attempt"] == 0
    assert (job["initiator_role"], job["initiator_party"]) == GUEST
    assert job["conf"] == {"initiator": {"role": "guest"}, "n": [1, 2.5]} and job["dsl"] == {"components": {}}
    assert (job["conf_path"], job["dsl_path"]) == ("/c.json", "/d.json")
    assert job["created"].tzinfo is not None and job["created"].utcoffset().total_seconds() == 0
    assert job["started"] is None and job["ended"] is None
    assert [(r["role"], r["party_id"], r["status"]) for r in store.party_runs("j1")] == [
        (*GUEST, "waiting"), (*HOST, "waiting")]
    assert len(store.tasks("j1")) == 2 * len(COMPONENTS)
    host_tasks = store.tasks("j1", "host", 10000)  # an int party id means the same party
    assert [(t["component"], t["module"], t["status"]) for t in host_tasks] == [
        (c, m, "waiting") for c, m in COMPONENTS]
    assert store.tasks("j1", "arbiter") == [] and store.party_runs("nope") == []


def test_duplicate_job_id_is_refused_and_nothing_changes(store):
    _job(store)
    with pytest.raises(IntegrityError):  # the runtime catches it when two roles race to record a job
        _job(store, parties=(("arbiter", "10000"),))
    assert {r["role"] for r in store.party_runs("j1")} == {"guest", "host"}


def test_missing_job_raises_job_not_found(store):
    with pytest.raises(JobNotFound, match="'ghost'"):
        store.job("ghost")
    with pytest.raises(JobNotFound, match="'ghost'"):
        store.update_job("ghost", status="running")
    with pytest.raises(JobNotFound, match="'ghost'"):
        store.update_job("ghost")


def test_jobs_lists_newest_first_with_a_limit(store):
    for job_id in ("j1", "j2", "j3"):
        _job(store, job_id, parties=(GUEST,))
    assert [j["job_id"] for j in store.jobs()] == ["j3", "j2", "j1"]
    assert [j["job_id"] for j in store.jobs(limit=2)] == ["j3", "j2"]
    assert store.jobs(limit=0) == []
    with pytest.raises(StoreError, match="limit"):
        store.jobs(limit=-1)


def test_update_job_stamps_started_once_and_ended_on_final_states(store):
    _job(store)
    store.update_job("j1", status="running", supervisor_pid=4242)
    first = store.job("j1")
    assert first["status"] == "running" and first["supervisor_pid"] == 4242
    assert first["started"] is not None and first["ended"] is None
    store.update_job("j1", status="running", attempt=1)  # a rerun keeps the first start
    assert store.job("j1")["started"] == first["started"] and store.job("j1")["attempt"] == 1
    store.update_job("j1", status="failed", reason="boom")
    failed = store.job("j1")
    assert failed["ended"] >= failed["started"] and failed["reason"] == "boom"
    store.update_job("j1", status="waiting", ended=None)
    assert store.job("j1")["ended"] is None and store.job("j1")["status"] == "waiting"


def test_end_job_sets_a_final_state_once_and_the_first_reason_stays(store):
    _job(store)
    store.update_task("j1", COMPONENTS[0][0], *GUEST, status="success")
    assert store.end_job("j1", "failed", "party 10000 failed: its server restarted")
    assert [(t["status"], t["reason"]) for t in store.tasks("j1", *GUEST)] == [("success", "")] + [
        ("failed", "party 10000 failed: its server restarted")] * (len(COMPONENTS) - 1)  # what had ended stays
    assert {(r["status"], r["reason"]) for r in store.party_runs("j1")} == {
        ("failed", "party 10000 failed: its server restarted")}
    assert not store.end_job("j1", "failed", "job supervisor is gone")  # a second finder loses
    job = store.job("j1")
    assert (job["status"], job["reason"]) == ("failed", "party 10000 failed: its server restarted")
    assert job["ended"] is not None
    assert not store.end_job("ghost", "failed", "x")
    with pytest.raises(StoreError, match="'running' is not final"):
        store.end_job("j1", "running", "x")


def test_bad_fields_are_refused_with_one_clear_line(store):
    _job(store)
    with pytest.raises(StoreError, match="no field 'staus'.*did you mean 'status'"):
        store.update_job("j1", staus="running")
    with pytest.raises(StoreError, match="'runing' is not one of"):
        store.update_task("j1", "reader_0", *GUEST, status="runing")
    with pytest.raises(StoreError, match="jobs.job_id is 65 characters long, at most 64"):
        _job(store, "x" * 65)
    with pytest.raises(StoreError, match="no field 'id'"):
        store.update_task("j1", "reader_0", *GUEST, id=99)
    assert store.job("j1")["status"] == "waiting" and [j["job_id"] for j in store.jobs()] == ["j1"]


# -- party runs ---------------------------------------------------------------------------------

def test_update_party_run_changes_only_that_party(store):
    _job(store)
    store.update_party_run("j1", *HOST, status="running", pid=31337)
    runs = {(r["role"], r["party_id"]): r for r in store.party_runs("j1")}
    assert (runs[HOST]["status"], runs[HOST]["pid"]) == ("running", 31337)
    assert (runs[GUEST]["status"], runs[GUEST]["pid"]) == ("waiting", None)
    store.update_party_run("j1", "host", 10000, status="failed", reason="killed")
    assert [r["reason"] for r in store.party_runs("j1") if r["role"] == "host"] == ["killed"]
    with pytest.raises(StoreError, match="arbiter:10000"):
        store.update_party_run("j1", "arbiter", "10000", status="running")


# -- tasks --------------------------------------------------------------------------------------

def test_update_task_stamps_started_and_ended(store):
    _job(store)
    store.update_task("j1", "psi_0", *GUEST, status="running", attempt=1)
    running = _task(store, "j1", "psi_0")
    assert running["started"] is not None and running["ended"] is None and running["attempt"] == 1
    store.update_task("j1", "psi_0", *GUEST, progress=40)  # no status: no stamps
    assert _task(store, "j1", "psi_0")["started"] == running["started"]
    store.update_task("j1", "psi_0", *GUEST, status="success", progress=100)
    done = _task(store, "j1", "psi_0")
    assert done["ended"] >= done["started"] == running["started"] and done["progress"] == 100
    store.update_task("j1", "psi_0", *GUEST, status="running")  # a retry starts the clock again
    retry = _task(store, "j1", "psi_0")
    assert retry["started"] >= done["ended"] and retry["ended"] is None
    assert _task(store, "j1", "psi_0", HOST)["status"] == "waiting"  # the other party's share
    assert all(t["started"] is None for t in store.tasks("j1") if t["component"] != "psi_0")
    with pytest.raises(StoreError, match="no task nope_0 of guest:9999"):
        store.update_task("j1", "nope_0", *GUEST, status="running")


def test_update_tasks_touches_only_tasks_in_the_given_states(store):
    _job(store)
    store.update_task("j1", "reader_0", *GUEST, status="success")
    store.update_task("j1", "psi_0", *GUEST, status="running")
    before = _task(store, "j1", "reader_0")
    store.update_tasks("j1", ("running", "waiting"), status="canceled", reason="stopped by user")
    after = {(t["component"], t["role"]): t for t in store.tasks("j1")}
    assert after[("reader_0", "guest")] == before
    changed = [t for key, t in after.items() if key != ("reader_0", "guest")]
    assert len(changed) == 2 * len(COMPONENTS) - 1
    assert all(t["status"] == "canceled" and t["reason"] == "stopped by user" and t["ended"] for t in changed)
    store.update_tasks("j1", ("running",), status="failed")  # none left running: nothing happens
    assert {t["status"] for t in store.tasks("j1")} == {"success", "canceled"}
    with pytest.raises(StoreError, match="'done' is not one of"):
        store.update_tasks("j1", ("done",), status="failed")


# -- metrics and outputs ------------------------------------------------------------------------

def test_metrics_round_trip_as_json(store):
    _job(store)
    values = [
        {"auc": 0.75, "curve": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]}},
        [1, "two", 3.5, True, None],
        "text with ünïcode",
        7,
        float("nan"),
        {"weights": np.array([0.25, -1.5]), "n": np.int64(12), "lr": np.float32(0.5), "pair": (1, 2)},
    ]
    for i, value in enumerate(values):
        store.add_metric("j1", *GUEST, "lr_0", "train", f"m{i}", value)
    store.add_metric("j1", *GUEST, "psi_0", "train", "other", 1)
    store.add_metric("j1", *HOST, "lr_0", "train", "host_side", 2)
    rows = store.metrics("j1", *GUEST, "lr_0")
    assert [r["name"] for r in rows] == [f"m{i}" for i in range(len(values))]
    got = [r["value"]["value"] for r in rows]
    assert got[:4] == values[:4]
    assert got[4] is None  # NaN is stored as null on every backend
    assert got[5] == {"weights": [0.25, -1.5], "n": 12, "lr": 0.5, "pair": [1, 2]}
    assert all(r["namespace"] == "train" and r["created"].tzinfo is not None for r in rows)
    assert [r["name"] for r in store.metrics("j1", "host", 10000, "lr_0")] == ["host_side"]
    with pytest.raises(StoreError, match="metrics.value holds a object"):
        store.add_metric("j1", *GUEST, "lr_0", "train", "bad", {"x": object()})
    assert len(store.metrics("j1", *GUEST, "lr_0")) == len(values)


def test_put_output_replaces_the_same_slot(store):
    _job(store)
    store.put_output("j1", *GUEST, "psi_0", "data", 1, {"name": "second"})
    store.put_output("j1", *GUEST, "psi_0", "data", 0, {"name": "first", "v": 1})
    store.put_output("j1", *GUEST, "psi_0", "data", 0, {"name": "first", "v": 2})
    store.put_output("j1", *GUEST, "psi_0", "model", 0, {"path": "/m.json"})
    store.put_output("j1", *HOST, "psi_0", "data", 0, {"name": "host's"})
    data = store.outputs("j1", *GUEST, "psi_0", "data")
    assert [(o["index"], o["ref"]) for o in data] == [(0, {"name": "first", "v": 2}), (1, {"name": "second"})]
    assert [o["ref"] for o in store.outputs("j1", *GUEST, "psi_0", "model")] == [{"path": "/m.json"}]
    assert [o["ref"] for o in store.outputs("j1", "host", 10000, "psi_0", "data")] == [{"name": "host's"}]
    assert store.outputs("j1", *GUEST, "lr_0", "data") == []


@pytest.mark.parametrize("states, expected", [
    ([], "waiting"),
    (["waiting", "waiting"], "waiting"),
    (["success", "waiting"], "running"),
    (["running", "waiting"], "running"),
    (["success", "success"], "success"),
    (["success", "canceled", "running"], "canceled"),
    (["timeout", "canceled"], "timeout"),
    (["canceled", "failed", "timeout"], "failed"),
])
def test_derive_status(states, expected):
    assert derive_status(states) == expected


# -- repositories: schedules and privileges -----------------------------------------------------

def test_schedule_repository_compare_and_set_writes_win_once(store):
    repo, t0 = store.schedules, datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    row = dict(name="n", cron="* * * * *", conf_path="c", dsl_path="d", created=t0, anchor=t0)
    assert repo.add(**row) and not repo.add(**row)  # a second add of the name is refused
    assert repo.claim("n", 0, anchor=t0, last_fire=t0) and not repo.claim("n", 0, anchor=t0)
    assert repo.get("n")["version"] == 1 and repo.get("nope") is None and repo.names() == ["n"]
    repo.record_firing("n", t0, "submitted", job_id="j1", recorded=t0)
    (live,) = repo.live_firings("n", ["submitted"])
    assert repo.set_firing_status(live["id"], "submitted", "success")
    assert not repo.set_firing_status(live["id"], "submitted", "failed")  # another ticker moved it first
    assert repo.queue_manual("n", t0, "waiting") is True and repo.queue_manual("n", t0, "again") is False
    assert repo.queue_manual("nope", t0, "x") is None
    deploy = Deployment("j1", {"auc": 0.9}, t0, replacing=None)
    assert repo.promote("n", live["id"], "deployed", deploy) and not repo.promote("n", live["id"], "x", deploy)
    assert repo.pause("n", "schedule paused") and repo.names(active_only=True) == []
    got = repo.get("n", history=5)
    assert (got["deployed_job"], got["queued_fire"]) == ("j1", None)
    assert [(f["status"], f["promotion"]) for f in got["history"]] == [("success", "deployed"), ("skipped", "")]
    assert repo.remove("n") and not repo.remove("n") and repo.all(history=1) == []


def test_privilege_repository_grants_once_and_revokes_what_exists(store):
    repo = store.privileges
    first, created = repo.grant("9999", "guest", "experiment", "t")
    again, created_again = repo.grant("9999", "guest", "experiment", "t")
    assert created and not created_again and again["id"] == first["id"]
    repo.grant("8888", "", "bank", "*")
    assert [(r["party_id"], r["name"]) for r in repo.find()] == [("8888", "*"), ("9999", "t")]
    assert [r["name"] for r in repo.find(party_id=8888)] == ["*"] and repo.find(namespace="none") == []
    assert repo.revoke("9999", "guest", "experiment", "t") and not repo.revoke("9999", "guest", "experiment", "t")


# -- several processes at once -----------------------------------------------------------------

N_WORKERS, N_TASKS, N_STEPS = 4, 3, 8


def _writer(url: str, party_id: str, barrier, errors) -> None:
    """One party runtime: drives its own tasks of the shared job through their life."""
    try:
        store = Store(url)
        barrier.wait(timeout=120)
        store.update_party_run("jc", "host", party_id, status="running", pid=int(party_id))
        for t in range(N_TASKS):
            cpn = f"cpn_{t}"
            store.update_task("jc", cpn, "host", party_id, status="running")
            for step in range(1, N_STEPS + 1):
                store.update_task("jc", cpn, "host", party_id, progress=step * 100 // N_STEPS)
                store.add_metric("jc", "host", party_id, cpn, "train", "loss", {"step": step, "party": party_id})
            store.put_output("jc", "host", party_id, cpn, "data", 0, {"by": party_id, "try": 1})
            store.put_output("jc", "host", party_id, cpn, "data", 0, {"by": party_id, "try": 2})
            store.update_task("jc", cpn, "host", party_id, status="success", reason=f"done by {party_id}")
        store.update_party_run("jc", "host", party_id, status="success")
        store.close()
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def _opener(url: str, job_id: str, barrier, errors) -> None:
    """A runtime opening a database nobody has created yet, at the same moment as others."""
    try:
        import alembic.command  # noqa: F401  (loaded before the barrier: the race stays tight)

        barrier.wait(timeout=120)
        store = Store(url)
        store.create_job(job_id, conf={}, dsl={}, initiator=GUEST, parties=[GUEST],
                         components={GUEST: [("reader_0", "Reader")]})
        store.close()
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def _run_processes(target, args_per_process: list[tuple]) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(len(args_per_process)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, errors)) for args in args_per_process]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert not failures, "\n".join(failures)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_concurrent_writers_lose_no_update(store):
    parties = [("host", str(20000 + w)) for w in range(N_WORKERS)]
    _job(store, "jc", parties=parties, components=[(f"cpn_{t}", "HeteroLR") for t in range(N_TASKS)])
    _run_processes(_writer, [(store.url, pid) for _, pid in parties])
    tasks = store.tasks("jc")
    assert len(tasks) == N_WORKERS * N_TASKS
    for t in tasks:
        assert (t["status"], t["progress"], t["reason"]) == ("success", 100, f"done by {t['party_id']}"), t
        assert t["ended"] >= t["started"]
        metrics = store.metrics("jc", "host", t["party_id"], t["component"])
        assert [m["value"]["value"]["step"] for m in metrics] == list(range(1, N_STEPS + 1))
        assert {m["value"]["value"]["party"] for m in metrics} == {t["party_id"]}
        outputs = store.outputs("jc", "host", t["party_id"], t["component"], "data")
        assert [o["ref"] for o in outputs] == [{"by": t["party_id"], "try": 2}]
    assert {(r["status"], r["pid"]) for r in store.party_runs("jc")} == {
        ("success", int(pid)) for _, pid in parties}


def test_concurrent_first_open_migrates_once(empty_url):
    _run_processes(_opener, [(empty_url, f"job_{i}") for i in range(N_WORKERS)])
    store = Store(empty_url)
    assert current_revision(store.engine) == HEAD
    assert sorted(j["job_id"] for j in store.jobs()) == [f"job_{i}" for i in range(N_WORKERS)]
    store.close()


# -- migrations ---------------------------------------------------------------------------------

def _schema_diff(engine) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name, "compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_head_constant_is_the_newest_revision():
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(SCRIPT_LOCATION))
    assert scripts.get_heads() == [HEAD]
    assert scripts.get_revision(BASELINE) is not None


def test_empty_database_is_migrated_to_the_models(empty_url):
    engine = create_engine(empty_url)
    with engine.begin() as conn:  # another part's table in the same database stays alone
        conn.execute(text("CREATE TABLE other_part (name VARCHAR(64) PRIMARY KEY)"))
    assert current_revision(engine) is None
    Store(empty_url).close()
    assert current_revision(engine) == HEAD
    assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version", "other_part"}
    assert _schema_diff(engine) == []
    upgrade(engine)  # again: nothing to do, nothing breaks
    store = Store(empty_url)
    _job(store)
    assert store.job("j1")["status"] == "waiting" and current_revision(engine) == HEAD
    store.close()
    engine.dispose()


def test_database_made_by_create_all_is_adopted(empty_url):
    engine = create_engine(empty_url)
    # how the store made its tables before migrations
    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in TABLES_0001])
    with engine.begin() as conn:
        conn.execute(Job.__table__.insert().values(
            job_id="old", status="success", initiator_role="guest", initiator_party="9999", conf={}, dsl={},
            conf_path="", dsl_path="", reason="", attempt=0))
    store = Store(empty_url)
    assert current_revision(engine) == HEAD
    assert store.job("old")["status"] == "success"
    store.close()
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_url):
    Store(empty_url).close()
    engine = create_engine(empty_url)
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert current_revision(engine) == HEAD and _schema_diff(engine) == []
    engine.dispose()


def test_database_from_a_newer_version_is_refused(empty_url):
    Store(empty_url).close()
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    with pytest.raises(StoreError, match="f00dcafe"):
        Store(empty_url)
    engine.dispose()


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-dir/sub/flow.sqlite",
                                 "postgresql://nobody:secret@127.0.0.1:1/db"])
def test_unreachable_database_is_a_store_error(url):
    with pytest.raises(StoreError, match="cannot open the job store") as err:
        Store(url)
    assert "secret" not in str(err.value)


def test_migrate_module_runs_without_the_flow_command(empty_url):
    def migrate(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "flow.store.migrate", empty_url, *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert "CREATE TABLE jobs" in migrate("--sql")
    assert migrate("--current") == "base"  # --sql only prints
    assert migrate() == HEAD
    assert migrate("base", "--downgrade") == "base"


def test_timestamps_are_utc_aware_on_every_backend(store):
    _job(store)
    store.update_task("j1", "reader_0", *GUEST, status="running")
    t = _task(store, "j1", "reader_0")
    assert t["started"].tzinfo is not None and t["started"].astimezone(timezone.utc) == t["started"]
    assert t["started"].utcoffset().total_seconds() == 0
