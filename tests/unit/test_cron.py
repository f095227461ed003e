"""Scheduled retraining: slots, catch-up, overlap, time zones, pause/resume, run-now, rules.

The clock is injected; nothing sleeps.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flow.cron import PromoteRule, Schedule, ScheduleError, ScheduleNotFound, Scheduler, should_promote
from flow.errors import FedweaveError, JobNotFound

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
