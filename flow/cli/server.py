"""``flow server start|stop|status`` and ``flow init`` (point this home's CLI at a server)."""

from __future__ import annotations

from pathlib import Path

import click

from flow.cli.main import Env, cli, envelope
from flow.core.errors import ConfigError
from flow.core.settings import load_service_conf
from flow.ops.client_conf import client_file, save_client_conf


@cli.group()
def server() -> None:
    """Run this party's flow server and see its state."""


@server.command()
@click.option("--conf", "conf_path", type=click.Path(path_type=Path), default=None,
              help="service_conf.yaml (default: --service-conf, $FLOW_HOME/service_conf.yaml, conf/)")
@click.option("--host", default=None, help="address to listen on (default: server.host of the conf)")
@click.option("--port", type=int, default=None, help="port (default: server.port; 0 = any free port)")
@click.option("--detach", is_flag=True,
              help="run in the background (pid in <home>/server.pid, log in <home>/logs/flow_server.log)")
@click.pass_obj
@envelope
def start(env: Env, conf_path: Path | None, host: str | None, port: int | None, detach: bool):
    """Serve the HTTP API and the board (at /) until interrupted, or in the background with
    --detach (writes <home>/server.json while it serves)."""
    conf = load_service_conf(conf_path) if conf_path else env.conf
    if detach:
        from flow.server.run import detach as start_detached

        return start_detached(conf, host, port, conf.source or None)
    from flow.server.run import serve

    return serve(conf, host, port)


@server.command()
@click.option("--conf", "conf_path", type=click.Path(path_type=Path), default=None,
              help="service_conf.yaml (default: --service-conf, $FLOW_HOME/service_conf.yaml, conf/)")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="seconds to wait for a graceful stop before SIGKILL")
@click.pass_obj
@envelope
def stop(env: Env, conf_path: Path | None, timeout: float):
    """Stop this home's flow server (SIGTERM, then wait)."""
    from flow.server.run import stop as stop_server

    return stop_server(load_service_conf(conf_path) if conf_path else env.conf, timeout)


@server.command()
@click.pass_obj
@envelope
def status(env: Env):
    """The server (the one `flow init` points at, else this home's), its transport, store and engines."""
    return env.ops.server_status()


@cli.command("init")
@click.option("--ip", default=None, help="the flow server's address")
@click.option("--port", type=int, default=None, help="the flow server's port")
@click.option("--token", default=None,
              help="the server's API token (default: this home's, when the server runs on this machine)")
@click.option("--reset", is_flag=True, help="forget the server: commands run here again (standalone)")
@click.pass_obj
@envelope
def init(env: Env, ip: str | None, port: int | None, token: str | None, reset: bool):
    """Point this home's CLI at a flow server; later commands go to it over HTTP."""
    home = env.conf.home_path
    if reset:
        existed = client_file(home).is_file()
        client_file(home).unlink(missing_ok=True)
        return {"mode": "standalone", "removed": str(client_file(home)) if existed else None}
    if not ip or port is None:
        raise ConfigError("flow init: --ip and --port are required (or --reset)")
    if token is None:
        from flow.server.auth import read_token

        token = read_token(env.conf)
        if not token:
            raise ConfigError("flow init: --token is required (the server's token is not in this home)")
    path = save_client_conf(home, ip, port, token)
    from flow.ops.remote import RemoteOps, ServerError

    try:
        RemoteOps(ip, port, token, timeout=5).server_status()
        reachable, problem = True, None
    except ServerError as exc:
        reachable, problem = False, str(exc)
    return {"mode": "client", "server": f"http://{ip}:{port}", "config": str(path), "reachable": reachable,
            "problem": problem}
