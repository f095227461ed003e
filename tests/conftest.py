"""Shared test helpers: how a missing service is treated."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_unavailable(what: str) -> None:
    """A service a test needs is not there: a failure in CI (CI=true), a skip elsewhere."""
    message = f"{what} is not available"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing service is a failure, not a skip)")
    pytest.skip(message)
