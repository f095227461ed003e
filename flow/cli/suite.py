"""``flow suite``: run FATE testsuites (``*_testsuite.json``) as ``fate_test suite`` does:
upload their tables, validate every task as shipped, run what validates, print a table."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table as RichTable

from flow.cli.main import Env, cli, envelope
from flow.ops.suite import SuiteReport, SuiteRunner, find_suites

_STYLE = {"success": "green", "failed": "red", "invalid": "red", "refused": "yellow", "skipped": "dim"}


@cli.group()
def suite() -> None:
    """Run FATE testsuites (fate_test's *_testsuite.json files)."""


@suite.command("run")
@click.option("-i", "--include", "paths", multiple=True, required=True, type=click.Path(path_type=Path),
              help="a testsuite file, or a folder searched for *testsuite.json (repeatable)")
@click.option("-t", "--task", "tasks", multiple=True, help="only this task (and the task it depends on)")
@click.option("--data-base-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="where the suites' data files are (FATE's root; default: the folders above the suite)")
@click.option("--skip-data", is_flag=True, help="do not upload the suites' tables")
@click.option("--drop", is_flag=True, help="replace tables that already exist")
@click.option("--parallel", type=click.IntRange(1, 16), default=1, show_default=True,
              help="tasks run at once (a predict task still waits for its training task)")
@click.pass_obj
@envelope
def run(env: Env, paths: tuple[Path, ...], tasks: tuple[str, ...], data_base_dir: Path | None,
        skip_data: bool, drop: bool, parallel: int = 1):
    """Upload, validate and run every task; exit 0 when no task failed or was invalid (a task
    refused as "not supported" is counted, not failed)."""
    console = Console(stderr=True)
    runner = SuiteRunner(env.ops, data_base_dir=data_base_dir, drop=drop, parallel=parallel,
                         progress=lambda line: console.print(line, markup=False, highlight=False))
    reports = [runner.run(path, tasks, skip_data) for path in find_suites(paths)]
    console.print(summary_table(reports))
    bad = sum(r.counts().get("failed", 0) + r.counts().get("invalid", 0) for r in reports)
    return {"suites": [r.to_dict() for r in reports]}, 0 if bad == 0 else 1


def summary_table(reports: list[SuiteReport]) -> RichTable:
    """Per suite: tasks, validated, succeeded, refused, failed, invalid, wall time."""
    table = RichTable(title="testsuites", title_justify="left")
    for col in ("suite", "tasks", "validated", "success", "refused", "failed", "invalid", "skipped", "seconds"):
        table.add_column(col, justify="left" if col == "suite" else "right")
    total: dict[str, float] = {}
    for r in reports:
        counts = r.counts()
        cells = [counts.get(k, 0) for k in ("tasks", "validated", "success", "refused", "failed", "invalid",
                                           "skipped")]
        for k, v in zip(("tasks", "validated", "success", "refused", "failed", "invalid", "skipped"), cells):
            total[k] = total.get(k, 0) + v
        total["seconds"] = total.get("seconds", 0) + r.seconds
        table.add_row(r.suite, *map(str, cells), f"{r.seconds:.0f}")
    if len(reports) > 1:
        table.add_row("all", *(str(int(total[k])) for k in ("tasks", "validated", "success", "refused", "failed",
                                                            "invalid", "skipped")), f"{total['seconds']:.0f}")
    return table
