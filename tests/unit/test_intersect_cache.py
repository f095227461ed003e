"""FATE 1.x's intersection cache: run_cache makes each party's cache, a later Intersection
with input.cache intersects new guest data against it with the same keys, and the result
is the plain set intersection (rsa, dh, ecdh; one and two hosts). Keys stay home."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from backends.computing.local import LocalSession
from components.base import Inputs
from components.psi.intersection import Intersection, IntersectionParams
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties
from tests.unit.test_intersection import HOST2

METHODS = {
    "rsa": {"rsa_params": {"key_length": 1024, "salt": "s1", "hash_method": "sha384"}},
    "dh": {"dh_params": {"salt": "12345"}},
    "ecdh": {"ecdh_params": {"salt": "x", "hash_method": "sha512"}},
}


def _run(tmp: Path, tables: dict, params: dict, caches: dict | None = None, name: str = "cpn_0") -> dict:
    with LocalSession(partitions=2, workers=1) as s:
        jobs = {}
        for party, ids in tables.items():
            ds = dataset(s, np.arange(len(ids), dtype=float)[:, None], ["x0"], ids=ids, name=str(party))
            inputs = Inputs(data={"data": ds}, cache=[caches[party]] if caches else [])
            jobs[party] = (s, params, inputs)
        results = run_parties(tmp, Intersection, jobs, name=name)
        return {p: (out.cache, {k for k, _ in out.data[0].table.collect()} if out.data else None)
                for p, (out, _) in results.items()}


def _ids() -> tuple[list[str], list[str], list[str]]:
    u = [f"id{n:06d}" for n in random.Random(5).sample(range(10**6), 120)]
    return u[:40] + u[40:60], u[:40] + u[60:90], u[10:40] + u[90:120]  # guest at cache time, host, new guest


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_cache_round_trip_gives_the_plain_intersection_of_new_guest_data(tmp_path: Path, method: str):
    guest0, host, guest1 = _ids()
    made = _run(tmp_path / "a", {GUEST: guest0, HOST: host},
                dict(intersect_method=method, run_cache=True, **METHODS[method]), name="intersect_0")
    caches = {p: cache for p, (cache, data) in made.items()}
    assert all(cache is not None for cache in caches.values())
    assert all(data is None for _, data in made.values())  # run_cache makes the cache, not an intersection
    host_body, guest_body = caches[HOST]["body"], caches[GUEST]["body"]
    assert host_body["cache_id"] == guest_body["hosts"][HOST.party_id]["cache_id"]
    secrets = [host_body[k] for k in ("secret", "p", "q") if k in host_body]
    assert secrets and not any(s in repr(guest_body) for s in secrets)  # the host's key is not the guest's
    # FATE takes the method's settings from the cache: intersect_1's own (default) settings are not used
    out = _run(tmp_path / "b", {GUEST: guest1, HOST: host}, dict(intersect_method=method), caches, name="intersect_1")
    expected = set(guest1) & set(host)
    assert len(expected) == 30
    assert out[GUEST][1] == expected and out[HOST][1] == expected
    assert out[GUEST][0] is None


def test_two_hosts_and_no_sync(tmp_path: Path):
    guest0, host, guest1 = _ids()
    host2 = host[5:] + guest1[-3:]
    made = _run(tmp_path / "a", {GUEST: guest0, HOST: host, HOST2: host2}, dict(intersect_method="ecdh",
                run_cache=True), name="intersect_0")
    caches = {p: cache for p, (cache, _) in made.items()}
    out = _run(tmp_path / "b", {GUEST: guest1, HOST: host, HOST2: host2},
               dict(intersect_method="ecdh", sync_intersect_ids=False), caches, name="intersect_1")
    assert out[GUEST][1] == set(guest1) & set(host) & set(host2)
    assert out[HOST][1] == set(host) and out[HOST2][1] == set(host2)  # not synced: the hosts learn nothing


def test_caches_of_different_runs_or_methods_are_refused(tmp_path: Path):
    guest0, host, guest1 = _ids()
    runs = [_run(tmp_path / str(i), {GUEST: guest0, HOST: host}, dict(intersect_method="dh", run_cache=True))
            for i in range(2)]
    mixed = {GUEST: runs[0][GUEST][0], HOST: runs[1][HOST][0]}
    with pytest.raises(ComponentError, match="cache ids differ"):
        _run(tmp_path / "x", {GUEST: guest1, HOST: host}, dict(intersect_method="dh"), mixed)
    same = {p: runs[0][p][0] for p in (GUEST, HOST)}
    with pytest.raises(ComponentError, match="does not match the cache's 'dh'"):
        _run(tmp_path / "y", {GUEST: guest1, HOST: host}, dict(intersect_method="ecdh"), same)
    swapped = {GUEST: runs[0][HOST][0], HOST: runs[0][GUEST][0]}
    with pytest.raises(ComponentError, match="made by the host, not this guest|made by the guest, not this host"):
        _run(tmp_path / "z", {GUEST: guest1, HOST: host}, dict(intersect_method="dh"), swapped)


def test_run_cache_is_refused_where_fate_refuses_it():
    with pytest.raises(ValidationError, match="not supported: run_cache with intersect_method raw"):
        IntersectionParams(intersect_method="raw", run_cache=True)
    with pytest.raises(ValidationError, match="cardinality_only cannot run_cache"):
        IntersectionParams(cardinality_only=True, run_cache=True)


def test_the_runtime_keeps_a_cache_for_a_rerun_in_the_partys_own_folder(tmp_path: Path):
    from flow.runtime.tracking import OutputKeeper
    from flow.store import Store

    store = Store(f"sqlite:///{tmp_path / 'flow.sqlite'}")
    try:
        keeper = OutputKeeper(store, None, tmp_path, "job1", HOST)  # type: ignore[arg-type] - no tables here
        cache = {"format": "x", "body": {"secret": "ab" * 32, "ids": ["a", "b"]}}
        keeper.save_cache("intersect_0", cache)
        assert keeper.load_cache("intersect_0") == cache and keeper.load_cache("intersect_1") is None
        (path,) = (tmp_path / "caches").rglob("*.json")
        assert path.relative_to(tmp_path).as_posix() == "caches/job1/host/10000/intersect_0.json"
        assert path.stat().st_mode & 0o077 == 0  # key material: the owner's alone
        assert not (tmp_path / "models").exists()
    finally:
        store.close()
