"""Scheduled retraining: slots, catch-up, overlap, time zones, pause/resume, run-now, rules.

The clock is injected; nothing sleeps.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine

from backends.storage.api import TableMeta
from flow.core.errors import FedweaveError, JobNotFound, ValidationError
from flow.core.settings import ServiceConf
from flow.governance.audit import AuditLog
from flow.ops.governance import StandaloneGovernance
from flow.schedules.loop import (
    PromoteRule,
    Schedule,
    ScheduleError,
    ScheduleNotFound,
    Scheduler,
    evaluation_metrics,
    serve,
    should_promote,
)
from flow.schedules.retrain import FiringSubmitter, resolve_latest
from flow.store import Store
from tests.postgres import postgres_url  # noqa: F401  (fixture)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, t: datetime) -> None:
        self.now = t


class Jobs:
    """Stands in for the job store: submitted jobs run until ``finish`` is called."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.state: dict[str, str] = {}
        self.submitted: list[tuple[str, str, datetime]] = []  # (job id, schedule, submitted at)
        self.fail_next = False

    def submit(self, sched: Schedule) -> str:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("conf file not found")
        job_id = f"{sched.name}-{len(self.submitted) + 1}"
        self.submitted.append((job_id, sched.name, self.clock()))
        self.state[job_id] = "running"
        return job_id

    def job_status(self, job_id: str) -> str:
        if job_id not in self.state:
            raise JobNotFound(f"no job '{job_id}'")
        return self.state[job_id]

    def finish(self, state: str = "success") -> None:
        for job_id, current in self.state.items():
            if current == "running":
                self.state[job_id] = state


T0 = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path):
    clock = Clock(T0)
    jobs = Jobs(clock)
    sched = Scheduler(f"sqlite:///{tmp_path / 'cron.sqlite'}", jobs.submit, jobs.job_status, clock)
    return sched, clock, jobs


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2024, 5, 1, hh, mm, ss, tzinfo=UTC)


def add(sched: Scheduler, name: str = "nightly", cron: str = "* * * * *", **kw) -> Schedule:
    return sched.add(name, cron, "conf.json", "dsl.json", **kw)


def test_per_minute_schedule_fires_each_minute(env):
    sched, clock, jobs = env
    add(sched)
    clock.set(at(12, 0, 59))
    assert sched.tick() == []
    for minute in range(1, 6):
        for second in (0, 20, 40):  # several ticks in one minute fire once
            clock.set(at(12, minute, second))
            sched.tick()
        jobs.finish()
    fired = [f.fire_time for f in sched.history("nightly")]
    assert fired == [at(12, m) for m in range(1, 6)]
    assert [s for _, _, s in jobs.submitted] == [at(12, m) for m in range(1, 6)]
    assert sched.get("nightly").last_fire == at(12, 5)
    assert sched.next_fire("nightly") == at(12, 6)


def test_missed_slots_after_downtime_fire_once(env):
    sched, clock, jobs = env
    add(sched, cron="0 * * * *")
    clock.set(at(17, 30))  # down from 12:00 to 17:30: slots 13:00..17:00 missed
    firings = sched.tick()
    assert [(f.fire_time, f.status) for f in firings] == [(at(17, 0), "submitted")]
    assert "caught up" in firings[0].reason and "13:00" in firings[0].reason
    jobs.finish()
    clock.set(at(17, 59))
    assert sched.tick() == []
    clock.set(at(18, 0))
    assert [f.fire_time for f in sched.tick()] == [at(18, 0)]
    assert len(jobs.submitted) == 2


def test_overlap_skip_skips_while_previous_job_runs(env):
    sched, clock, jobs = env
    add(sched, overlap="skip")
    clock.set(at(12, 1))
    sched.tick()
    clock.set(at(12, 2))
    (skipped,) = sched.tick()
    assert skipped.status == "skipped" and skipped.job_id is None and "nightly-1" in skipped.reason
    jobs.finish("failed")
    clock.set(at(12, 3))
    (fired,) = sched.tick()
    assert fired.status == "submitted" and fired.job_id == "nightly-2"
    history = [(f.fire_time, f.job_id, f.status) for f in sched.history("nightly")]
    assert history == [(at(12, 1), "nightly-1", "failed"), (at(12, 2), None, "skipped"),
                       (at(12, 3), "nightly-2", "submitted")]


