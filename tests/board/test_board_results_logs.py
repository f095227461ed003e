"""The log pane's filter on made-up lines: levels, a traceback's lines that follow its
ERROR line, and the text search; lines are in the form ``flow job logs`` prints."""

from __future__ import annotations

from typing import get_args

import pytest

from flow.server.board import results

P = "[guest 9999 hetero_lr_0] 2026-11-26 02:00:0{}.123 {} "
LINES = [
    P.format(1, "DEBUG") + "cache warm",
    P.format(2, "INFO") + "iteration 1 loss 0.69",
    P.format(3, "WARNING") + "Iteration 2 did not converge",
    P.format(4, "ERROR") + "party 4242 gone",
    "Traceback (most recent call last):",
    '  File "worker.py", line 12, in run',
    "TimeoutError: no answer from host 4242",
    P.format(5, "INFO") + "iteration 3 loss 0.41",
    P.format(6, "CRITICAL") + "task failed",
]


def _filtered(level: str | None, text: str | None = None) -> list[str]:
    return list(results.filter_logs(LINES, level, text))


def test_levels_are_one_list():
    assert results.LEVELS == get_args(results.Level) == ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@pytest.mark.parametrize("level, indexes", [
    (None, range(9)), ("DEBUG", range(9)), ("INFO", range(1, 9)),
    ("WARNING", [2, 3, 4, 5, 6, 8]), ("ERROR", [3, 4, 5, 6, 8]), ("CRITICAL", [8]),
])
def test_level_keeps_that_level_and_above_with_the_traceback(level: str | None, indexes):
    assert _filtered(level) == [LINES[i] for i in indexes]


def test_text_is_case_insensitive_and_matches_traceback_lines_on_their_own():
    assert _filtered(None, "ITERATION") == [LINES[1], LINES[2], LINES[7]]
    assert _filtered("WARNING", "iteration") == [LINES[2]]
    assert _filtered("ERROR", "timeouterror") == [LINES[6]]
    assert _filtered("CRITICAL", "timeouterror") == []
