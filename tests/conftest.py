"""Shared test helpers: how a missing service is treated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_unavailable(what: str) -> None:
    """A service a test needs is not there: a failure in CI (CI=true), a skip elsewhere."""
    message = f"{what} is not available"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing service is a failure, not a skip)")
    pytest.skip(message)


#: folders whose tests share an expensive session or package fixture (images built, a
#: sandbox seeded, a browser, a backend session): one pytest-xdist worker runs each whole
SHARED_FIXTURE_FOLDERS = ("deploy", "board", "security", "contract")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist with ``--dist loadgroup`` (what `make test` runs), a file's tests
    stay together, so its module fixtures (a Spark cluster, a flow server) start once, and
    each folder above runs on a single worker."""
    tests = Path(__file__).parent
    for item in items:
        rel = item.path.relative_to(tests)
        group = rel.parts[0] if rel.parts[0] in SHARED_FIXTURE_FOLDERS else rel.as_posix()
        item.add_marker(pytest.mark.xdist_group(group))
