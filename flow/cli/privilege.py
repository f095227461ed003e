"""``flow privilege``: which of this party's tables other parties' jobs may read."""

from __future__ import annotations

import click

from flow.cli.main import Env, cli, envelope


@cli.group()
def privilege() -> None:
    """Grant, revoke and list other parties' access to this party's tables."""


_party_opt = click.option("--party", required=True, help="ROLE:ID (e.g. guest:9999) or ID for any role")
_namespace_opt = click.option("--namespace", required=True)
_name_opt = click.option("--name", required=True, help="table name, or * for every table of the namespace")


@privilege.command()
@_party_opt
@_namespace_opt
@_name_opt
@click.pass_obj
@envelope
def grant(env: Env, party: str, namespace: str, name: str):
    """Let PARTY's jobs read NAMESPACE/NAME."""
    return env.ops.privilege_grant(party, namespace, name)


@privilege.command()
@_party_opt
@_namespace_opt
@_name_opt
@click.pass_obj
@envelope
def revoke(env: Env, party: str, namespace: str, name: str):
    """Take back a grant."""
    return env.ops.privilege_revoke(party, namespace, name)


@privilege.command("list")
@click.option("--party", default=None, help="only this party id (ROLE:ID also accepted)")
@click.option("--namespace", default=None)
@click.option("--name", default=None)
@click.pass_obj
@envelope
def list_grants(env: Env, party: str | None, namespace: str | None, name: str | None):
    """The grants held, by party and table."""
    return env.ops.privilege_list(party=party, namespace=namespace, name=name)
