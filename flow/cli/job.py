"""``flow job``: validate, submit (with --wait progress), query, list, logs, stop, rerun."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text

from federation.api import Party
from flow.cli.main import Env, cli, envelope, own_process
from flow.core.errors import FedweaveError
from flow.dsl import load_job
from flow.dsl.dag import JobDAG
from flow.dsl.dag_text import render_dag
from flow.runtime import job as jobs
from flow.store import FINAL_STATES

_COLORS = {"success": "green", "failed": "red", "running": "yellow", "timeout": "red",
           "canceled": "magenta", "waiting": "dim"}


@cli.group()
def job() -> None:
    """Submit and manage jobs."""


_conf_opt = click.option("-c", "--conf", "conf_path", required=True, type=click.Path(path_type=Path),
                         help="runtime conf.json")
_dsl_opt = click.option("-d", "--dsl", "dsl_path", required=True, type=click.Path(path_type=Path),
                        help="pipeline dsl.json")
_job_opt = click.option("-j", "--job-id", required=True)


@job.command()
@_conf_opt
@_dsl_opt
@click.option("--dag", "draw_dag", is_flag=True, help="also draw the DAG's stages and edges (on stderr)")
@click.pass_obj
@envelope
def validate(env: Env, conf_path: Path, dsl_path: Path, draw_dag: bool = False):
    """Check both files, and the tables of the parties this home holds, and print the DAG and
    each party's components; runs nothing."""
    from flow.ops.client_conf import load_client_conf
    from flow.runtime.preflight import check_tables  # opens storage engines: only this command needs it

    plan = load_job(conf_path, dsl_path)
    if load_client_conf(env.conf.home_path):  # a client of a flow server: the tables are there (submit checks)
        unchecked = [f"{p}: tables not checked (this home is a client of a flow server; submit checks them)"
                     for p in plan.all_parties()]
    else:
        unchecked = check_tables(env.conf, plan, str(conf_path))
    summary = plan.to_summary()
    if draw_dag:
        click.echo(render_dag(plan.dag, {c: v["module"] for c, v in summary["components"].items()}), err=True)
    _tell(summary["notices"])
    for line in unchecked:
        click.echo(f"notice: {line}", err=True)
    return {**summary, "unchecked_tables": unchecked}


def _tell(notices: list[str]) -> list[str]:
    """Tell (on stderr) what the conf sets that is accepted but not acted on."""
    for notice in notices:
        click.echo(f"notice: {notice}", err=True)
    return notices


@job.command()
@_conf_opt
@_dsl_opt
@click.option("--wait", is_flag=True, help="show progress and exit 0 on success, 1 otherwise")
@click.option("--description", default=None, help="what the job is (FATE's notes); shown by query and list")
@click.pass_obj
@envelope
def submit(env: Env, conf_path: Path, dsl_path: Path, wait: bool, description: str | None = None):
    """Validate and start a job; prints its id at once (or waits with --wait)."""
    plan = load_job(conf_path, dsl_path)
    notices = _tell(plan.notices())
    jobs.fork_supervisors = own_process()  # a short-lived process: the supervisor starts from its imports
    info = env.ops.job_submit(plan, str(conf_path), str(dsl_path), description=description)
    if notices:
        info = {**info, "notices": notices}
    if not wait:
        return info
    detail = wait_for(env, info["job_id"])
    return {**info, **detail}, 0 if detail["status"] == "success" else 1


def _progress_table(detail: dict) -> RichTable:
    # wide enough for its title to stay on one line (a title wraps at the table's width)
    table = RichTable(title=escape(f"job {detail['job_id']}  [{detail['status']}]"), title_justify="left",
                      min_width=len(detail["job_id"]) + len(detail["status"]) + 8)
    parties = sorted({(t["role"], t["party_id"]) for t in detail["tasks"]})
    table.add_column("component")
    for role, pid in parties:
        table.add_column(f"{role} {pid}")
    by_cpn: dict[str, dict] = {}
    for t in detail["tasks"]:
        by_cpn.setdefault(t["component"], {})[(t["role"], t["party_id"])] = t
    for cpn, cells in by_cpn.items():
        row = [cpn]
        for p in parties:
            t = cells.get(p)
            if t is None:
                row.append("")
                continue
            state = t["status"]
            extra = f" {t['progress']}%" if state == "running" and t["progress"] else ""
            row.append(f"[{_COLORS.get(state, '')}]{state}{extra}[/]")
        table.add_row(*row)
    return table


