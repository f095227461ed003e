"""Hostile values on every `flow` command, generated from the click command tree.

Every command under ``flow.cli.main.cli`` (every module of ``flow.cli`` imported, so a
new group registers itself) is walked through ``click.Group.commands``; each option and
argument a string fits (click's STRING and Path types) is given the payloads of
:meth:`Sandbox.payloads`, the other parameters plausible values derived from their names
(:func:`plausible`; conf/dsl/CSV/archive files from the sandbox's inputs). Fills as in
the route suite: ``required`` (only what click requires) and ``named`` (every option a
name says how to fill). Options of a group (``--service-conf``) are fuzzed in front of
the group's first command that needs nothing.

Each run is ``CliRunner.invoke`` in standalone mode against a fresh copy of the seeded
home (FLOW_HOME) from a working directory deep inside the sandbox. Per run: no uncaught
exception (the real ``flow`` would print a traceback), no traceback text, nothing of a
planted file or /etc/passwd in the output, nothing new or removed under the sandbox
outside the home, but for the file an output option (``-o``) named. A file option's
own file is the user's to read, so the canary check skips payloads given to an input
file option.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import flow.cli
from tests.security.conftest import (
    Sandbox,
    Seed,
    leaks,
    payloads_for,
    plausible,
    short,
    traceback_in,
    written_outside,
)

for _mod in pkgutil.iter_modules(flow.cli.__path__):  # each module registers its group on `cli`
    importlib.import_module(f"flow.cli.{_mod.name}")

from flow.cli.main import cli  # noqa: E402


@dataclass(frozen=True)
class CliCase:
    """A command (its words), and its (parameter, fill) pairs to fuzz; ``prefix``: a
    group's parameter is given before the words."""

    words: tuple[str, ...]
    command: click.Command
    targets: tuple[tuple[click.Parameter, str], ...]
    group_params: tuple[click.Parameter, ...] = ()

    @property
    def id(self) -> str:
        return "flow " + " ".join(self.words) + (" (group options)" if self.group_params else "")


def _fuzzable(param: click.Parameter) -> bool:
    if isinstance(param, click.Option) and (param.is_flag or param.count):
        return False
    return isinstance(param.type, click.Path) or param.type is click.STRING


def _is_output(param: click.Parameter) -> bool:
    help_text = (getattr(param, "help", None) or "").lower()
    return "output" in (param.name or "") or "write" in help_text


