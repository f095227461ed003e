"""How many pool workers a party runtime asks the local backend for."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from flow.core.party import Party
from flow.core.settings import ServiceConf
from flow.runtime.party import PartyRuntime


def workers(conf: ServiceConf, roles: list[str], cores: int, monkeypatch) -> int | None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    plan = SimpleNamespace(all_parties=lambda: [Party(r, str(9999 + i)) for i, r in enumerate(roles)])
    return PartyRuntime._workers(SimpleNamespace(plan=plan), conf)  # type: ignore[arg-type]


@pytest.mark.parametrize("roles, cores, expected", [
    (["guest", "host", "arbiter"], 2, 2),        # the arbiter holds no data: not counted
    (["guest", "host"], 2, 2),
    (["guest", "host", "host", "host"], 2, 1),   # four data parties: twice the cores in all
    (["guest", "host", "host", "arbiter"], 8, 5),
    (["guest"], 16, 16),
])
def test_standalone_data_parties_share_twice_the_cores(roles, cores, expected, monkeypatch):
    assert workers(ServiceConf(), roles, cores, monkeypatch) == expected


def test_the_conf_decides_and_a_cluster_party_takes_all_cores(monkeypatch):
    conf = ServiceConf()
    conf.computing.workers = 3
    assert workers(conf, ["guest", "host"], 2, monkeypatch) == 3
    assert workers(ServiceConf(mode="cluster"), ["guest", "host"], 2, monkeypatch) is None