def test_overlap_queue_fires_when_previous_job_ends(env):
    sched, clock, jobs = env
    add(sched, overlap="queue")
    clock.set(at(12, 1))
    sched.tick()
    clock.set(at(12, 2))
    assert [f.status for f in sched.tick()] == ["queued"]
    clock.set(at(12, 3))
    (extra,) = sched.tick()
    assert extra.status == "skipped" and "already queued" in extra.reason
    assert len(jobs.submitted) == 1
    jobs.finish()
    clock.set(at(12, 3, 30))  # the previous job ended: the queued firing goes now, not at 12:04
    (queued,) = sched.tick()
    assert queued.fire_time == at(12, 2) and queued.job_id == "nightly-2"
    assert jobs.submitted[-1][2] == at(12, 3, 30)
    clock.set(at(12, 4))
    assert [f.status for f in sched.tick()] == ["queued"]
    statuses = [(f.fire_time, f.status) for f in sched.history("nightly")]
    assert statuses == [(at(12, 1), "success"), (at(12, 2), "running"), (at(12, 3), "skipped"),
                        (at(12, 4), "queued")]


def run_ticks(sched: Scheduler, clock: Clock, jobs: Jobs, start: datetime, end: datetime, step: timedelta):
    t = start
    while t <= end:
        clock.set(t)
        sched.tick()
        jobs.finish()
        t += step


def fire_times(sched: Scheduler, name: str) -> list[datetime]:
    return [f.fire_time for f in sched.history(name)]


def test_daily_schedule_follows_its_time_zone_across_dst(env):
    sched, clock, jobs = env
    clock.set(datetime(2024, 3, 29, 12, tzinfo=UTC))
    add(sched, "morning", "0 9 * * *", timezone="Europe/Berlin")
    add(sched, "night", "30 2 * * *", timezone="Europe/Berlin")
    run_ticks(sched, clock, jobs, clock.now, datetime(2024, 4, 1, 12, tzinfo=UTC), timedelta(minutes=30))
    # 09:00 Berlin is 08:00 UTC in winter time, 07:00 UTC from March 31 (summer time)
    assert fire_times(sched, "morning") == [datetime(2024, 3, d, 8 - (d >= 31), tzinfo=UTC) for d in (30, 31)] + [
        datetime(2024, 4, 1, 7, tzinfo=UTC)]
    # 02:30 does not exist on March 31: it fires once, at 03:00 summer time (01:00 UTC)
    assert fire_times(sched, "night") == [datetime(2024, 3, 30, 1, 30, tzinfo=UTC),
                                          datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
                                          datetime(2024, 4, 1, 0, 30, tzinfo=UTC)]


def test_repeated_wall_time_fires_once_for_fixed_hours_but_interval_follows_real_time(env):
    sched, clock, jobs = env
    clock.set(datetime(2024, 10, 26, 20, tzinfo=UTC))
    add(sched, "night", "30 2 * * *", timezone="Europe/Berlin")
    add(sched, "halfhourly", "*/30 * * * *", timezone="Europe/Berlin")
    run_ticks(sched, clock, jobs, clock.now, datetime(2024, 10, 28, 2, tzinfo=UTC), timedelta(minutes=15))
    # 02:30 happens twice on October 27 (summer, then winter time): one firing, the first
    assert fire_times(sched, "night") == [datetime(2024, 10, 27, 0, 30, tzinfo=UTC),
                                          datetime(2024, 10, 28, 1, 30, tzinfo=UTC)]
    times = fire_times(sched, "halfhourly")
    assert all(b - a == timedelta(minutes=30) for a, b in zip(times, times[1:]))
    local = [t.astimezone(BERLIN).strftime("%H:%M%z") for t in times if t.date() == datetime(2024, 10, 27).date()]
    assert local[:6] == ["02:00+0200", "02:30+0200", "02:00+0100", "02:30+0100", "03:00+0100", "03:30+0100"]


def test_pause_and_resume(env):
    sched, clock, jobs = env
    add(sched)
    sched.pause("nightly")
    assert sched.get("nightly").paused and sched.next_fire("nightly") is None
    clock.set(at(12, 5))
    assert sched.tick() == []
    clock.set(at(12, 5, 30))
    sched.resume("nightly")
    clock.set(at(12, 5, 50))
    assert sched.tick() == []  # slots slept through are not replayed
    clock.set(at(12, 6))
    assert [f.fire_time for f in sched.tick()] == [at(12, 6)]


