"""ECDH PSI primitives: commutativity, distinctness, the X25519 maths, malformed input."""

from __future__ import annotations

import pickle

import pytest

from components.crypto.ecdh import EcdhCipher, hash_to_point
from flow.core.errors import CryptoError

IDS = ["alice", "bob", "carol", "", "ünïcødé-id", "10000", "10001"]


def test_double_encryption_commutes():
    a, b = EcdhCipher(), EcdhCipher()
    assert a.reencrypt(b.encrypt_ids(IDS)) == b.reencrypt(a.encrypt_ids(IDS))


def test_intersection_found_without_sharing_ids():
    a, b = EcdhCipher(), EcdhCipher()
    ids_a = [f"u{i}" for i in range(0, 60)]
    ids_b = [f"u{i}" for i in range(40, 90)]
    double_a = b.reencrypt(a.encrypt_ids(ids_a))
    double_b = a.reencrypt(b.encrypt_ids(ids_b))
    common = set(double_a) & set(double_b)
    assert {i for i, x in zip(ids_a, double_a) if x in common} == set(ids_a) & set(ids_b)


def test_distinct_ids_give_distinct_points_and_parties_differ():
    a, b = EcdhCipher(), EcdhCipher()
    enc_a = a.encrypt_ids(IDS)
    assert len(set(enc_a)) == len(IDS) and all(len(x) == 32 for x in enc_a)
    assert a.encrypt_ids(IDS) == enc_a  # deterministic for one secret
    assert not set(enc_a) & set(b.encrypt_ids(IDS))  # unlinkable across secrets
    assert not set(enc_a) & {hash_to_point(i) for i in IDS}


def test_str_and_utf8_bytes_ids_agree():
    a = EcdhCipher()
    assert a.encrypt_ids(["ünï"]) == a.encrypt_ids(["ünï".encode("utf-8")])


def test_rfc7748_vector():
    """Scalar multiplication is really X25519 (RFC 7748, section 5.2, first vector)."""
    scalar = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    expected = bytes.fromhex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    assert EcdhCipher(scalar).reencrypt([u]) == [expected]


def test_secret_rebuild_and_pickle_keep_the_mapping():
    a = EcdhCipher()
    clone = pickle.loads(pickle.dumps(a))
    assert clone.encrypt_ids(IDS) == a.encrypt_ids(IDS)
    assert EcdhCipher(b"\x01" * 32).encrypt_ids(IDS) == EcdhCipher(b"\x01" * 32).encrypt_ids(IDS)
    assert "\\x01" not in repr(EcdhCipher(b"\x01" * 32))


@pytest.mark.parametrize("point, reason", [
    (b"\x00" * 32, "small subgroup"),  # u = 0: low order
    ((1).to_bytes(32, "little"), "small subgroup"),  # u = 1: low order
    (b"\x05" * 31, "32 bytes"),
    (b"\x05" * 33, "32 bytes"),
    ((2**255 - 19).to_bytes(32, "little"), "canonical"),  # p itself: non-canonical
    (b"\xff" * 32, "canonical"),  # top bit set
    ("00" * 32, "expected bytes"),
    (None, "expected bytes"),
])
def test_malformed_points_are_rejected(point, reason):
    with pytest.raises(CryptoError, match=reason):
        EcdhCipher().reencrypt([point])


def test_bad_ids_and_secrets_are_rejected():
    for ids in ([1], [None], [["x"]]):
        with pytest.raises(CryptoError, match="str or bytes"):
            EcdhCipher().encrypt_ids(ids)
    for secret in (b"short", "x" * 32, 12):
        with pytest.raises(CryptoError, match="32 bytes"):
            EcdhCipher(secret)
