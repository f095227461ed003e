"""Okamoto–Uchiyama (components/crypto/ou.py): keys, the additive homomorphism against plain
arithmetic (negatives included), X^T·[[d]] against numpy, the wire, and the scheme registry."""

from __future__ import annotations

import os

import numpy as np
import pytest

from components.crypto import ou, schemes
from components.crypto.paillier import EncryptedNumber, PaillierPublicKey
from components.crypto.vector import encrypted_dot, encrypted_sum
from federation import codec
from flow.core.errors import CodecError, CryptoError


@pytest.fixture(scope="module")
def keys():
    return ou.generate_keypair(768)


def test_keygen_gives_n_of_the_asked_size_and_p_of_a_third(keys):
    pub, priv = keys
    assert pub.n.bit_length() == 768 and int(priv._p).bit_length() == 256
    assert int(priv._p) ** 2 * int(priv._q) == pub.n
    assert ou.OUPublicKey(pub.n) == pub and ou.OUPublicKey(pub.n).g == pub.g  # rebuilt from n alone
    with pytest.raises(CryptoError, match="at least 256 bits"):
        ou.generate_keypair(128)


def test_homomorphism_matches_plain_arithmetic_on_random_values(keys):
    pub, priv = keys
    rng = np.random.default_rng(11)
    a, b = rng.uniform(-1e4, 1e4, 40), rng.uniform(-1e4, 1e4, 40)
    ints = rng.integers(-10**6, 10**6, 40)
    for x, y, k in zip(a, b, ints):
        ex, ey = pub.encrypt(float(x)), pub.encrypt(float(y))
        assert priv.decrypt(ex) == pytest.approx(x, abs=1e-9)
        assert priv.decrypt(ex + ey) == pytest.approx(x + y, abs=1e-8)
        assert priv.decrypt(ex - ey) == pytest.approx(x - y, abs=1e-8)
        assert priv.decrypt(ex + float(y)) == pytest.approx(x + y, abs=1e-8)
        assert priv.decrypt(float(y) - ex) == pytest.approx(y - x, abs=1e-8)
        assert priv.decrypt(ex * float(y)) == pytest.approx(x * y, rel=1e-8)
        assert priv.decrypt(ex * int(k)) == pytest.approx(x * int(k), rel=1e-9)
        assert priv.decrypt(-ex) == pytest.approx(-x, abs=1e-9)
        assert priv.decrypt(pub.encrypt(int(k))) == int(k)  # ints are exact


def test_randomised_on_exposure_and_still_decrypts(keys):
    pub, priv = keys
    c = pub.encrypt(-2.5) + 1.0
    raw = int(c._c)
    assert c.ciphertext != raw  # the sent value carries fresh randomness
    assert priv.decrypt(c) == -1.5
    assert pub.encrypt(3.0).ciphertext != pub.encrypt(3.0).ciphertext


def test_overflow_is_refused_not_wrapped(keys):
    pub, priv = keys
    with pytest.raises(CryptoError, match="Okamoto-Uchiyama plaintext space"):
        pub.encrypt(2.0 ** 300)
    big = pub.encrypt(pub.max_int)
    assert priv.raw_decrypt(big._c) == pub.max_int  # the extremes encode exactly
    assert priv.raw_decrypt(pub.encrypt(-pub.max_int)._c) == int(priv._p) - pub.max_int
    with pytest.raises(CryptoError, match="decryption overflow"):
        priv.decrypt(big * 2)  # past max_int, short of the negatives: detected


def test_encrypted_dot_and_sum_match_numpy(keys):
    pub, priv = keys
    rng = np.random.default_rng(3)
    d, X = rng.normal(size=60), rng.normal(size=(60, 5)) * 3
    enc = pub.encrypt_many(d)
    np.testing.assert_allclose(priv.decrypt_many(encrypted_dot(enc, X, 24)), X.T @ d, atol=1e-5)
    assert priv.decrypt(encrypted_sum(enc)) == pytest.approx(d.sum(), abs=1e-8)


def test_a_foreign_key_cannot_decrypt_or_mix(keys):
    pub, priv = keys
    other, _ = ou.generate_keypair(768)
    with pytest.raises(CryptoError, match="different public key"):
        priv.decrypt(other.encrypt(1.0))
    with pytest.raises(CryptoError, match="different"):
        pub.encrypt(1.0) + other.encrypt(1.0)


def test_wire_round_trip_keeps_the_scheme(keys):
    pub, priv = keys
    from components.crypto.paillier import generate_keypair as paillier_keys

    ppub, ppriv = paillier_keys(512)
    values = pub.encrypt_many(np.array([-1.5, 0.0, 2.25]))
    arr = np.empty((1, 3), dtype=object)
    arr[0, :] = values
    out = codec.decode(codec.encode({"one": values[0], "list": values, "array": arr, "paillier": ppub.encrypt(4.0)}))
    assert isinstance(out["one"].public_key, ou.OUPublicKey) and out["one"].public_key == pub
    np.testing.assert_array_equal(priv.decrypt_many(out["list"]), [-1.5, 0.0, 2.25])
    np.testing.assert_array_equal(priv.decrypt_many(out["array"].ravel()), [-1.5, 0.0, 2.25])
    assert isinstance(out["paillier"].public_key, PaillierPublicKey) and ppriv.decrypt(out["paillier"]) == 4.0