def test_pause_drops_a_queued_firing(env):
    sched, clock, jobs = env
    add(sched, overlap="queue")
    for m in (1, 2):
        clock.set(at(12, m))
        sched.tick()
    sched.pause("nightly")
    jobs.finish()
    sched.resume("nightly")
    clock.set(at(12, 2, 30))
    assert sched.tick() == [] and len(jobs.submitted) == 1
    assert sched.history("nightly")[-1].status == "skipped"


def test_run_now(env):
    sched, clock, jobs = env
    add(sched, "hourly", "0 * * * *")
    clock.set(at(12, 17))
    job_id = sched.run_now("hourly")
    assert job_id == "hourly-1" and jobs.submitted[0][2] == at(12, 17)
    (firing,) = sched.history("hourly")
    assert firing.manual and firing.fire_time == at(12, 17)
    assert sched.next_fire("hourly") == at(13, 0)  # the cron slots are untouched
    with pytest.raises(ScheduleError, match="hourly-1 is still running"):
        sched.run_now("hourly")
    assert sched.run_now("hourly", force=True) == "hourly-2"
    sched.pause("hourly")
    jobs.finish()
    assert sched.run_now("hourly") == "hourly-3"  # also while paused
    with pytest.raises(ScheduleNotFound, match="did you mean 'hourly'"):
        sched.run_now("hourlly")


def test_run_now_queues_behind_a_running_job(env):
    sched, clock, jobs = env
    add(sched, "q", "0 * * * *", overlap="queue")
    clock.set(at(12, 10))
    sched.run_now("q")
    assert sched.run_now("q") is None
    clock.set(at(12, 20))
    assert sched.tick() == []
    jobs.finish()
    clock.set(at(12, 25))
    (fired,) = sched.tick()
    assert fired.job_id == "q-2" and fired.manual and fired.fire_time == at(12, 10)


def test_a_failed_submission_is_recorded_and_the_next_slot_fires(env):
    sched, clock, jobs = env
    add(sched, "a")
    add(sched, "b")
    jobs.fail_next = True
    clock.set(at(12, 1))
    firings = {f.status for f in sched.tick()}
    assert firings == {"failed", "submitted"}
    failed = [f for n in ("a", "b") for f in sched.history(n) if f.status == "failed"]
    assert len(failed) == 1 and "conf file not found" in failed[0].reason
    jobs.finish()
    clock.set(at(12, 2))
    assert [f.status for f in sched.tick()] == ["submitted", "submitted"]


def test_a_vanished_job_does_not_block_the_schedule(env):
    sched, clock, jobs = env
    add(sched)
    clock.set(at(12, 1))
    sched.tick()
    jobs.state.clear()  # the job store lost it
    clock.set(at(12, 2))
    assert [f.status for f in sched.tick()] == ["submitted"]
    assert sched.history("nightly")[0].status == "lost"


def test_schedules_persist_and_two_tickers_fire_a_slot_once(env, tmp_path: Path):
    sched, clock, jobs = env
    add(sched, promote_if="auc>=current")
    other = Scheduler(f"sqlite:///{tmp_path / 'cron.sqlite'}", jobs.submit, jobs.job_status, clock)
    (loaded,) = other.list()
    assert loaded.name == "nightly" and loaded.promote_if == PromoteRule.parse("auc>=current")
    clock.set(at(12, 1))
    assert len(sched.tick() + other.tick()) == 1
    assert len(jobs.submitted) == 1
    assert [f.job_id for f in other.history("nightly")] == ["nightly-1"]


