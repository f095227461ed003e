"""``flow model``: the models training jobs left in this home — deploy, list, export, import.

These commands work on this home's model store (``$FLOW_HOME/model_store``), or on the
flow server's after ``flow init``: each organisation deploys, exports and imports its own
parts. The output files (``-o``) are written here either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from flow.cli.main import Env, cli, envelope


@cli.group()
def model() -> None:
    """Deploy, list, export and import the models of training jobs."""


def _which(fn):
    for opt in reversed([
        click.option("-j", "--job-id", default=None, help="the training job (its id is the model version)"),
        click.option("--model-id", default=None, help="e.g. arbiter-10000#guest-9999#host-10000#model"),
        click.option("--model-version", default=None, help="the training job's id"),
    ]):
        fn = opt(fn)
    return fn


@model.command()
@_which
@click.option("--cpn-list", default=None,
              help="components to deploy, comma separated (default: Readers, components with a model, "
                   "and data components that are not training-only)")
@click.option("-o", "--output-path", type=click.Path(path_type=Path), default=None,
              help="directory to write predict_dsl.json and predict_conf.json")
@click.pass_obj
@envelope
def deploy(env: Env, job_id, model_id, model_version, cpn_list, output_path):
    """Make the predict DSL of a trained model (and a predict conf to start from)."""
    result = env.ops.model_deploy(job_id, model_id, model_version,
                                  None if cpn_list is None else cpn_list.split(","))
    if output_path is not None:
        output_path.mkdir(parents=True, exist_ok=True)
        for name in ("predict_dsl", "predict_conf"):
            path = output_path / f"{name}.json"
            path.write_text(json.dumps(result[name], indent=2) + "\n")
            result[f"{name}_path"] = str(path)
    return result


@model.command("list")
@click.option("--model-id", default=None, help="only this model id's versions")
@click.pass_obj
@envelope
def list_models(env: Env, model_id):
    """Every model version kept in this home, with its parties, components and deployment."""
    return env.ops.model_list(model_id)


@model.command()
@_which
@click.option("-o", "--output-path", required=True, type=click.Path(path_type=Path),
              help="the archive file to write (a zip of JSON files)")
@click.option("-r", "--role", default=None, help="export only this role's part (with --party-id)")
@click.option("-p", "--party-id", default=None, help="export only this party's part (with --role)")
@click.pass_obj
@envelope
def export(env: Env, job_id, model_id, model_version, output_path, role, party_id):
    """Write a model version's parts held here to one archive file."""
    return env.ops.model_export(output_path, job_id, model_id, model_version, role, party_id)


@model.command("import")
@click.option("-f", "--file", "file", required=True, type=click.Path(path_type=Path),
              help="an archive written by 'flow model export'")
@click.option("--force", is_flag=True, help="replace parts this home already holds")
@click.option("--require-signed", is_flag=True,
              help="refuse the archive unless every part is signed by a party key this home knows")
@click.pass_obj
@envelope
def import_(env: Env, file, force, require_signed):
    """Add an exported model to this home after checking every file's sha256 and the
    exporting parties' signatures."""
    return env.ops.model_import(file, force, require_signed)
