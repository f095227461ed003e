"""``flow board``: the board's address, starting this home's flow server first when none runs."""

from __future__ import annotations

import click

from flow.cli.main import Env, cli, envelope


@cli.command()
@click.option("--host", default=None, help="address a server started here listens on (default: server.host)")
@click.option("--port", type=int, default=None, help="its port (default: server.port; 0 = any free port)")
@click.pass_obj
@envelope
def board(env: Env, host: str | None, port: int | None):
    """Print the board's URL; start this home's flow server in the background (as `flow server
    start --detach`) if none serves it. Log in there with the server's token (its file is
    printed) or a user's token (`flow user add`); nothing else is opened."""
    from flow.ops.local import read_server_file
    from flow.server.auth import token_path
    from flow.server.run import detach

    conf = env.conf
    running = read_server_file(conf.home_path)
    info = running or detach(conf, host, port, conf.source or None)
    url = str(info["url"]).rstrip("/")
    click.echo(f"board: {url}/", err=True)
    return {"url": f"{url}/", "login": f"{url}/login", "started": running is None, "pid": info["pid"],
            "home": str(conf.home_path), "token_file": str(token_path(conf))}
