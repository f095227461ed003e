"""Intersection's methods and several hosts, each party in a thread over the real transport."""

from __future__ import annotations

import random
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from pydantic import ValidationError

from backends.computing.local import LocalSession
from components.base import Inputs
from components.crypto.rsa_psi import HASHES
from components.psi._protocol import PsiProtocol, array_to_rows, rows_to_array
from components.psi._rsa import Hash
from components.psi.intersection import PROTOCOLS, Intersection, IntersectionParams
from federation.api import Party
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties

HOST2 = Party("host", "10001")
METHODS = [
    ("ecdh", {"ecdh_params": {"salt": "x"}}),
    ("rsa", {"rsa_params": {"hash_method": "sha384", "final_hash_method": "md5", "salt": "x"}}),
    ("kkrt", {}),
    ("raw", {}),
    ("raw", {"raw_params": {"use_hash": True, "hash_method": "sha1", "join_role": "host"}}),
]


def three_parties() -> tuple[list[str], list[str], list[str]]:
    u = [f"id{n:06d}" for n in random.Random(3).sample(range(10**6), 180)]
    guest = u[:50] + u[50:70] + u[70:90] + u[150:160]  # all three share u[:50]
    host1 = u[:50] + u[50:70] + u[90:120] + u[160:170]  # guest ∩ host1 adds u[50:70]
    host2 = u[:50] + u[70:90] + u[90:120] + u[170:180]  # guest ∩ host2 adds u[70:90]; hosts share u[90:120]
    for i, ids in enumerate((guest, host1, host2)):
        random.Random(i).shuffle(ids)
    return guest, host1, host2


def run(tmp_path: Path, tables: dict[Party, list[str]], **params) -> dict:
    with LocalSession(partitions=2, workers=1) as s:
        jobs = {}
        for party, ids in tables.items():
            y = np.zeros(len(ids)) if party.role == "guest" else None
            ds = dataset(s, np.arange(len(ids), dtype=float)[:, None], ["x0"], y, ids=ids, name=str(party))
            jobs[party] = (s, params, Inputs(data={"data": ds}))
        results = run_parties(tmp_path, Intersection, jobs)
        return {p: ({k for k, _ in out.data[0].table.collect()}, out.data[0].meta.count, tr.metrics)
                for p, (out, tr) in results.items()}


@pytest.mark.parametrize("method, params", METHODS)
def test_every_method_gives_the_set_all_parties_share(tmp_path: Path, method: str, params: dict):
    guest, host1, host2 = three_parties()
    out = run(tmp_path, {GUEST: guest, HOST: host1, HOST2: host2}, intersect_method=method, **params)
    expected = set(guest) & set(host1) & set(host2)
    assert len(expected) == 50
    for party, total in ((GUEST, len(guest)), (HOST, len(host1)), (HOST2, len(host2))):
        keys, count, metrics = out[party]
        assert keys == expected and count == 50
        assert metrics[("intersection", "intersect_rate")] == pytest.approx(50 / total)


@pytest.mark.parametrize("method, params", METHODS[:4])
def test_one_host(tmp_path: Path, method: str, params: dict):
    guest, host1, _ = three_parties()
    out = run(tmp_path, {GUEST: guest, HOST: host1}, intersect_method=method, **params)
    assert out[GUEST][0] == out[HOST][0] == set(guest) & set(host1)
    assert len(out[HOST][0]) == 70


def test_without_sync_the_host_learns_nothing(tmp_path: Path):
    guest, host1, host2 = three_parties()
    out = run(tmp_path, {GUEST: guest, HOST: host1, HOST2: host2}, intersect_method="rsa",
              sync_intersect_ids=False)
    assert out[GUEST][0] == set(guest) & set(host1) & set(host2)
    assert out[HOST][0] == set(host1) and ("intersection", "intersect_count") not in out[HOST][2]


def test_registry_names_follow_fate():
    assert set(PROTOCOLS) == {"ecdh", "dh", "rsa", "raw", "kkrt"}  # FATE 1.x's four, and fedweave's OT PSI
    assert all(issubclass(p, PsiProtocol) for p in PROTOCOLS.values())
    assert get_args(Hash) == HASHES  # what the conf accepts is what the primitives hash with


@pytest.mark.parametrize("params, field", [
    ({"intersect_method": "ph"}, "intersect_method"),
    ({"intersect_method": "rsa", "rsa_params": {"key_length": 512}}, "key_length"),
    ({"intersect_method": "rsa", "rsa_params": {"hash_method": "sm3"}}, "hash_method"),
    ({"intersect_method": "rsa", "rsa_params": {"keylength": 2048}}, "keylength"),
    ({"ecdh_params": {"curve": "P-256"}}, "curve"),
    ({"raw_params": {"join_role": "arbiter"}}, "join_role"),
])
def test_bad_params_name_the_field(params: dict, field: str):
    with pytest.raises(ValidationError, match=field):
        IntersectionParams(**params)


def test_a_host_sending_a_weak_key_is_refused(tmp_path: Path, monkeypatch):
    from components.psi import _rsa

    def weak_host(self, ctx, ids, guest):
        ctx.federation.remote([2**511 + 1, 65537], "rsa_pubkey", ctx.tag(), guest)

    monkeypatch.setattr(_rsa.RsaProtocol, "host", weak_host)
    guest, host1, _ = three_parties()
    with pytest.raises(ComponentError, match="cpn_0: host:10000: bad RSA public key.*at least 1024"):
        run(tmp_path, {GUEST: guest, HOST: host1}, intersect_method="rsa", sync_intersect_ids=False)


@pytest.mark.parametrize("value", [
    np.zeros((3, 31), dtype=np.uint8), np.zeros((3, 32)), [b"x" * 32], np.zeros(32, np.uint8),
])
def test_malformed_wire_arrays_are_refused(value):
    with pytest.raises(ComponentError, match=r"cpn_0: malformed encrypted host ids: expected an \(n, 32\)"):
        array_to_rows(value, 32, "cpn_0", "encrypted host ids")
    assert array_to_rows(rows_to_array([b"a" * 32, b"b" * 32], 32), 32, "c", "x") == [b"a" * 32, b"b" * 32]


def test_a_host_sending_malformed_oprf_values_is_named(tmp_path: Path, monkeypatch):
    from components.mpc import kkrt

    real = kkrt.KkrtSender.values
    monkeypatch.setattr(kkrt.KkrtSender, "values", lambda self, u: real(self, u)[:, 1:])  # one id short
    guest, host1, _ = three_parties()
    expected = r"cpn_0: host:10000: malformed OPRF values: expected 110 per hash.*got shape \(3, 109, 8\)"
    with pytest.raises(ComponentError, match=expected):
        run(tmp_path, {GUEST: guest, HOST: host1}, intersect_method="kkrt", sync_intersect_ids=False)
