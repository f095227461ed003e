"""Where FATE's own example suites are (``../shared/fate-examples`` beside the checkout, or
``$FEDWEAVE_FATE_EXAMPLES``): the compatibility suite, read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parents[1]


def fate_examples() -> Path:
    """The folder, or a failure in CI (a skip elsewhere) when it is not there."""
    for candidate in (os.environ.get("FEDWEAVE_FATE_EXAMPLES"), ROOT.parent / "shared" / "fate-examples",
                      "/work/shared/fate-examples"):
        if candidate and Path(candidate, "dsl").is_dir():
            return Path(candidate)
    service_unavailable("FATE's example suites (../shared/fate-examples or $FEDWEAVE_FATE_EXAMPLES)")
    raise AssertionError("unreachable")
