"""RSA blind-signature PSI primitives: the blind/unblind identity, exact matches, bad input."""

from __future__ import annotations

import hashlib

import gmpy2
import pytest

from components.crypto.rsa_psi import RsaBlinder, RsaHash, RsaSigner
from flow.core.errors import CryptoError

IDS = ["alice", "bob", "carol", "", "ünïcødé-id", "10000", "10001"]


@pytest.fixture(scope="module")
def signer() -> RsaSigner:
    return RsaSigner(1024)


def textbook_signature(signer: RsaSigner, x: int) -> int:
    """x^d mod n with d from the key itself (no CRT): the reference for the identity."""
    n, e = signer.public_key
    phi = (int(signer._p) - 1) * (int(signer._q) - 1)
    assert int(signer._p) * int(signer._q) == n
    return pow(x, int(gmpy2.invert(e, phi)), n)


def test_unblinded_blind_signature_is_the_plain_signature(signer):
    hashing = RsaHash()
    blinder = RsaBlinder(signer.public_key, hashing)
    blinded = blinder.blind(IDS)
    hashed = [int(hashing.id_value(i)) for i in IDS]
    assert all(b != h for b, h in zip(blinded, hashed))  # the host never sees H(id) itself
    signed = signer.sign_blinded(blinded)
    # (H·r^e)^d = H^d·r, so removing r leaves exactly the textbook signature of H(id)
    n = int(signer.n)
    r_inv = [int(v) for v in blinder._r_inv]
    assert [s * ri % n for s, ri in zip(signed, r_inv)] == [textbook_signature(signer, h) for h in hashed]
    width = (n.bit_length() + 7) // 8
    expected = [hashlib.sha256(textbook_signature(signer, h).to_bytes(width, "big")).digest() for h in hashed]
    assert blinder.unblind(signed) == expected == signer.sign_ids(IDS, hashing)


def test_blinding_is_fresh_each_time(signer):
    blinder = RsaBlinder(signer.public_key, RsaHash())
    assert blinder.blind(IDS) != blinder.blind(IDS)
    assert len(set(blinder.blind(["same"] * 20))) == 20


def test_a_host_holding_d_cannot_test_a_guess_by_the_blinding_factor(signer):
    """(b / H(x))^d is r itself: with a short r (FATE's 128-bit random_bit) the host could
    confirm a guessed id by its size. Here r is drawn below n, so it is as long as n."""
    hashing = RsaHash()
    blinder = RsaBlinder(signer.public_key, hashing)
    blinded = blinder.blind(["alice"] * 200)
    n = int(signer.n)
    h_inv = int(gmpy2.invert(int(hashing.id_value("alice")), n))
    factors = [textbook_signature(signer, b * h_inv % n) for b in blinded]
    assert factors == [int(gmpy2.invert(r_inv, n)) for r_inv in blinder._r_inv]  # the premise: it is r
    sizes = [r.bit_length() for r in factors]
    assert min(sizes) > n.bit_length() - 16 and max(sizes) <= n.bit_length()


def test_intersection_sizes_are_exact(signer):
    hashing = RsaHash("sha512", "sha1", salt="s4lt")
    guest_ids = [f"u{i}" for i in range(0, 300)]
    host_ids = [f"u{i}" for i in range(180, 500)]
    blinder = RsaBlinder(signer.public_key, hashing)
    mine = blinder.unblind(signer.sign_blinded(blinder.blind(guest_ids)))
    theirs = signer.sign_ids(host_ids, hashing)
    assert all(len(v) == 20 for v in mine + theirs)
    shared = {g for g, v in zip(guest_ids, mine) if v in set(theirs)}
    assert shared == set(guest_ids) & set(host_ids) and len(shared) == 120


def test_settings_must_agree(signer):
    blinder = RsaBlinder(signer.public_key, RsaHash(salt="a"))
    mine = blinder.unblind(signer.sign_blinded(blinder.blind(IDS)))
    assert not set(mine) & set(signer.sign_ids(IDS, RsaHash(salt="b")))
    assert not set(mine) & set(RsaSigner(1024).sign_ids(IDS, RsaHash(salt="a")))  # another key


def test_a_host_signing_with_another_key_is_caught(signer):
    blinder = RsaBlinder(signer.public_key, RsaHash())
    blinded = blinder.blind(IDS)
    other = RsaSigner(1024)
    forged = [v % int(other.n) or 1 for v in blinded]
    with pytest.raises(CryptoError, match="does not verify"):
        blinder.unblind([v % int(signer.n) for v in other.sign_blinded(forged)])
    with pytest.raises(CryptoError, match="7 ids"):
        blinder.unblind(signer.sign_blinded(blinded)[:-1])


@pytest.mark.parametrize("values", [[0], [-5], ["n"]])
def test_out_of_range_values_are_refused(signer, values):
    if values == ["n"]:
        values = [int(signer.n)]
    with pytest.raises(CryptoError, match="outside 1..n-1"):
        signer.sign_blinded(values)


@pytest.mark.parametrize("key, reason", [
    ((2**511 + 1, 65537), "at least 1024"),
    ((2**1100, 65537), "odd"),
    ((2**1100 + 1, 2), "exponent"),
    ((2**1100 + 1, 1), "exponent"),
    ((2**1100 + 1, 2**300 + 1), "exponent"),
])
def test_bad_public_keys_are_refused(key, reason):
    with pytest.raises(CryptoError, match=reason):
        RsaBlinder(key, RsaHash())


def test_bad_settings_are_refused():
    with pytest.raises(CryptoError, match="sm3"):
        RsaHash("sm3")
    with pytest.raises(CryptoError, match="at least 1024"):
        RsaSigner(512)
    with pytest.raises(CryptoError, match="str or bytes"):
        RsaHash().id_value(12)
    assert "<private>" in repr(RsaSigner(1024))
