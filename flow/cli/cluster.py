"""``flow cluster generate``: one party's deployment bundle from the consortium file.

(``flow cluster install|describe|upgrade|scale|logs|delete`` against Docker and Kubernetes
are not built yet.)
"""

from __future__ import annotations

from pathlib import Path

import click

from flow.cli.main import Env, cli, envelope


@cli.group()
def cluster() -> None:
    """A consortium of parties (cluster.yaml) and each party's deployment."""


@cluster.command()
@click.option("-f", "--file", "path", required=True, type=click.Path(path_type=Path),
              help="the consortium file, cluster.yaml")
@click.option("--party", "party_id", required=True, help="the party whose bundle to write (only its secrets)")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="folder to write the bundle to")
@click.option("--force", is_flag=True, help="replace a folder that is not empty")
@click.pass_obj
@envelope
def generate(env: Env, path: Path, party_id: str, out: Path, force: bool):
    """Write the party's service_conf, route table, key (if it has none), compose file,
    Kubernetes manifests and a README of the next commands."""
    from federation.auth import KeyStore
    from flow.ops.bundle import generate as write_bundle
    from flow.ops.cluster_conf import load_cluster

    spec = load_cluster(path)
    return write_bundle(spec, party_id, out.absolute(), KeyStore(env.conf.home_path), force, source=str(path))


@cluster.command()
@click.option("-f", "--file", "path", required=True, type=click.Path(path_type=Path), help="cluster.yaml")
@envelope
def validate(path: Path):
    """Check the consortium file: one line per problem, naming the party and the field."""
    from flow.ops.cluster_conf import load_cluster

    spec = load_cluster(path)
    return {"name": spec.name, "parties": [{"id": p.id, "organisation": p.organisation,
                                            "public_key": p.public_key is not None} for p in spec.parties]}
