"""Intersection's FATE 1.x options against a central set intersection: DH, ECDH/DH hash
methods, cardinality_only (ecdh, dh, rsa; one and two hosts; sync_cardinality), the
preprocess switches, and one-line refusals of what fedweave does not do."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import gmpy2
import numpy as np
import pytest
from pydantic import ValidationError

from backends.computing.local import LocalSession
from components.base import Inputs
from components.crypto.dh import DhCipher, group_bits, modp_prime
from components.crypto.ecdh import EcdhCipher, hash_to_point
from components.psi.intersection import Intersection, IntersectionParams
from flow.core.errors import CryptoError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties
from tests.unit.test_intersection import HOST2, three_parties

SM3 = "sm3" in hashlib.algorithms_available


def run(tmp_path: Path, tables: dict, **params) -> dict:
    with LocalSession(partitions=2, workers=1) as s:
        jobs = {}
        for party, ids in tables.items():
            y = np.zeros(len(ids)) if party.role == "guest" else None
            ds = dataset(s, np.arange(len(ids), dtype=float)[:, None], ["x0"], y, ids=ids, name=str(party))
            jobs[party] = (s, params, Inputs(data={"data": ds}))
        results = run_parties(tmp_path, Intersection, jobs)
        return {p: ({k for k, _ in out.data[0].table.collect()} if out.data else None, tr.metrics)
                for p, (out, tr) in results.items()}


# ------------------------------------------------------------ primitives

@pytest.mark.parametrize("bits, c", [(2048, "C90FDAA22168C234"), (3072, "C90FDAA22168C234"),
                                     (4096, "C90FDAA22168C234")])
def test_modp_primes_are_rfc3526_safe_primes(bits: int, c: str):
    p = modp_prime(bits)
    assert p.bit_length() == bits and f"{p:X}".startswith("FFFFFFFFFFFFFFFF" + c)
    assert f"{p:X}".endswith("FFFFFFFFFFFFFFFF")
    assert gmpy2.is_prime(p, 25) and gmpy2.is_prime((p - 1) // 2, 25)


def test_dh_commutes_and_refuses_values_outside_the_group():
    a, b = DhCipher(), DhCipher()
    ids = ["a", "b", "c"]
    assert b.reencrypt(a.encrypt_ids(ids)) == a.reencrypt(b.encrypt_ids(ids))
    assert a.encrypt_ids(["a"]) != b.encrypt_ids(["a"])
    p = modp_prime(2048)
    for bad in (1, p - 1, 0):
        with pytest.raises(CryptoError, match="malformed DH value"):
            a.reencrypt([bad.to_bytes(256, "big")])
    non_residue = next(v for v in range(2, 100) if gmpy2.jacobi(v, p) == -1)
    with pytest.raises(CryptoError, match="not in the prime-order subgroup"):
        a.reencrypt([non_residue.to_bytes(256, "big")])
    with pytest.raises(CryptoError, match="expected 256 bytes"):
        a.reencrypt([b"x" * 255])
    again = pickle.loads(pickle.dumps(a))
    assert again.encrypt_ids(ids) == a.encrypt_ids(ids) and "secret" not in repr(a).replace("<secret>", "")
    assert (group_bits(1024), group_bits(2048), group_bits(3000), group_bits(4096)) == (2048, 2048, 3072, 4096)


def test_ecdh_hash_methods_commute_and_differ():
    methods = ["sha256", "sha384", "sha512"] + (["sm3"] if SM3 else [])
    points = {m: hash_to_point("id1", m) for m in methods}
    assert len(set(points.values())) == len(methods)
    assert points["sha256"] == hash_to_point("id1")  # the default is unchanged
    for m in methods:
        a, b = EcdhCipher(hash_method=m), EcdhCipher(hash_method=m)
        assert a.reencrypt(b.encrypt_ids(["x", "y"])) == b.reencrypt(a.encrypt_ids(["x", "y"]))


# ------------------------------------------------------------ whole intersections

@pytest.mark.parametrize("params", [
    {"intersect_method": "dh", "dh_params": {"salt": "12345", "hash_method": "sha256", "key_length": 1024}},
    {"intersect_method": "dh", "dh_params": {"hash_method": "md5"}},
    {"intersect_method": "ecdh", "ecdh_params": {"hash_method": "sha512", "salt": "s"}},
    {"intersect_method": "ecdh", "ecdh_params": {"hash_method": "sm3" if SM3 else "sha384"},
     "run_preprocess": True, "intersect_preprocess_params": {"preprocess_method": "sha256",
                                                             "false_positive_rate": 0.2}},
])
def test_methods_and_options_give_the_central_intersection(tmp_path: Path, params: dict):
    guest, host1, host2 = three_parties()
    out = run(tmp_path, {GUEST: guest, HOST: host1, HOST2: host2}, only_output_key=True, **params)
    expected = set(guest) & set(host1) & set(host2)
    for party in (GUEST, HOST, HOST2):
        assert out[party][0] == expected
        assert out[party][1][("intersection", "intersect_count")] == len(expected)


@pytest.mark.parametrize("method", ["ecdh", "dh", "rsa"])
def test_cardinality_only_one_host(tmp_path: Path, method: str):
    guest, host1, _ = three_parties()
    out = run(tmp_path, {GUEST: guest, HOST: host1}, cardinality_only=True, cardinality_method=method,
              sync_cardinality=False)
    n = len(set(guest) & set(host1))
    assert out[GUEST][0] is None and out[HOST][0] is None  # no data: only the count is revealed
    assert out[GUEST][1][("intersection", "intersect_count")] == n == 70
    assert out[GUEST][1][("intersection", f"cardinality_{HOST.party_id}")] == n
    assert out[HOST][1] == {}  # without sync_cardinality the host learns nothing


@pytest.mark.parametrize("method", ["ecdh", "dh"])
def test_cardinality_only_two_hosts_with_sync(tmp_path: Path, method: str):
    guest, host1, host2 = three_parties()
    out = run(tmp_path, {GUEST: guest, HOST: host1, HOST2: host2}, cardinality_only=True,
              cardinality_method=method, sync_cardinality=True)
    for host, ids in ((HOST, host1), (HOST2, host2)):
        n = len(set(guest) & set(ids))
        assert out[GUEST][1][("intersection", f"cardinality_{host.party_id}")] == n
        assert out[host][1][("intersection", "intersect_count")] == n
    assert ("intersection", "intersect_count") not in out[GUEST][1]


def test_cardinality_ignores_intersect_method(tmp_path: Path):
    guest, host1, _ = three_parties()
    out = run(tmp_path, {GUEST: guest, HOST: host1}, intersect_method="raw", cardinality_only=True,
              cardinality_method="dh")
    assert out[GUEST][1][("intersection", "intersect_count")] == 70


# ------------------------------------------------------------ refusals, one line each

@pytest.mark.parametrize("params, text", [
    ({"intersect_method": "dh", "dh_params": {"hash_method": "none"}}, "not supported: dh_params.hash_method 'none'"),
    ({"intersect_method": "dh", "dh_params": {"key_length": 8192}}, "not supported: dh_params.key_length 8192"),
    ({"intersect_method": "dh", "dh_params": {"key_length": 512}}, "key_length"),
    ({"ecdh_params": {"hash_method": "md5"}}, "not supported: ecdh_params.hash_method 'md5'"),
    ({"cardinality_only": True, "cardinality_method": "raw"}, "cardinality_method"),
    ({"cardinality_only": True, "run_preprocess": True}, "cannot run preprocessing"),
    ({"cardinality_only": True, "cardinality_method": "rsa", "rsa_params": {"split_calculation": True}},
     "split_calculation false"),
    ({"run_preprocess": True, "intersect_preprocess_params": {"false_positive_rate": 0.001}}, ">= 0.01"),
    ({"intersect_preprocess_params": {"false_positive_rate": 0.6}}, "false_positive_rate"),
    ({"intersect_preprocess_params": {"encrypt_method": "dh"}}, "encrypt_method"),
])
def test_refusals(params: dict, text: str):
    with pytest.raises(ValidationError, match=text):
        IntersectionParams(**params)


def test_preprocess_is_reported_as_not_acted_on():
    p = IntersectionParams(run_preprocess=True, intersect_preprocess_params={"false_positive_rate": 0.2})
    assert set(p.notices()) >= {"run_preprocess", "intersect_preprocess_params"}
    assert IntersectionParams(intersect_method="dh").notices() == {}
    assert "2048-bit" in IntersectionParams(dh_params={"key_length": 1024}).notices()["dh_params.key_length"]