def _leaves(group: click.Group, words: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out += _leaves(command, words + (name,))
        else:
            out.append((words + (name,), command))
    return out


def _named(param: click.Parameter, words: tuple[str, ...]) -> bool:
    return isinstance(param.type, click.Path) or plausible(param.name or "", " ".join(words), _NO_SEED) is not None


class _NoSeed:
    job_id = model_id = "x"


_NO_SEED: Any = _NoSeed()


def cli_cases(root: click.Group) -> list[CliCase]:
    cases = []
    for words, command in _leaves(root):
        targets = []
        for p in command.params:
            if not _fuzzable(p):
                continue
            targets.append((p, "required"))
            if any(not q.required and q is not p and _fuzzable(q) and _named(q, words) and not _is_output(q)
                   for q in command.params):
                targets.append((p, "named"))
        if targets:
            cases.append(CliCase(words, command, tuple(targets)))

    def groups(group: click.Group, words: tuple[str, ...]) -> None:
        params = tuple(p for p in group.params if _fuzzable(p))
        if params:
            words_, command = next((w, c) for w, c in _leaves(group) if not any(p.required for p in c.params))
            cases.append(CliCase(words + words_, command, tuple((p, "required") for p in params), params))
        for name, sub in sorted(group.commands.items()):
            if isinstance(sub, click.Group):
                groups(sub, words + (name,))

    groups(root, ())
    return cases


CASES = cli_cases(cli)


def _path_value(param: click.Parameter, words: tuple[str, ...], seed: Seed, box: Sandbox) -> str:
    """A plausible file for a path parameter: by its name and help."""
    name, help_text = param.name or "", (getattr(param, "help", None) or "").lower()
    if _is_output(param):
        return f"out-{'-'.join(words)}"
    if "service_conf" in help_text or "service conf" in help_text:
        return str(seed.inputs["service_conf"])
    if "upload conf" in help_text:
        return str(seed.inputs["upload_conf"])
    if "archive" in help_text:
        return str(seed.inputs["zip"])
    if "dsl" in name:
        return str(seed.inputs["dsl"])
    if "conf" in name:
        return str(seed.inputs["conf"])
    return str(seed.inputs["csv"])


def _value(param: click.Parameter, words: tuple[str, ...], seed: Seed, box: Sandbox) -> str:
    if isinstance(param.type, click.Path):
        return _path_value(param, words, seed, box)
    if param.name == "address":
        return json.dumps({"path": "/fuzz/table"})
    if param.name == "cpn_list":
        return "reader_0"
    value = plausible(param.name or "", " ".join(words), seed)
    if value is not None:
        return str(value)
    if isinstance(param.type, click.Choice):
        return param.type.choices[0]
    if param.type is click.INT or isinstance(param.type, click.types.IntParamType):
        return "1"
    return "fuzz"


def _argv(case: CliCase, target: click.Parameter, fill: str, value: str, seed: Seed, box: Sandbox) -> list[str]:
    def render(p: click.Parameter, v: str) -> list[str]:
        return [v] if isinstance(p, click.Argument) else [p.opts[-1] if p.opts[-1].startswith("--") else p.opts[0], v]

    head: list[str] = []
    for p in case.group_params:
        if p is target:
            head += render(p, value)
    argv = list(case.words)
    args: list[str] = []
    for p in case.command.params:
        if p is target:
            chosen = value
        elif p.required or (fill == "named" and _fuzzable(p) and _named(p, case.words) and not _is_output(p)):
            chosen = _value(p, case.words, seed, box)
        else:
            continue
        (args.__iadd__ if isinstance(p, click.Argument) else argv.__iadd__)(render(p, chosen))
    return head + argv + args


@dataclass
class Outcome:
    argv: str
    code: int
    problems: list[str] = field(default_factory=list)


_RESULTS: dict[str, list[Outcome]] = {}


def exercise(case: CliCase, sandbox: Sandbox, seed: Seed) -> list[Outcome]:
    if case.id in _RESULTS:
        return _RESULTS[case.id]
    from flow.runtime import job as jobs
    from flow.server import run as server_run

    home = sandbox.new_home(seed.template)
    runner = CliRunner()
    outcomes = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sandbox.cwd)
        mp.setattr(jobs, "_start_supervisor", lambda *_args: 0)  # submit/rerun record, run nothing
        # `flow server start` serves in the foreground until interrupted: here it answers what it would serve
        mp.setattr(server_run, "serve", lambda conf, host=None, port=None: {"home": str(conf.home_path),
                                                                            "host": host, "port": port})
        for target, fill in case.targets:
            output = _is_output(target)
            for payload in payloads_for(sandbox, home, target.name or "", may_write=True):
                argv = _argv(case, target, fill, payload.value, seed, sandbox)
                before = sandbox.snapshot(home)
                result = runner.invoke(cli, argv, env={"FLOW_HOME": str(home), "FEDWEAVE_SERVICE_CONF": None})
                text = result.output + result.stderr
                out = Outcome(f"[{fill}] {target.name}={payload.family}/{payload.label} {short(payload.value)}",
                              result.exit_code)
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    out.problems.append(f"uncaught {type(result.exception).__name__}: "
                                        f"{str(result.exception)[:160]} (flow prints a traceback)")
                out.problems += traceback_in(text)
                if not (isinstance(target.type, click.Path) and not output):
                    out.problems += leaks(text)
                allowed = (sandbox.cwd / payload.value,) if output and "\x00" not in payload.value else ()
                out.problems += written_outside(before, sandbox.snapshot(home), allowed, sandbox.root)
                outcomes.append(out)
                for leftover in sandbox.cwd.iterdir():  # what an output option wrote: not the next run's
                    shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
    shutil.rmtree(home.parent, ignore_errors=True)
    _RESULTS[case.id] = outcomes
    return outcomes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_values_neither_crash_nor_leak_nor_write_outside_the_home(case, sandbox, seed):
    outcomes = exercise(case, sandbox, seed)
    bad = [o for o in outcomes if o.problems]
    assert not bad, f"{case.id}: {len(bad)} of {len(outcomes)} runs\n" + "\n".join(
        f"  {o.argv} -> exit {o.code}: {'; '.join(o.problems)}" for o in bad)


def test_the_walk_reaches_every_command():
    """Every leaf command of the tree is fuzzed unless it has nothing a string fits."""
    leaves = {words for words, c in _leaves(cli) if any(_fuzzable(p) for p in c.params)}
    assert leaves <= {c.words for c in CASES}
    assert len(leaves) >= 20 and any(c.group_params for c in CASES)


def test_a_real_flow_process_prints_no_traceback_for_a_hostile_service_conf(sandbox, seed):
    """The same check through the real entry point (a subprocess) for the group option."""
    import subprocess
    import sys

    home = sandbox.new_home(seed.template)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, FLOW_HOME=str(home), PYTHONPATH=str(root))
    env.pop("FEDWEAVE_SERVICE_CONF", None)
    for value in ("/etc/passwd", str(sandbox.outside / "secret.json"), "../../../../etc/passwd"):
        proc = subprocess.run([sys.executable, "-m", "flow.cli.main", "--service-conf", value, "job", "list"],
                              env=env, capture_output=True, text=True, timeout=60, cwd=sandbox.cwd)
        assert not traceback_in(proc.stdout + proc.stderr), (value, proc.returncode, proc.stderr[-600:])
    shutil.rmtree(home.parent, ignore_errors=True)

