"""``flow job submit --wait`` on a terminal (issue 12 §5.5): the progress table and the
"job ... failed: reason" verdict stay on separate lines, the verdict is not wrapped at 80
columns, and brackets in the reason or the title are not eaten as markup."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

from rich.console import Console

from flow.cli.job import wait_for

REASON = ("component hetero_lr_0 of [guest 9999] failed: ValueError: the learning rate must be positive, "
          "got -0.1 (component_parameters.common.hetero_lr_0.learning_rate)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _detail(status: str) -> dict:
    return {"job_id": "202401011200000000000142", "status": status, "reason": REASON if status == "failed" else "",
            "tasks": [{"component": "reader_0", "role": "guest", "party_id": "9999", "status": status,
                       "progress": 0}]}


def test_the_verdict_is_a_line_of_its_own_and_not_wrapped():
    answers = iter([_detail("running"), _detail("failed")])
    env = SimpleNamespace(ops=SimpleNamespace(job_query=lambda _job_id: next(answers)))
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system="standard")
    detail = wait_for(env, "202401011200000000000142", poll=0, console=console)
    assert detail["status"] == "failed"
    last_frame = out.getvalue().rsplit("\x1b[2K", 1)[-1]  # what the terminal shows once Live stopped
    lines = [line for line in ANSI.sub("", last_frame).split("\n") if line.strip()]
    verdict = f"job 202401011200000000000142 failed: {REASON}"
    assert len(verdict) > 80 and lines[-1] == verdict
    assert lines[-2].startswith("└") and lines[-2].rstrip().endswith("┘")
    assert lines[0] == "job 202401011200000000000142  [failed]"  # the title keeps its brackets, on one line


def test_success_prints_no_verdict():
    env = SimpleNamespace(ops=SimpleNamespace(job_query=lambda _job_id: _detail("success")))
    out = io.StringIO()
    wait_for(env, "j", poll=0, console=Console(file=out, force_terminal=True, width=80))
    assert "success:" not in ANSI.sub("", out.getvalue())
