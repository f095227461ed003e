"""The ``flow`` command: FATE's envelope on stdout, progress and errors on stderr.

Every command prints ``{"retcode": 0, "retmsg": "success", "data": ...}``; a failure
prints a non-zero retcode with a message a person can act on and exits non-zero.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
import sys
import threading
from datetime import date
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import click

from flow.core.errors import FedweaveError, ValidationError
from flow.core.settings import ServiceConf, load_service_conf

if TYPE_CHECKING:
    from flow.ops.api import Ops
    from flow.store import Store

#: every command of ``flow`` -> the module of flow.cli that defines it: a command's module is
#: imported when that command runs (or ``flow --help`` lists them), so ``flow data upload``
#: does not pay for the imports of ``flow job``, ``flow board``, ``flow cluster``... (~0.5 s)
COMMANDS = {
    "audit": "audit", "board": "board", "cluster": "cluster", "component": "component", "module": "component",
    "data": "data", "table": "data", "job": "job", "model": "model", "party": "party",
    "privilege": "privilege", "schedule": "schedule", "server": "server", "init": "server", "suite": "suite",
    "tracking": "tracking", "user": "user",
}


class Env:
    """Lazily opened service conf and store, shared by every subcommand."""

    def __init__(self, conf_path: str | None):
        self._conf_path = conf_path
        self._conf: ServiceConf | None = None
        self._store: Store | None = None
        self._ops: Ops | None = None

    @property
    def conf(self) -> ServiceConf:
        if self._conf is None:
            self._conf = load_service_conf(self._conf_path)
        return self._conf

    @property
    def store(self) -> Store:
        if self._store is None:
            from flow.store import Store  # SQLAlchemy: only for commands that read the store

            self.conf.home_path.mkdir(parents=True, exist_ok=True)
            self._store = Store(self.conf.database_url)
        return self._store

    @property
    def ops(self) -> Ops:
        """Where commands run: the flow server ``flow init`` pointed this home at, else here
        (imported only when a command needs them: the CLI starts without the engines)."""
        if self._ops is None:
            from flow.ops.client_conf import load_client_conf
            from flow.ops.local import LocalOps
            from flow.ops.remote import RemoteOps

            remote = load_client_conf(self.conf.home_path)
            self._ops = (RemoteOps(remote["ip"], remote["port"], remote["token"]) if remote
                         else LocalOps(self.conf, lambda: self.store))
        return self._ops


def json_default(value: Any) -> Any:
    """How a command prints what JSON has no type for: times in ISO form, as a flow server
    sends them, so a command prints the same in standalone and client mode."""
    return value.isoformat() if isinstance(value, date) else str(value)


def emit(data: Any = None, retcode: int = 0, retmsg: str = "success") -> None:
    click.echo(json.dumps({"retcode": retcode, "retmsg": retmsg, "data": data}, indent=2, default=json_default))


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:60] + "..."


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    emit(None, retcode=code, retmsg=message)
    sys.exit(code)


def envelope(fn: Callable) -> Callable:
    """Run a command; print its result in the envelope, or its error and exit non-zero."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except ValidationError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            emit({"problems": exc.problems}, retcode=exc.exit_code, retmsg="; ".join(exc.problems))
            sys.exit(exc.exit_code)
        except FedweaveError as exc:
            _fail(str(exc), exc.exit_code)
        except OSError as exc:  # a path given on the command line that the file system refuses
            where = _shown(exc.filename) if exc.filename is not None else ""
            _fail(f"{where + ': ' if where else ''}{exc.strerror or exc}", 2)
        if isinstance(result, tuple):  # (data, exit_code) for commands whose outcome sets the code
            data, code = result
            emit(data, retcode=code, retmsg="success" if code == 0 else "failed")
            sys.exit(code)
        emit(result)

    return wrapper


class FlowGroup(click.Group):
    """The root group. Its commands are loaded on demand (:data:`COMMANDS`). A NUL in a path
    makes Python's file calls raise ValueError (click's own path check while it parses, or a
    command's open); say so as a usage error (one line, exit 2) instead of a traceback."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"flow.cli.{COMMANDS[cmd_name]}")  # registers it on ``cli``
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValueError as exc:
            if "null byte" not in str(exc):
                raise
            raise click.UsageError("a value given holds a NUL character", ctx) from None


@click.group(cls=FlowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fedweave", message="fedweave %(version)s")
@click.option("--service-conf", envvar="FEDWEAVE_SERVICE_CONF", default=None,
              help="service_conf.yaml of this party (default: $FLOW_HOME/service_conf.yaml, then conf/).")
@click.pass_context
def cli(ctx: click.Context, service_conf: str | None) -> None:
    """fedweave's flow client: data, jobs, tracking."""
    ctx.obj = Env(service_conf)


#: set by :func:`main`: this process is the command's own (not a test's click runner, not a
#: library caller), so ``flow job submit``/``rerun`` may fork a job's supervisor from it
_OWN_PROCESS = False


def own_process() -> bool:
    return _OWN_PROCESS


def main() -> None:
    global _OWN_PROCESS
    _OWN_PROCESS = True
    try:
        cli()
    except SystemExit as exc:
        _leave(exc.code)


def _leave(code: int | str | None) -> None:
    """Exit after Python's own shutdown work but before native libraries' static
    destructors: Arrow's thread pools can abort the process there ("terminate called
    without an active exception", exit -6) after the command has fully succeeded."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
    status = code if isinstance(code, int) else (0 if code is None else 1)
    for thread in threading.enumerate():  # what interpreter shutdown would wait for
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # flushes the audit trail and other at-exit work
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":  # `python -m flow.cli.main`: register on the importable module, not __main__
    from flow.cli.main import main as _main

    _main()
