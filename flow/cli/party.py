"""``flow party init|show|add|list|remove|rotate-key``: this party's key and its route table."""

from __future__ import annotations

from typing import Any

import click

from flow.cli.main import Env, cli, envelope
from flow.ops.party import PartyBook, parse_rabbitmq, parse_url


def _routes(rabbitmq: str | None, pulsar: str | None, server: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rabbitmq:
        out["rabbitmq"] = parse_rabbitmq(rabbitmq)
    if pulsar:
        out["pulsar"] = {"url": parse_url(pulsar, "--pulsar", ("pulsar", "pulsar+ssl"))}
    if server:
        out["server"] = parse_url(server, "--server", ("http", "https"))
    return out


def _address_options(fn: Any) -> Any:
    fn = click.option("--server", default=None, help="the party's flow server, http(s)://HOST:PORT")(fn)
    fn = click.option("--pulsar", default=None, help="Pulsar cluster of its inbox topics, pulsar+ssl://HOST:PORT")(fn)
    return click.option("--rabbitmq", default=None, help="broker of its inbound queues, HOST:PORT[/VHOST]")(fn)


@cli.group()
def party() -> None:
    """This party's identity (Ed25519 key) and the parties it trusts (route_table.yaml)."""


@party.command()
@click.option("--party-id", required=True, help="this party's id, e.g. 9999")
@_address_options
@click.pass_obj
@envelope
def init(env: Env, party_id: str, rabbitmq: str | None, pulsar: str | None, server: str | None):
    """Create this party's key (if absent) and list it in the route table; prints its public key."""
    return PartyBook(env.conf).init(party_id, _routes(rabbitmq, pulsar, server))


@party.command()
@click.option("--party-id", default=None, help="default: server.party_id, else the only key in this home")
@click.pass_obj
@envelope
def show(env: Env, party_id: str | None):
    """This party's id, public key (what peers put in their route tables) and fingerprint."""
    return PartyBook(env.conf).show(party_id)


@party.command()
@click.argument("party_id")
@click.option("--public-key", required=True, help="base64 of the peer's raw 32-byte Ed25519 public key")
@_address_options
@click.option("--rotated-from", default=None, help="the key listed now, when the peer rotated its key")
@click.option("--signature", default=None, help="with --rotated-from: the old key's signature of the new")
@click.option("--replace", is_flag=True, help="replace a listed key without a rotation signature")
@click.pass_obj
@envelope
def add(env: Env, party_id: str, public_key: str, rabbitmq: str | None, pulsar: str | None, server: str | None,
        rotated_from: str | None, signature: str | None, replace: bool):
    """Trust a peer's public key (and record where it receives)."""
    return PartyBook(env.conf).add(party_id, public_key, _routes(rabbitmq, pulsar, server), rotated_from,
                                   signature, replace)


@party.command("list")
@click.pass_obj
@envelope
def list_(env: Env):
    """Every party in the route table, with its key's fingerprint and addresses."""
    return PartyBook(env.conf).entries()


@party.command()
@click.argument("party_id")
@click.pass_obj
@envelope
def remove(env: Env, party_id: str):
    """Stop trusting a peer: remove it from the route table."""
    return PartyBook(env.conf).remove(party_id)


@party.command("rotate-key")
@click.option("--party-id", default=None, help="default: server.party_id, else the only key in this home")
@click.pass_obj
@envelope
def rotate_key(env: Env, party_id: str | None):
    """A new key for this party, signed by the old one; prints the command each peer runs."""
    return PartyBook(env.conf).rotate(party_id)
