"""``flow cluster``: the consortium file (validate), one party's bundle (generate) and its
lifecycle on a target, docker or k8s (install, describe, logs, upgrade, scale, delete;
flow.ops.lifecycle).
"""

from __future__ import annotations

import functools
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


def _party_options(fn, file_flags: tuple[str, ...] = ("-f", "--file")):
    """-f, --party, --target, --kubeconfig, --context and --bundle: which party of which
    consortium, where it runs."""
    fn = click.option("--context", default=None, help="--target k8s: the kubeconfig context (default: its current)")(fn)
    fn = click.option("--kubeconfig", default=None, type=click.Path(dir_okay=False),
                      help="--target k8s: the kubeconfig file (default: KUBECONFIG or ~/.kube/config)")(fn)
    fn = click.option("--bundle", type=click.Path(path_type=Path), default=None,
                      help="the party's bundle folder (default: bundle-<party>/ beside the consortium file)")(fn)
    fn = click.option("--target", "target_name", default="docker", show_default=True,
                      type=click.Choice(["docker", "k8s"]), help="where the party's services run")(fn)
    fn = click.option("--party", "party_id", required=True, help="the party (its id in the consortium file)")(fn)
    return click.option(*file_flags, "path", required=True, type=click.Path(path_type=Path),
                        help="the consortium file, cluster.yaml")(fn)


def _open(path: Path, party_id: str, target_name: str, bundle: Path | None, kubeconfig: str | None,
          context: str | None, **image: str | None):
    from flow.ops.lifecycle import deployment
    from flow.ops.lifecycle_api import target

    dep = deployment(path, party_id, bundle, **image)
    return target(target_name, kubeconfig=kubeconfig, context=context), dep


@cluster.command()
@_party_options
@click.option("--image", default=None, help="image to run, REPOSITORY:TAG (default: the consortium file's)")
@click.option("--wait", "wait_s", type=float, default=180, show_default=True,
              help="seconds to wait for /readyz (0: do not wait)")
@click.pass_obj
@envelope
def install(env: Env, path: Path, party_id: str, target_name: str, bundle: Path | None, kubeconfig: str | None,
            context: str | None, image: str | None, wait_s: float):
    """Run the party's bundle (written first when absent): its flow server, and a RabbitMQ
    beside it when the consortium file says broker: bundled."""
    from flow.ops import lifecycle

    tgt, dep = _open(path, party_id, target_name, bundle, kubeconfig, context, image=image)
    return lifecycle.install(tgt, dep, path, env.conf.home_path, wait_s)


@cluster.command()
@_party_options
@envelope
def describe(path: Path, party_id: str, target_name: str, bundle: Path | None, kubeconfig: str | None,
             context: str | None):
    """The party's services: state, health, image, version, volumes; its endpoint and readiness."""
    from flow.ops import lifecycle

    tgt, dep = _open(path, party_id, target_name, bundle, kubeconfig, context)
    return lifecycle.describe(tgt, dep)


@cluster.command()
@functools.partial(_party_options, file_flags=("--file",))  # -f is --follow here, as in docker and kubectl
@click.argument("module", default="server",
                type=click.Choice(["server", "rabbitmq", "spark-master", "spark-worker"]))
@click.option("-f", "--follow", is_flag=True, help="keep printing new lines")
@click.option("--since", default=None, help="only lines newer than a duration (30s, 10m, 2h) or an ISO time")
@click.option("--tail", type=int, default=None, help="only the last N lines")
def logs(path: Path, party_id: str, target_name: str, bundle: Path | None, kubeconfig: str | None,
         context: str | None, module: str, follow: bool, since: str | None, tail: int | None):
    """Print a service's output lines (the flow server's by default)."""
    import sys

    from flow.core.errors import FedweaveError, ValidationError
    from flow.ops import lifecycle

    try:
        tgt, dep = _open(path, party_id, target_name, bundle, kubeconfig, context)
        for line in lifecycle.logs(tgt, dep, module, follow, since, tail):
            click.echo(line)
    except FedweaveError as exc:
        for problem in exc.problems if isinstance(exc, ValidationError) else [str(exc)]:
            click.echo(f"error: {problem}", err=True)
        sys.exit(exc.exit_code)


@cluster.command()
@_party_options
@click.option("--version", required=True, help="the new image tag (same repository)")
@click.option("--drain", is_flag=True, help="wait for the party's jobs to end instead of refusing")
@click.option("--wait", "wait_s", type=float, default=600, show_default=True,
              help="seconds for --drain and for /readyz of the new server")
@envelope
def upgrade(path: Path, party_id: str, target_name: str, bundle: Path | None, kubeconfig: str | None,
            context: str | None, version: str, drain: bool, wait_s: float):
    """Replace the party's flow server by the image of another tag; its data, keys and job
    history stay. Refused while jobs run, unless --drain."""
    from flow.ops import lifecycle

    tgt, dep = _open(path, party_id, target_name, bundle, kubeconfig, context, version=version)
    return lifecycle.upgrade(tgt, dep, drain, wait_s)


@cluster.command()
@_party_options
@click.option("--spark-workers", "workers", required=True, type=click.IntRange(0, 256),
              help="how many Spark workers to run beside the server")
@envelope
def scale(path: Path, party_id: str, target_name: str, bundle: Path | None, kubeconfig: str | None,
          context: str | None, workers: int):
    """Run N Spark workers for a party whose consortium file gives it its own Spark
    (engines.computing: spark without master)."""
    from flow.ops import lifecycle

    tgt, dep = _open(path, party_id, target_name, bundle, kubeconfig, context)
    return lifecycle.scale(tgt, dep, workers)


@cluster.command()
@_party_options
@click.option("--keep-data", is_flag=True, help="keep the home volume (store, keys, tables, models)")
@envelope
def delete(path: Path, party_id: str, target_name: str, bundle: Path | None, kubeconfig: str | None,
            context: str | None, keep_data: bool):
    """Remove the party's services, and its data unless --keep-data."""
    from flow.ops import lifecycle

    tgt, dep = _open(path, party_id, target_name, bundle, kubeconfig, context)
    return lifecycle.delete(tgt, dep, keep_data)
