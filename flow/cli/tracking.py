"""``flow tracking``: what a task produced (metrics, output data, model)."""

from __future__ import annotations

from pathlib import Path

import click

from flow.cli.data import party_session, party_storage, write_csv
from flow.cli.main import Env, cli, envelope
from flow.errors import StoreError
from flow.scheduler.tracking import model_view


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


def _check_task(env: Env, job_id: str, role: str, party_id: str, component: str) -> None:
    if not any(t["component"] == component for t in env.store.tasks(job_id, role, party_id)):
        raise StoreError(f"job {job_id} has no task {component} on {role}:{party_id}")


@tracking.command()
@_task_opts
@click.pass_obj
@envelope
def metrics(env: Env, job_id: str, role: str, party_id: str, component: str):
    """Metrics a task logged, by namespace and name."""
    _check_task(env, job_id, role, party_id, component)
    out: dict[str, dict] = {}
    for m in env.store.metrics(job_id, role, party_id, component):
        out.setdefault(m["namespace"], {})[m["name"]] = m["value"]["value"]
    return out


@tracking.command("output-data")
@_task_opts
@click.option("-o", "--output-path", type=click.Path(path_type=Path), default=None,
              help="directory to write each output table as CSV")
@click.option("--limit", default=10, show_default=True, help="rows to show")
@click.pass_obj
@envelope
def output_data(env: Env, job_id, role, party_id, component, output_path, limit):
    """Show (and with -o, write) a task's output tables."""
    _check_task(env, job_id, role, party_id, component)
    storage = party_storage(env)
    result = []
    for ref in env.store.outputs(job_id, role, party_id, component, "data"):
        meta = storage.meta(ref["ref"]["namespace"], ref["ref"]["name"])
        item = {"namespace": meta.namespace, "name": meta.name, "count": meta.count,
                "header": [meta.id_column] + meta.columns}
        if output_path is not None:
            target = Path(output_path) / f"{component}_{ref['index']}.csv"
            write_csv(env, storage, meta, target)
            item["file"] = str(target)
        with party_session(env, meta.partitions) as session:
            rows = []
            for part in storage.read(meta, session).iter_partitions():
                rows.extend([k, *v] for k, v in part[: limit - len(rows)])
                if len(rows) >= limit:
                    break
        item["rows"] = rows
        result.append(item)
    return result


@tracking.command("output-model")
@_task_opts
@click.pass_obj
@envelope
def output_model(env: Env, job_id, role, party_id, component):
    """The model part this party holds for a task."""
    _check_task(env, job_id, role, party_id, component)
    refs = env.store.outputs(job_id, role, party_id, component, "model")
    if not refs:
        raise StoreError(f"{component} on {role}:{party_id} of job {job_id} has no model")
    model = model_view(Path(refs[0]["ref"]["path"]).read_text())
    return {"path": refs[0]["ref"]["path"], "model": model}
