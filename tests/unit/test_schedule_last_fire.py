"""``last_fire`` of a schedule after run-now firings (issue 12 §5.7): ``flow schedule list``
showed ``last_fire: null`` for a schedule that had only been fired by hand."""

from __future__ import annotations

from tests.unit.test_cron import add, at, env  # noqa: F401  (env is a fixture)


def test_run_now_sets_last_fire_and_keeps_the_cron_slots(env):  # noqa: F811
    sched, clock, jobs = env
    add(sched, "hourly", "0 * * * *")
    assert sched.get("hourly").last_fire is None
    clock.set(at(12, 17))
    sched.run_now("hourly")
    assert sched.get("hourly").last_fire == at(12, 17)
    assert sched.next_fire("hourly") == at(13, 0)  # the anchor of the cron slots is untouched
    jobs.finish()
    clock.set(at(13, 0, 10))
    (fired,) = sched.tick()
    assert fired.fire_time == at(13, 0) and sched.get("hourly").last_fire == at(13, 0)


def test_a_queued_run_now_sets_last_fire_when_it_fires(env):  # noqa: F811
    sched, clock, jobs = env
    add(sched, "q", "0 * * * *", overlap="queue")
    clock.set(at(12, 10))
    sched.run_now("q")
    clock.set(at(12, 12))
    assert sched.run_now("q") is None  # queued behind the running job
    assert sched.get("q").last_fire == at(12, 10)
    jobs.finish()
    clock.set(at(12, 25))
    (fired,) = sched.tick()
    assert fired.manual and sched.get("q").last_fire == at(12, 12)


def test_an_earlier_run_now_does_not_move_last_fire_back(env):  # noqa: F811
    sched, clock, jobs = env
    add(sched, "m", "* * * * *")
    clock.set(at(12, 5, 1))
    sched.tick()
    jobs.finish()
    sched.store.schedules.record_firing("m", at(12, 1), "submitted", job_id="x", manual=True, recorded=at(12, 5))
    assert sched.get("m").last_fire == at(12, 5)
