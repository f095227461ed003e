"""The early-stopping rule of validation: stop once a metric (the first only, with
use_first_metric_only) has not improved for early_stopping_rounds validation rounds, in
the direction that metric improves."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from components.linear.hetero_validation import Validator


def rounds(first: str, values: list[float], patience: int | None, other: list[float] | None = None,
           first_only: bool = True) -> int | None:  # fmt: skip
    """The index of the round at which record() says stop (None: never); ``other`` is a
    second metric (an error: lower is better), improving every round unless given."""
    v = Validator(data=None, task="binary", threshold=0.5, every=1, metrics=[first, "mean_absolute_error"],
                  patience=patience, first_only=first_only)  # fmt: skip
    ctx = SimpleNamespace(logger=logging.getLogger("test"))
    other = other or [1.0 / (i + 1) for i in range(len(values))]
    for i, (value, err) in enumerate(zip(values, other)):
        if v.record(ctx, i, {first: value, "mean_absolute_error": err}):
            return i
    return None


@pytest.mark.parametrize("first, values, patience, stop", [
    ("auc", [0.90, 0.92, 0.91, 0.93, 0.93, 0.92], 2, 5),  # best 0.93 at 3; 4 and 5 do not beat it
    ("auc", [0.90, 0.92, 0.91, 0.93, 0.93, 0.92], 3, None),
    ("auc", [0.90, 0.90], 1, 1),  # equal is no improvement
    ("root_mean_squared_error", [1.0, 0.8, 0.9, 0.85], 2, 3),  # an error improves downwards
    ("root_mean_squared_error", [1.0, 0.8, 0.7, 0.6], 1, None),
    ("auc", [0.5, 0.4, 0.3], None, None),  # no early stopping asked
])
def test_stops_after_patience_rounds_without_improvement(first, values, patience, stop):
    assert rounds(first, values, patience) == stop


def test_without_use_first_metric_only_any_stalled_metric_stops():
    auc = [0.90, 0.91, 0.92, 0.93, 0.94]  # improves every round
    mae = [0.50, 0.40, 0.45, 0.42, 0.30]  # best at round 1, then two rounds without improvement
    assert rounds("auc", auc, 2, other=mae, first_only=True) is None
    assert rounds("auc", auc, 2, other=mae, first_only=False) == 3
