"""``flow user``: the people who may use this party's flow server, and their roles.

In standalone mode these change the home's own store (the server of the same home reads
it); after ``flow init`` they go to the server, which only an admin may ask. A token is
printed once, by ``add`` and ``rotate``; only its hash is kept.
"""

from __future__ import annotations

import click

from flow.cli.main import Env, cli, envelope

ROLE_CHOICES = ("viewer", "operator", "admin")


@cli.group()
def user() -> None:
    """Add, list, remove users of the flow server, and rotate their tokens."""


def _shown_once() -> None:
    click.echo("note: the token is shown this once and kept only as a hash; hand it over now", err=True)


@user.command()
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLE_CHOICES),
              help="viewer reads; operator also submits, stops, uploads, schedules; admin also manages "
                   "privileges, users, model imports and reads the audit log")
@click.pass_obj
@envelope
def add(env: Env, name: str, role: str):
    """Let NAME use the flow server as ROLE; prints its token once."""
    result = env.ops.user_add(name, role)
    _shown_once()
    return result


@user.command("list")
@click.pass_obj
@envelope
def list_users(env: Env):
    """Every user: name, role, created, last used (never a token)."""
    return env.ops.user_list()


@user.command()
@click.argument("name")
@click.pass_obj
@envelope
def remove(env: Env, name: str):
    """Take NAME away; its token stops working at once."""
    return env.ops.user_remove(name)


@user.command()
@click.argument("name")
@click.pass_obj
@envelope
def rotate(env: Env, name: str):
    """Give NAME a new token (printed once); the old one stops working."""
    result = env.ops.user_rotate(name)
    _shown_once()
    return result
