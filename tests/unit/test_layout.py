"""The floor plan is enforced: import-linter's contracts cover every package of ``flow``,
and an upward import makes ``lint-imports`` fail naming it (ARCHITECTURE.md, "Floors")."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import flow

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> dict[str, dict]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in conf["contracts"]}


def test_contracts_name_every_flow_package() -> None:
    """A new package under flow/ must be added to the contracts, or the lower floors could import it."""
    packages = {f"flow.{m.name}" for m in pkgutil.iter_modules(flow.__path__) if m.ispkg}
    floors = next(c for c in _contracts().values() if c["type"] == "layers" and "flow.core" in c["layers"])
    assert set(floors["layers"]) == packages
    packages -= {"flow.core"}
    forbidden = [c for c in _contracts().values() if c["type"] == "forbidden"]
    assert forbidden
    for contract in forbidden:
        missing = packages - set(contract["forbidden_modules"])
        assert not missing, f"contract {contract['name']!r} does not forbid {sorted(missing)}"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS)], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def tree_copy(tmp_path: Path) -> Path:
    for package in ("flow", "components", "backends", "federation"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "named"),
    [
        ("components/io/reader.py", "import flow.server.app", "components.io.reader -> flow.server.app"),
        ("federation/standalone.py", "import components.base", "federation.standalone -> components.base"),
        ("backends/storage/api.py", "import flow.store", "backends.storage.api -> flow.store"),
        ("flow/core/party.py", "import flow.dsl", "flow.core.party -> flow.dsl"),
        ("flow/store/models.py", "import flow.runtime.job", "flow.store.models -> flow.runtime.job"),
        ("flow/runtime/logs.py", "import flow.ops.local", "flow.runtime.logs -> flow.ops.local"),
    ],
)
def test_an_upward_import_fails_naming_it(tree_copy: Path, module: str, line: str, named: str) -> None:
    assert _lint(tree_copy).returncode == 0, "the tree as it is must keep every contract"
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tree_copy)
    assert result.returncode != 0
    assert named in result.stdout, result.stdout[-2000:]


def test_setup_cfg_ships_every_package() -> None:
    """setup.cfg lists packages by name: a package left out is missing from a non-editable install."""
    import configparser

    conf = configparser.ConfigParser()
    conf.read(ROOT / "setup.cfg")
    listed = set(conf["options"]["packages"].split())
    found = {str(p.parent.relative_to(ROOT)).replace(os.sep, ".")
             for top in ("flow", "components", "backends", "federation") for p in (ROOT / top).rglob("__init__.py")
             if "node_modules" not in p.parts}
    assert found - listed == set(), f"packages missing from setup.cfg [options] packages: {sorted(found - listed)}"
