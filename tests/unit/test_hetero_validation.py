"""The early-stopping rule of validation: stop once the first metric has not improved for
early_stopping_rounds validation rounds, in the direction that metric improves."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from components.linear.hetero_validation import Validator


def rounds(first: str, values: list[float], patience: int | None) -> int | None:
    """The index of the round at which record() says stop (None: never)."""
    v = Validator(data=None, task="binary", threshold=0.5, every=1, metrics=[first, "other"], patience=patience)
    ctx = SimpleNamespace(logger=logging.getLogger("test"))
    for i, value in enumerate(values):
        if v.record(ctx, i, {first: value, "other": -value}):
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
