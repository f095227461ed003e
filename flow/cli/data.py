"""``flow data`` (upload, download) and ``flow table`` (info, list, delete)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flow.cli.main import Env, cli, envelope
from flow.core.errors import ConfigError
from flow.ops.upload_conf import read_upload_conf


@cli.group()
def data() -> None:
    """Put tables into this party's storage and get them out."""


@data.command()
@click.option("-f", "--file", "file", type=click.Path(path_type=Path), default=None, help="CSV with a header row")
@click.option("-c", "--conf", "conf_path", type=click.Path(path_type=Path), default=None,
              help="FATE upload conf (file, namespace, table_name, partition)")
@click.option("--namespace", default=None)
@click.option("--name", default=None)
@click.option("--id-column", default="id", show_default=True)
@click.option("--label-column", default=None)
@click.option("--partitions", type=int, default=None)
@click.option("--engine", default=None, help="storage engine (default: service conf)")
@click.option("--drop", is_flag=True, help="replace the table if it exists (FATE's upload conf \"drop\": 1)")
@click.pass_obj
@envelope
def upload(env: Env, file, conf_path, namespace, name, id_column, label_column, partitions, engine, drop):
    """Upload a CSV as table NAMESPACE/NAME (refused if it exists, unless --drop)."""
    opts = {"file": file, "namespace": namespace, "name": name, "partitions": partitions,
            "id_column": id_column, "label_column": label_column, "drop": drop or None, "head": None}
    if conf_path is not None:
        opts.update({k: v for k, v in read_upload_conf(conf_path).items() if v is not None and not (
            k in ("file", "namespace", "name") and opts[k])})
    for key, flag in (("file", "-f"), ("namespace", "--namespace"), ("name", "--name")):
        if not opts[key]:
            raise ConfigError(f"flow data upload: {flag} is required (or give -c upload_conf.json)")
    return env.ops.data_upload(opts["file"], opts["namespace"], opts["name"], id_column=opts["id_column"],
                               label_column=opts["label_column"], partitions=opts["partitions"], engine=engine,
                               drop=bool(opts["drop"]), head=opts["head"] is not False)


@data.command()
@click.option("--namespace", required=True)
@click.option("--name", required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="CSV file to write")
@click.option("--engine", default=None)
@click.pass_obj
@envelope
def download(env: Env, namespace: str, name: str, output: Path, engine: str | None):
    """Write table NAMESPACE/NAME to a CSV file."""
    return env.ops.data_download(namespace, name, output, engine)


@cli.group()
def table() -> None:
    """Inspect stored tables."""


@table.command()
@click.option("--namespace", required=True)
@click.option("--name", required=True)
@click.option("--engine", default=None)
@click.pass_obj
@envelope
def info(env: Env, namespace: str, name: str, engine: str | None):
    """Engine, address, schema, count and checksum of a table."""
    return env.ops.table_info(namespace, name, engine)


@table.command()
@click.option("--namespace", required=True)
@click.option("--name", required=True)
@click.option("--engine", required=True, help="the engine the data lives in (hive, hdfs)")
@click.option("--address", required=True,
              help='JSON address, e.g. \'{"database": "bank", "table": "customers"}\' or \'{"path": "/data/x"}\'')
@click.option("--id-column", default="id", show_default=True)
@click.option("--label-column", default=None)
@click.pass_obj
@envelope
def bind(env: Env, namespace: str, name: str, engine: str, address: str, id_column: str, label_column):
    """Register an existing Hive table or HDFS path as NAMESPACE/NAME without copying it."""
    try:
        where = json.loads(address)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--address: invalid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(where, dict):
        raise ConfigError("--address: expected a JSON object")
    return env.ops.table_bind(namespace, name, engine, where, id_column=id_column, label_column=label_column)


@table.command("list")
@click.option("--namespace", default=None)
@click.pass_obj
@envelope
def list_tables(env: Env, namespace: str | None):
    """Tables in this party's storage."""
    return env.ops.table_list(namespace)


@table.command()
@click.option("--namespace", required=True)
@click.option("--name", required=True)
@click.pass_obj
@envelope
def delete(env: Env, namespace: str, name: str):
    """Remove a table."""
    return env.ops.table_delete(namespace, name)
