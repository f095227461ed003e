"""``flow model``: the models training jobs left in this home — deploy, list, export, import.

These commands work on this home's model store (``$FLOW_HOME/model_store``): each
organisation deploys, exports and imports its own parts.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from federation.api import Party
from flow.audit_trail import record as audit_record
from flow.cli.main import Env, cli, envelope
from flow.errors import FedweaveError
from flow.model_archive import export_model, import_model
from flow.model_store import ModelStore


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


def _store(env: Env) -> ModelStore:
    return ModelStore(env.conf.home_path)


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
    store = _store(env)
    mid, version = store.find(job_id, model_id, model_version)
    result = store.deploy(mid, version, None if cpn_list is None else cpn_list.split(","))
    if output_path is not None:
        output_path.mkdir(parents=True, exist_ok=True)
        for name in ("predict_dsl", "predict_conf"):
            path = output_path / f"{name}.json"
            path.write_text(json.dumps(result[name], indent=2) + "\n")
            result[f"{name}_path"] = str(path)
    audit_record(env.conf, "model.deploy", job=version, model_id=mid, cpn_list=result["cpn_list"])
    return result


@model.command("list")
@click.option("--model-id", default=None, help="only this model id's versions")
@click.pass_obj
@envelope
def list_models(env: Env, model_id):
    """Every model version kept in this home, with its parties, components and deployment."""
    return _store(env).list(model_id)


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
    if (role is None) != (party_id is None):
        raise FedweaveError("give --role and --party-id together, or neither")
    store = _store(env)
    mid, version = store.find(job_id, model_id, model_version)
    result = export_model(store, mid, version, output_path, Party(role, party_id) if role else None)
    audit_record(env.conf, "model.export", job=version, model_id=mid, parties=result["parties"],
                 file=result["file"], sha256=result["sha256"])
    return result


@model.command("import")
@click.option("-f", "--file", "file", required=True, type=click.Path(path_type=Path),
              help="an archive written by 'flow model export'")
@click.option("--force", is_flag=True, help="replace parts this home already holds")
@click.pass_obj
@envelope
def import_(env: Env, file, force):
    """Add an exported model to this home after checking every file's sha256."""
    result = import_model(_store(env), file, force)
    audit_record(env.conf, "model.import", job=result["model_version"], model_id=result["model_id"],
                 parties=result["parties"], file=result["file"])
    return result