def test_wire_refuses_a_ciphertext_out_of_range(keys):
    pub, _ = keys
    raw = bytearray(codec.encode([pub.encrypt(1.0)]))
    width = (pub.n.bit_length() + 7) // 8
    # the ciphertext block sits right before the 8-byte exponent at the end: set it to n's bytes (out of range)
    raw[-8 - width:-8] = pub.n.to_bytes(width, "big")
    with pytest.raises(CodecError, match="out of range"):
        codec.decode(bytes(raw))


def test_registry_builds_each_scheme_from_its_message():
    for name, kind in (("paillier", PaillierPublicKey), ("ou", ou.OUPublicKey)):
        pub, priv = schemes.scheme(name.upper()).generate(512 if name == "paillier" else 768)
        got = schemes.public_key_from(codec.decode(codec.encode(schemes.public_message(name, pub))))
        assert type(got) is kind and got.n == pub.n
        assert priv.decrypt(got.encrypt(-0.75)) == -0.75
        assert isinstance(got.encrypt(1), EncryptedNumber)
    with pytest.raises(CryptoError, match="no additive encryption scheme named 'rsa'"):
        schemes.scheme("rsa")
    with pytest.raises(CryptoError, match="scheme name, modulus n"):
        schemes.public_key_from(12345)


@pytest.mark.parametrize("name", ["paillier", "ou"])
def test_a_peers_key_longer_than_8192_bits_is_refused_before_any_work(name):
    with pytest.raises(CryptoError, match="to 8192 bits"):
        schemes.public_key_from([name, (1 << 8200) + 1])


def test_a_table_of_ou_ciphertexts_goes_columnar_and_back(keys):
    from backends.computing.local import LocalSession

    pub, priv = keys
    session = LocalSession(partitions=2, workers=1, inline_below=10 ** 6)
    try:
        table = session.parallelize([(f"id{i}", pub.encrypt(i - 3.5)) for i in range(9)])
        blob = codec.encode(table)
        assert b"vector" in blob  # one block per partition, not a value per row
        back = sorted((k, priv.decrypt(v)) for k, v in codec.decode(blob, session=session).collect())
        assert back == [(f"id{i}", i - 3.5) for i in range(9)]
    finally:
        session.stop()


@pytest.mark.parametrize("scheme", ["paillier", "ou"])
def test_the_key_holders_randomness_is_the_public_tables_for_the_same_draw(scheme, monkeypatch):
    """A key holder (SecureBoost's guest) randomises modulo the primes with the exponent
    reduced there: for the same random bytes its factor equals the public key's, so its
    ciphertexts have the public encryption's distribution; they decrypt, and differ per call."""
    from components.crypto import schemes

    pub, priv = schemes.scheme(scheme).generate(1024 if scheme == "ou" else 512)
    for seed in range(3):
        draw = bytes((seed * 37 + i * 11) % 256 for i in range(256))
        monkeypatch.setattr(os, "urandom", lambda k, d=draw: d[:k])
        assert priv.obfuscator() == pub.obfuscator()
    monkeypatch.undo()
    one, two = priv.encrypt(-12345.25), priv.encrypt(-12345.25)
    assert one.ciphertext != two.ciphertext  # fresh randomness each time
    assert priv.decrypt(one) == priv.decrypt(two) == -12345.25
    assert priv.decrypt(one + pub.encrypt(0.25)) == -12345.0  # and it mixes with public encryptions


@pytest.mark.parametrize("scheme", ["paillier", "ou"])
def test_randomness_drawn_ahead_is_used_once_and_a_forked_child_drops_it(scheme):
    """prepare_obfuscators holds factors for later encryptions: each serves one ciphertext
    (two sharing one would let anyone divide them), and a forked worker never gets copies."""
    pub, priv = schemes.scheme(scheme).generate(768 if scheme == "ou" else 512)
    table = pub._obfuscation_table()
    table._reserve.clear()
    assert pub.prepare_obfuscators(16, 40) and len(table._reserve) == 16  # one step, more wanted
    assert pub.prepare_obfuscators(16, 40) and not pub.prepare_obfuscators(16, 40)  # 32, then 40: full
    assert len(table._reserve) == 40 and not pub.prepare_obfuscators(16, 40)  # full: no work
    held = list(table._reserve)
    assert len(set(held)) == 40
    cts = [pub.encrypt(float(i) / 4).obfuscate() for i in range(45)]  # 40 from the reserve, then fresh
    assert table._reserve == [] and [priv.decrypt(c) for c in cts] == [i / 4 for i in range(45)]
    pub.prepare_obfuscators(8, 8)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports and leaves at once
        os.write(write, str(len(table._reserve)).encode())
        os._exit(0)
    os.close(write)
    assert os.read(read, 16) == b"0" and len(table._reserve) == 8  # the parent keeps its own
    os.close(read)
    os.waitpid(child, 0)
    table._reserve.clear()
