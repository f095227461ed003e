"""``flow job``: validate, submit (with --wait progress), query, list, logs, stop, rerun."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table as RichTable

from federation.api import Party
from flow.cli.main import Env, cli, envelope
from flow.core.errors import FedweaveError
from flow.dsl import load_job
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
@envelope
def validate(conf_path: Path, dsl_path: Path):
    """Check both files and print the DAG and each party's components; runs nothing."""
    summary = load_job(conf_path, dsl_path).to_summary()
    _tell(summary["notices"])
    return summary


def _tell(notices: list[str]) -> list[str]:
    """Tell (on stderr) what the conf sets that is accepted but not acted on."""
    for notice in notices:
        click.echo(f"notice: {notice}", err=True)
    return notices


@job.command()
@_conf_opt
@_dsl_opt
@click.option("--wait", is_flag=True, help="show progress and exit 0 on success, 1 otherwise")
@click.pass_obj
@envelope
def submit(env: Env, conf_path: Path, dsl_path: Path, wait: bool):
    """Validate and start a job; prints its id at once (or waits with --wait)."""
    plan = load_job(conf_path, dsl_path)
    notices = _tell(plan.notices())
    info = env.ops.job_submit(plan, str(conf_path), str(dsl_path))
    if notices:
        info = {**info, "notices": notices}
    if not wait:
        return info
    detail = wait_for(env, info["job_id"])
    return {**info, **detail}, 0 if detail["status"] == "success" else 1


def _progress_table(detail: dict) -> RichTable:
    table = RichTable(title=f"job {detail['job_id']}  [{detail['status']}]", title_justify="left")
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


def wait_for(env: Env, job_id: str, poll: float = 0.5) -> dict:
    console = Console(stderr=True)
    detail = env.ops.job_query(job_id)
    with Live(_progress_table(detail), console=console, refresh_per_second=4, transient=False) as live:
        while detail["status"] not in FINAL_STATES:
            time.sleep(poll)
            detail = env.ops.job_query(job_id)
            live.update(_progress_table(detail))
    if detail["status"] != "success":
        console.print(f"[red]job {job_id} {detail['status']}: {detail['reason']}[/]")
    return detail


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
@click.pass_obj
@envelope
def list_jobs(env: Env, limit: int):
    """Recent jobs, newest first."""
    return env.ops.job_list(limit)


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