def test_remove(env):
    sched, clock, jobs = env
    add(sched)
    clock.set(at(12, 1))
    sched.tick()
    sched.remove("nightly")
    assert sched.list() == []
    with pytest.raises(ScheduleNotFound):
        sched.get("nightly")
    add(sched)
    assert sched.history("nightly") == []


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"cron": "61 * * * *"}, ["cron", "61 * * * *"]),
        ({"cron": "* * * *"}, ["cron", "expected 5"]),
        ({"cron": "* * * * * *"}, ["cron", "expected 5"]),
        ({"cron": "@sometimes"}, ["cron", "@sometimes"]),
        ({"timezone": "Europe/Berln"}, ["timezone", "did you mean 'Europe/Berlin'"]),
        ({"timezone": "Mars/Olympus"}, ["timezone", "Mars/Olympus"]),
        ({"promote_if": "auc=>current"}, ["promote_if", "auc=>current"]),
        ({"promote_if": "auc>=best"}, ["promote_if"]),
        ({"overlap": "wait"}, ["overlap"]),
        ({"name": "no spaces please"}, ["name"]),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(env, kwargs, words):
    sched, _, _ = env
    fields = {"name": "nightly", "cron": "* * * * *", **kwargs}
    with pytest.raises(ScheduleError) as err:
        sched.add(fields.pop("name"), fields.pop("cron"), "conf.json", "dsl.json", **fields)
    assert isinstance(err.value, FedweaveError)
    for word in words:
        assert word in str(err.value)
    assert sched.list() == []


def test_duplicate_name_refused(env):
    sched, _, _ = env
    add(sched)
    with pytest.raises(ScheduleError, match="already exists"):
        add(sched, cron="0 * * * *")


def test_aliases_accepted(env):
    sched, clock, _ = env
    add(sched, "d", "@daily")
    assert sched.next_fire("d") == datetime(2024, 5, 2, tzinfo=UTC)


# -- promotion rules ----------------------------------------------------------------------------


def test_promote_rule_parsing():
    rule = PromoteRule.parse(" ks > current + 0.01 ")
    assert (rule.metric, rule.op, rule.baseline, rule.margin) == ("ks", ">", "current", 0.01)
    rule = PromoteRule.parse("loss<=current-0.5")
    assert (rule.op, rule.margin) == ("<=", -0.5)
    rule = PromoteRule.parse("auc>=0.75")
    assert (rule.baseline, rule.margin) == (0.75, 0.0)


@pytest.mark.parametrize(
    "rule, new, current, expected",
    [
        ("auc>=current", {"auc": 0.80}, {"auc": 0.79}, True),
        ("auc>=current", {"auc": 0.78}, {"auc": 0.79}, False),
        ("auc>=current", {"auc": 0.79}, {"auc": 0.79}, True),
        ("auc>current", {"auc": 0.79}, {"auc": 0.79}, False),
        ("auc>current+0.01", {"auc": 0.805}, {"auc": 0.79}, True),
        ("auc>current+0.01", {"auc": 0.795}, {"auc": 0.79}, False),
        ("loss<=current-0.1", {"loss": 0.35}, {"loss": 0.5}, True),
        ("loss<=current-0.1", {"loss": 0.45}, {"loss": 0.5}, False),
        ("auc>=0.75", {"auc": 0.7}, None, False),
        ("auc>=0.75", {"auc": 0.76}, {"auc": 0.99}, True),
        ("auc>=current", {"auc": 0.5}, None, True),  # nothing to beat yet
        ("auc>=current", {"auc": 0.5}, {"ks": 0.3}, True),
        ("validate.auc>=current", {"validate": {"auc": 0.9}}, {"validate": {"auc": 0.95}}, False),
    ],
)
def test_should_promote(rule, new, current, expected):
    assert should_promote(rule, new, current) is expected
    assert should_promote(PromoteRule.parse(rule), new, current) is expected


def test_should_promote_errors():
    with pytest.raises(ScheduleError, match="no metric 'auc'.*did you mean 'AUC'"):
        should_promote("auc>=current", {"AUC": 0.8}, {"auc": 0.7})
    with pytest.raises(ScheduleError, match="'auc' of the new model is 'high'"):
        should_promote("auc>=current", {"auc": "high"}, None)
    with pytest.raises(ScheduleError, match="promote_if"):
        should_promote("auc ~ current", {"auc": 0.8}, None)


# -- promotion of a successful run, on metrics recorded in the store --------------------------


