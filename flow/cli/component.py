"""``flow component`` (FATE 1.x's group, alongside ``flow tracking``) and ``flow module``.

FATE users' scripts run unchanged: the same subcommands and option names (``-j/--job-id``,
``-r/--role``, ``-p/--party-id``, ``-cpn/--component-name``, ``-o/--output-path``). Each
reads through the same operations as ``flow tracking``; ``list`` and ``parameters`` are
operations of their own (:meth:`flow.ops.api.Ops.component_list`,
:meth:`~flow.ops.api.Ops.component_parameters`). ``flow module`` describes what each module
accepts from the params models the job validator checks a conf against.
"""

from __future__ import annotations

import click

from flow.cli import tracking
from flow.cli.main import Env, cli, envelope
from flow.cli.tracking import _task_opts
from flow.dsl.modules import describe_module, module_list


@cli.group()
def component() -> None:
    """A job's components: list, effective parameters, metrics, output data and models (FATE 1.x)."""


@component.command("list")
@click.option("-j", "--job-id", required=True)
@click.pass_obj
@envelope
def list_components(env: Env, job_id: str):
    """The components of a job, in DAG order, with module, stage and upstreams."""
    info = env.ops.component_list(job_id)
    return {"job_id": info["job_id"], "components": info["components"]}


@component.command()
@_task_opts
@click.pass_obj
@envelope
def parameters(env: Env, job_id: str, role: str, party_id: str, component: str):
    """The effective parameters of a task: the conf's layers for that party, parsed by the module."""
    return env.ops.component_parameters(job_id, role, party_id, component)


@component.command()
@_task_opts
@click.pass_obj
@envelope
def metrics(env: Env, job_id: str, role: str, party_id: str, component: str):
    """The metric names a task logged, by namespace (``metric-all`` for the values)."""
    return {ns: sorted(names) for ns, names in env.ops.tracking_metrics(job_id, role, party_id, component).items()}


# the same commands as flow tracking's, under FATE 1.x's names
component.add_command(tracking.metrics, "metric-all")
component.add_command(tracking.output_model, "output-model")
component.add_command(tracking.output_data, "output-data")


@component.command("output-data-table")
@_task_opts
@click.pass_obj
@envelope
def output_data_table(env: Env, job_id: str, role: str, party_id: str, component: str):
    """Where a task's output tables are stored: name, namespace and row count of each."""
    return [{"table_name": t["name"], "table_namespace": t["namespace"], "count": t["count"], "index": t["index"]}
            for t in env.ops.tracking_output_data(job_id, role, party_id, component, None, 0)]


@cli.group()
def module() -> None:
    """The component modules and the parameters each accepts."""


@module.command("list")
@envelope
def list_modules():
    """Every module: roles, ports and how many parameters it takes."""
    return module_list()


@module.command()
@click.argument("name")
@envelope
def describe(name: str):
    """Every parameter of module NAME with its type, default and allowed values."""
    return describe_module(name)
