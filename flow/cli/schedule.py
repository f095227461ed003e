"""``flow schedule``: cron-scheduled retraining (add, list, pause, resume, remove, run-now,
history, serve). Schedules live in this party's store; ``serve`` (or the flow server)
fires them."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from flow.cli.main import Env, cli, envelope
from flow.core.errors import FedweaveError
from flow.dsl import load_job
from flow.schedules.loop import serve
from flow.schedules.retrain import party_scheduler
from flow.schedules.rules import Firing


@cli.group()
def schedule() -> None:
    """Retrain on a cron schedule: each firing submits the job anew."""


_name_arg = click.argument("name")


@schedule.command()
@click.option("--cron", required=True, help='cron expression, e.g. "0 2 * * *" (or @daily, @hourly)')
@click.option("-c", "--conf", "conf_path", required=True, type=click.Path(path_type=Path), help="runtime conf.json")
@click.option("-d", "--dsl", "dsl_path", required=True, type=click.Path(path_type=Path), help="pipeline dsl.json")
@click.option("--name", default=None, help="schedule name (default: the dsl file's folder name)")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone the cron expression is read in")
@click.option("--overlap", type=click.Choice(["skip", "queue"]), default="skip", show_default=True,
              help="while the previous run still runs: skip the firing, or queue one")
@click.option("--promote-if", default=None,
              help="deploy a successful run's model only if e.g. 'auc>=current' (metric of the guest's Evaluation; "
                   "'hetero_lr_0.auc>=current' when it evaluates several components)")
@click.option("--paused", is_flag=True, help="add it paused")
@click.pass_obj
@envelope
def add(env: Env, cron: str, conf_path: Path, dsl_path: Path, name: str | None, timezone: str, overlap: str,
        promote_if: str | None, paused: bool):
    """Add a schedule; both files are validated now and a copy of them fires each time.

    \b
    A Reader table name may contain {latest} once ("loans_{latest}"): each firing reads
    the table of that namespace whose name matches, with {latest} standing for one or
    more characters, that was stored last (upload or bind time; a tie goes to the name
    sorting last)."""
    plan = load_job(conf_path, dsl_path)  # a bad job is refused naming the file before anything is stored
    return env.ops.schedule_add(
        cron, plan.raw_conf, plan.raw_dsl, name=name or dsl_path.resolve().parent.name, timezone=timezone,
        overlap=overlap, promote_if=promote_if, paused=paused, conf_file=str(conf_path), dsl_file=str(dsl_path))


@schedule.command("list")
@click.pass_obj
@envelope
def list_schedules(env: Env):
    """Every schedule: next firing, last job and the deployed job."""
    return env.ops.schedule_list()


@schedule.command()
@_name_arg
@click.pass_obj
@envelope
def pause(env: Env, name: str):
    """Stop firing (a queued firing is dropped)."""
    return env.ops.schedule_pause(name)


@schedule.command()
@_name_arg
@click.pass_obj
@envelope
def resume(env: Env, name: str):
    """Fire again from the next slot on (slots missed while paused are not replayed)."""
    return env.ops.schedule_resume(name)


@schedule.command()
@_name_arg
@click.pass_obj
@envelope
def remove(env: Env, name: str):
    """Delete a schedule and its history (its jobs stay)."""
    return env.ops.schedule_remove(name)


@schedule.command("run-now")
@_name_arg
@click.option("--force", is_flag=True, help="start another job even while the previous one runs")
@click.pass_obj
@envelope
def run_now(env: Env, name: str, force: bool):
    """Submit the schedule's job now, outside its slots."""
    return env.ops.schedule_run_now(name, force=force)


@schedule.command()
@_name_arg
@click.option("-l", "--limit", default=50, show_default=True)
@click.pass_obj
@envelope
def history(env: Env, name: str, limit: int):
    """The schedule's firings, oldest first: job, status, promotion decision."""
    return env.ops.schedule_history(name, limit)


@schedule.command("serve")
@click.option("--interval", default=10.0, show_default=True, help="seconds between checks")
@click.option("--once", is_flag=True, help="check once and exit")
@click.pass_obj
def serve_cmd(env: Env, interval: float, once: bool) -> None:
    """Fire due schedules until interrupted (the flow server runs the same loop)."""
    if env.ops.remote:
        raise click.ClickException("this home points at a flow server, which fires its schedules itself")
    sched = party_scheduler(env.conf, env.store)
    stop = threading.Event()

    def show(f: Firing) -> None:
        click.echo(f"{f.fire_time.isoformat()} {f.schedule}: {f.status} {f.job_id or ''} {f.reason}".rstrip(),
                   err=True)

    try:
        if once:
            for firing in sched.tick():
                show(firing)
            return
        click.echo(f"firing schedules every {interval:g}s; Ctrl-C stops", err=True)
        serve(sched, interval=interval, should_stop=stop.is_set, sleep=stop.wait, on_firing=show)
    except KeyboardInterrupt:
        stop.set()
    except FedweaveError as exc:
        raise click.ClickException(str(exc)) from exc
