"""``flow``'s commands are loaded on demand: the registry names every command each module of
flow.cli defines, and a command imports its own module only."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import flow.cli
from flow.cli.main import COMMANDS, cli


def test_the_registry_names_every_command_and_its_module():
    for mod in pkgutil.iter_modules(flow.cli.__path__):
        importlib.import_module(f"flow.cli.{mod.name}")
    assert set(cli.commands) == set(COMMANDS)
    for name, command in cli.commands.items():
        assert command.callback is not None
        assert command.callback.__module__ == f"flow.cli.{COMMANDS[name]}", name


def _modules_after(*args: str) -> set[str]:
    code = ("import sys\nfrom flow.cli.main import cli\n"
            f"cli.main({list(args)!r}, standalone_mode=False)\n"
            "print(' '.join(m for m in sys.modules if m.startswith('flow.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.strip().splitlines()[-1].split())


def test_a_command_imports_its_own_module_only():
    assert _modules_after("data", "--help") == {"flow.cli.main", "flow.cli.data"}
    assert _modules_after("module", "--help") == {"flow.cli.main", "flow.cli.component", "flow.cli.tracking"}


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "flow.cli.main", "--help"], capture_output=True, text=True,
                         check=True).stdout
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)
