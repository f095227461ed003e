"""``flow tracking``: what a task produced (metrics, output data, model)."""

from __future__ import annotations

from pathlib import Path

import click

from flow.cli.main import Env, cli, envelope


@cli.group()
def tracking() -> None:
    """Metrics, output data and models of a job's tasks."""


def _task_opts(fn):
    for opt in reversed([
        click.option("-j", "--job-id", required=True),
        click.option("-r", "--role", required=True),
        click.option("-p", "--party-id", required=True),
        click.option("-cpn", "--component-name", "component", required=True),
    ]):
        fn = opt(fn)
    return fn


@tracking.command()
@_task_opts
@click.pass_obj
@envelope
def metrics(env: Env, job_id: str, role: str, party_id: str, component: str):
    """Metrics a task logged, by namespace and name."""
    return env.ops.tracking_metrics(job_id, role, party_id, component)


@tracking.command("output-data")
@_task_opts
@click.option("-o", "--output-path", type=click.Path(path_type=Path), default=None,
              help="directory to write each output table as CSV")
@click.option("--limit", default=10, show_default=True, help="rows to show")
@click.pass_obj
@envelope
def output_data(env: Env, job_id, role, party_id, component, output_path, limit):
    """Show (and with -o, write) a task's output tables."""
    return env.ops.tracking_output_data(job_id, role, party_id, component, output_path, limit)


@tracking.command("output-model")
@_task_opts
@click.pass_obj
@envelope
def output_model(env: Env, job_id, role, party_id, component):
    """The model part this party holds for a task."""
    return env.ops.tracking_output_model(job_id, role, party_id, component)