class StoreJobs:
    """Jobs recorded in a real job store, with the guest's Evaluation metrics, never run."""

    def __init__(self, store: Store):
        self.store, self.n = store, 0

    def submit(self, sched: Schedule) -> str:
        self.n += 1
        job_id = f"{sched.name}-{self.n}"
        self.store.create_job(job_id, conf={}, dsl={}, initiator=("guest", "9999"),
                              parties=[("guest", "9999"), ("host", "10000")],
                              components={("guest", "9999"): [("hetero_lr_0", "HeteroLR"),
                                                              ("evaluation_0", "Evaluation")],
                                          ("host", "10000"): [("hetero_lr_0", "HeteroLR")]})
        self.store.update_job(job_id, status="running")
        return job_id

    def finish(self, job_id: str, status: str = "success", **metrics: float) -> None:
        for name, value in metrics.items():
            self.store.add_metric(job_id, "guest", "9999", "evaluation_0", "evaluation", name, value)
        self.store.add_metric(job_id, "guest", "9999", "evaluation_0", "evaluation", "roc_curve", {"fpr": [0, 1]})
        for t in self.store.tasks(job_id):
            self.store.update_task(job_id, t["component"], t["role"], t["party_id"], status=status)
        self.store.update_job(job_id, status=status)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    """An empty migrated job store of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flow.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE jobs, party_runs, tasks, metrics, outputs, cron_schedules, cron_firings "
                             "RESTART IDENTITY")
    engine.dispose()
    return url


@pytest.fixture
def store_env(store_url: str):
    store = Store(store_url)
    clock = Clock(T0)
    jobs = StoreJobs(store)
    yield Scheduler(store, jobs.submit, clock=clock), clock, jobs
    store.close()


def test_promote_if_deploys_only_a_model_at_least_as_good(store_env):
    sched, clock, jobs = store_env
    add(sched, "retrain", promote_if="auc>=current")
    deployed = []
    for minute, (auc, ks) in enumerate([(0.80, 0.5), (0.78, 0.6), (0.80, 0.4), (0.85, 0.7)], start=1):
        clock.set(at(12, minute))
        (firing,) = sched.tick()
        jobs.finish(firing.job_id, auc=auc, ks=ks)
        sched.refresh("retrain")
        deployed.append(sched.get("retrain").deployed_job)
    # the first has nothing to beat; 0.78 < 0.80 is kept out; 0.80 >= 0.80 goes in; 0.85 goes in
    assert deployed == ["retrain-1", "retrain-1", "retrain-3", "retrain-4"]
    got = sched.get("retrain")
    assert got.deployed_metrics["auc"] == 0.85 and got.deployed_metrics["evaluation_0"]["ks"] == 0.7
    notes = [f.promotion for f in sched.history("retrain")]
    assert notes[0].startswith("deployed") and "no deployed model" in notes[0]
    assert notes[1] == "kept retrain-1 (auc 0.78 not >= current 0.8)"
    assert notes[2].startswith("deployed (auc 0.8 >= current 0.8)")
    sched.refresh()  # seeing the same success again decides nothing twice
    assert [f.promotion for f in sched.history("retrain")] == notes


def test_promote_if_lower_is_better_and_failed_runs_are_never_deployed(store_env):
    sched, clock, jobs = store_env
    add(sched, "loss", promote_if="logloss<=current")
    clock.set(at(12, 1))
    (first,) = sched.tick()
    jobs.finish(first.job_id, logloss=0.4)
    clock.set(at(12, 2))
    (second,) = sched.tick()  # the tick sees the first job's success and promotes it
    jobs.finish(second.job_id, "failed", logloss=0.1)
    clock.set(at(12, 3))
    (third,) = sched.tick()
    jobs.finish(third.job_id, logloss=0.3)
    sched.refresh()
    assert sched.get("loss").deployed_job == third.job_id
    assert [(f.status, bool(f.promotion)) for f in sched.history("loss")] == [
        ("success", True), ("failed", False), ("success", True)]


def test_promote_if_without_the_metric_keeps_the_deployed_model(store_env):
    sched, clock, jobs = store_env
    add(sched, "m", promote_if="auc>=current")
    clock.set(at(12, 1))
    (firing,) = sched.tick()
    jobs.finish(firing.job_id, ks=0.4)  # no auc recorded
    sched.refresh()
    assert sched.get("m").deployed_job is None
    assert "no metric 'auc'" in sched.history("m")[0].promotion


def test_evaluation_metrics_reads_the_guests_evaluation(store_env):
    _, _, jobs = store_env
    job_id = jobs.submit(Schedule.build(name="x", cron="* * * * *", conf_path="c", dsl_path="d"))
    jobs.finish(job_id, auc=0.9, ks=0.3)
    metrics = evaluation_metrics(jobs.store, job_id)
    assert metrics["auc"] == 0.9 and metrics["evaluation_0"]["ks"] == 0.3
    assert "roc_curve" not in metrics and "roc_curve" not in metrics["evaluation_0"]  # numbers only


# -- the loop -----------------------------------------------------------------------------------


def test_serve_fires_due_schedules_on_the_injected_clock(env):
    sched, clock, jobs = env
    add(sched)
    seen = []

    def sleep(seconds: float) -> None:  # time passes only when the loop sleeps
        jobs.finish()
        clock.set(clock.now + timedelta(seconds=seconds))

    ticks = serve(sched, interval=30, sleep=sleep, should_stop=lambda: clock.now > at(12, 5), on_firing=seen.append)
    assert ticks == 10  # 12:00:30 .. 12:05:00 in 30 s steps
    assert [f.fire_time for f in seen] == [at(12, m) for m in range(1, 6)]
    assert all(f.schedule == "nightly" and f.status == "submitted" for f in seen)


def test_serve_survives_a_failing_tick(env):
    sched, clock, jobs = env
    add(sched)
    calls = {"n": 0}
    real_tick = sched.tick

    def flaky_tick():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database briefly away")
        return real_tick()

    sched.tick = flaky_tick  # type: ignore[method-assign]
    clock.set(at(12, 1))
    assert serve(sched, interval=1, sleep=lambda s: None, should_stop=lambda: calls["n"] >= 2) == 2
    assert len(jobs.submitted) == 1


# -- retraining on the newest table, submitting like `flow job submit` --------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hetero_lr"


class Tables:
    """A storage that only lists tables (all resolve_latest asks of one)."""

    def __init__(self, *tables: tuple[str, str, int]):
        self.metas = [TableMeta(namespace=ns, name=n, created=T0 + timedelta(minutes=m)) for ns, n, m in tables]

    def list(self, namespace: str | None = None) -> list[TableMeta]:
        return [m for m in self.metas if namespace is None or m.namespace == namespace]


def example_job(guest: str, host: str) -> tuple[dict, dict]:
    conf = json.loads((EXAMPLE / "conf.json").read_text())
    dsl = json.loads((EXAMPLE / "dsl.json").read_text())
    roles = conf["component_parameters"]["role"]
    roles["guest"]["0"]["reader_0"]["table"]["name"] = guest
    roles["host"]["0"]["reader_0"]["table"]["name"] = host
    return conf, dsl


def test_latest_placeholder_picks_the_newest_matching_table():
    storage = Tables(("experiment", "loans_v1", 1), ("experiment", "loans_v3", 3), ("experiment", "loans_v2", 2),
                     ("experiment", "loans_", 9),  # the placeholder stands for one or more characters
                     ("experiment", "old_loans_v9", 9), ("other", "loans_v9", 9),
                     ("experiment", "hostdata_2024", 5), ("experiment", "hostdata_2023", 5))
    conf, dsl = example_job("loans_{latest}", "hostdata_{latest}")
    resolved, chosen = resolve_latest(conf, dsl, storage)
    roles = resolved["component_parameters"]["role"]
    assert roles["guest"]["0"]["reader_0"]["table"]["name"] == "loans_v3"
    assert roles["host"]["0"]["reader_0"]["table"]["name"] == "hostdata_2024"  # same time: the name sorting last
    assert chosen == {"component_parameters.role.guest.0.reader_0.table.name": "loans_v3",
                      "component_parameters.role.host.0.reader_0.table.name": "hostdata_2024"}
    assert conf["component_parameters"]["role"]["guest"]["0"]["reader_0"]["table"]["name"] == "loans_{latest}"
    only_guest, _ = resolve_latest(conf, dsl, storage, roles=["guest"])
    assert only_guest["component_parameters"]["role"]["host"]["0"]["reader_0"]["table"]["name"] == "hostdata_{latest}"


def test_latest_placeholder_without_a_match_names_the_field():
    conf, dsl = example_job("loans_{latest}", "h_{latest}_{latest}")
    with pytest.raises(ValidationError) as err:
        resolve_latest(conf, dsl, Tables(("experiment", "loans_", 1)), label="my_conf.json")
    problems = err.value.problems
    assert any(p.startswith("my_conf.json: component_parameters.role.guest.0.reader_0.table.name: no table in "
                            "namespace 'experiment' matches 'loans_{latest}'") for p in problems)
    assert any("role.host.0.reader_0.table.name" in p and "more than once" in p for p in problems)


def test_a_firing_submits_the_resolved_validated_job_and_audits_it(tmp_path: Path, monkeypatch):
    conf, dsl = example_job("g_{latest}", "breast_hetero_host")
    (tmp_path / "conf.json").write_text(json.dumps(conf))
    (tmp_path / "dsl.json").write_text(json.dumps(dsl))
    service = ServiceConf(home=str(tmp_path / "home"))
    monkeypatch.delenv("FLOW_HOME", raising=False)
    service.home_path.mkdir()
    store = Store(service.database_url)
    started = []

    def start(conf_, store_, plan, conf_path, dsl_path):
        assert (conf_path, dsl_path) == (str(tmp_path / "conf.json"), str(tmp_path / "dsl.json"))
        started.append(plan.raw_conf)
        return {"job_id": f"job{len(started)}"}

    storage = Tables(("experiment", "g_20240501", 1), ("experiment", "g_20240502", 2))
    monkeypatch.setattr("flow.schedules.retrain.engine_from_conf", lambda conf_: storage)
    audit = AuditLog(tmp_path / "home", "local", fsync=False)
    submit = FiringSubmitter(service, store, audit=audit, start=start)
    sched = Schedule.build(name="nightly", cron="0 2 * * *", conf_path=str(tmp_path / "conf.json"),
                           dsl_path=str(tmp_path / "dsl.json"))
    assert submit(sched) == "job1"
    assert started[0]["component_parameters"]["role"]["guest"]["0"]["reader_0"]["table"]["name"] == "g_20240502"
    (entry,) = audit.entries(kind="schedule.fire")
    assert entry["job"] == "job1" and entry["details"]["tables"] == {
        "component_parameters.role.guest.0.reader_0.table.name": "g_20240502"}
    conf["component_parameters"]["common"]["hetero_lr_0"]["max_iter"] = "many"  # refused like `flow job submit`
    (tmp_path / "conf.json").write_text(json.dumps(conf))
    with pytest.raises(ValidationError, match="hetero_lr_0.max_iter"):
        submit(sched)
    assert len(started) == 1  # nothing else was started
    store.close()


def test_governance_keeps_a_copy_of_the_job_and_refuses_a_duplicate(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("FLOW_HOME", raising=False)
    service = ServiceConf(home=str(tmp_path / "home"))
    service.home_path.mkdir()
    store = Store(service.database_url)
    ops = StandaloneGovernance(service, store)
    conf, dsl = example_job("g_{latest}", "h")
    added = ops.schedule_add("0 2 * * *", conf, dsl, name="nightly", promote_if="auc>=current")
    folder = service.home_path / "schedules" / "nightly"
    assert added["conf_path"] == str(folder / "conf.json") and json.loads((folder / "dsl.json").read_text()) == dsl
    assert added["next_fire"] is not None and added["deployed_job"] is None
    other = copy.deepcopy(conf)
    other["component_parameters"]["common"]["hetero_lr_0"]["max_iter"] = 3
    with pytest.raises(ScheduleError, match="already exists"):
        ops.schedule_add("* * * * *", other, dsl, name="nightly")
    assert json.loads((folder / "conf.json").read_text()) == conf  # the first one's copy is untouched
    with pytest.raises(ScheduleError, match="timezone"):  # refused before anything is written
        ops.schedule_add("* * * * *", conf, dsl, name="berlin", timezone="Europe/Berln")
    with pytest.raises(ValidationError, match="my.json: component_parameters.common.hetero_lr_0.max_iter"):
        other["component_parameters"]["common"]["hetero_lr_0"]["max_iter"] = "many"
        ops.schedule_add("* * * * *", other, dsl, name="bad", conf_file="my.json")
    assert not (service.home_path / "schedules" / "berlin").exists()
    assert not (service.home_path / "schedules" / "bad").exists()
    assert [s["name"] for s in ops.schedule_list()] == ["nightly"]
    ops.schedule_remove("nightly")
    assert not folder.exists() and ops.schedule_list() == []
    store.close()