def wait_for(env: Env, job_id: str, poll: float = 0.5, console: Console | None = None) -> dict:
    """Polls quickly at first (a small job ends within a second or two), then every ``poll`` s;
    a supervisor this process started wakes it as it ends."""
    console = console or Console(stderr=True)
    detail = env.ops.job_query(job_id)
    delay = min(0.05, poll)
    with Live(_progress_table(detail), console=console, refresh_per_second=4, transient=False) as live:
        while detail["status"] not in FINAL_STATES:
            jobs.pause(job_id, delay)
            delay = min(delay * 1.5, poll)
            detail = env.ops.job_query(job_id)
            live.update(_progress_table(detail))
    if detail["status"] != "success":
        print_verdict(console, job_id, detail)
    return detail


def print_verdict(console: Console, job_id: str, detail: dict) -> None:
    """The "job ... failed: reason" line under the progress table: on a line of its own
    (never on the table's last border line), neither wrapped at the terminal's width nor read
    as markup (a reason quoting "[guest 9999 ...]" keeps its brackets)."""
    console.print(Text(f"job {job_id} {detail['status']}: {detail['reason']}", style="red"),
                  soft_wrap=True, overflow="ignore", crop=False)


@job.command("run")
@_conf_opt
@_dsl_opt
@_job_opt
@click.option("-r", "--role", required=True)
@click.option("-p", "--party-id", required=True)
@click.pass_obj
@envelope
def run_one_party(env: Env, conf_path: Path, dsl_path: Path, job_id: str, role: str, party_id: str):
    """Run ONE party's share of a job here, in the foreground, with this party's own home
    (each organisation runs its own under the same agreed job id). Exit 0 on success."""
    detail, code = jobs.run_party(env.conf, env.store, conf_path, dsl_path, job_id, Party(role, party_id))
    return detail, 0 if code == 0 else 1


@job.command()
@_job_opt
@click.pass_obj
@envelope
def query(env: Env, job_id: str):
    """State of a job and of every party's tasks, with failure reasons."""
    return env.ops.job_query(job_id)


@job.command("list")
@click.option("-l", "--limit", default=20, show_default=True)
@click.option("-s", "--status", default=None, help="only jobs in this state (waiting, running, success, failed, ...)")
@click.option("-r", "--role", default=None, help="only jobs with a party of this role")
@click.option("-p", "--party", "--party-id", "party_id", default=None, help="only jobs this party id takes part in")
@click.option("--initiator", default=None, help="only jobs this party initiated: ROLE:ID or ID")
@click.option("--since", default=None, help="only jobs created at or after this ISO time (2026-11-26, ...T02:00Z)")
@click.option("--until", default=None, help="only jobs created before this ISO time")
@click.option("--description", default=None, help="only jobs whose description holds this text (any case)")
@click.pass_obj
@envelope
def list_jobs(env: Env, limit: int, status: str | None, role: str | None, party_id: str | None,
              initiator: str | None, since: str | None, until: str | None, description: str | None):
    """Recent jobs, newest first (of those matching every filter given)."""
    return env.ops.job_list(limit, status=status, role=role, party_id=party_id, initiator=initiator,
                            since=since, until=until, description=description)


@job.command("dag")
@_job_opt
@click.pass_obj
def dag_picture(env: Env, job_id: str):
    """Draw a job's DAG: its stages as rows of boxes, then every edge (plain text)."""
    try:
        info = env.ops.component_list(job_id)
        modules = {c["component_name"]: c["module"] for c in info["components"]}
        click.echo(render_dag(JobDAG.from_dsl(info["dsl"]), modules))
    except FedweaveError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


@job.command()
@_job_opt
@click.pass_obj
@envelope
def stop(env: Env, job_id: str):
    """Cancel every party's processes of a job."""
    return env.ops.job_stop(job_id)


@job.command()
@_job_opt
@click.option("-cpn", "--component-name", "component", default=None,
              help="rerun from this component (default: the first failed one)")
@click.option("--wait", is_flag=True)
@click.pass_obj
@envelope
def rerun(env: Env, job_id: str, component: str | None, wait: bool):
    """Rerun a finished job from a component, reusing the outputs before it."""
    jobs.fork_supervisors = own_process()
    info = env.ops.job_rerun(job_id, component)
    if not wait:
        return info
    detail = wait_for(env, job_id)
    return {**info, **detail}, 0 if detail["status"] == "success" else 1


@job.command()
@_job_opt
@click.option("-r", "--role", default=None)
@click.option("-p", "--party-id", default=None)
@click.option("-cpn", "--component-name", "component", default=None)
@click.option("-f", "--follow", is_flag=True, help="keep printing new lines until the job ends")
@click.pass_obj
def logs(env: Env, job_id: str, role: str | None, party_id: str | None, component: str | None, follow: bool):
    """Print component logs, each line prefixed [role party component] (with -f, streamed
    from the flow server when the CLI points at one)."""
    try:
        for line in env.ops.job_logs(job_id, role, party_id, component, follow=follow):
            click.echo(line)
    except FedweaveError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
