"""Paillier layer: arithmetic, encoding, obfuscation, errors, pickling, encrypted_dot."""

from __future__ import annotations

import pickle

import gmpy2
import numpy as np
import pytest

from components.crypto.paillier import (
    DEFAULT_PRECISION,
    EncryptedNumber,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
)
from components.crypto.vector import encrypted_dot, encrypted_sum
from flow.core.errors import CryptoError


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512)


@pytest.fixture(scope="module")
def other_keys():
    return generate_keypair(512)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def test_keypair_has_exact_length_and_rebuilds_from_n(keys):
    pk, sk = keys
    assert pk.n.bit_length() == 512 and pk.nsquare == pk.n**2
    rebuilt = PaillierPublicKey(pk.n)
    assert rebuilt == pk and hash(rebuilt) == hash(pk) and rebuilt.fingerprint() == pk.fingerprint()
    assert sk.decrypt(rebuilt.encrypt(-2.5).obfuscate()) == -2.5


def test_fingerprints_and_equality_differ_between_keys(keys, other_keys):
    assert keys[0] != other_keys[0]
    assert keys[0].fingerprint() != other_keys[0].fingerprint()


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e3, 1e6])
def test_float_round_trip_within_precision(keys, rng, scale):
    pk, sk = keys
    values = rng.normal(size=20) * scale
    got = sk.decrypt_many(pk.encrypt_many(values))
    np.testing.assert_allclose(got, values, rtol=0, atol=1e-6)
    assert [sk.decrypt(pk.encrypt(float(v))) for v in values[:3]] == pytest.approx(values[:3], abs=1e-6)


def test_ints_are_exact_with_exponent_zero(keys):
    pk, sk = keys
    for v in (0, 1, -1, 2**40 + 3, -(2**50) - 7):
        enc = pk.encrypt(v)
        assert enc.exponent == 0 and sk.decrypt(enc) == float(v)
    assert [x.exponent for x in pk.encrypt_many(np.arange(-3, 3))] == [0] * 6
    big = pk.encrypt(2**300 + 1)
    assert sk.raw_decrypt(big.ciphertext) == 2**300 + 1


def test_crt_decryption_matches_textbook_formula(keys, rng):
    pk, sk = keys
    p, q = int(sk._p), int(sk._q)
    lam = (p - 1) * (q - 1)
    mu = pow(lam, -1, pk.n)
    for m in [0, 1, pk.n - 1] + [int(x) for x in rng.integers(0, 2**62, size=5)]:
        c = int(gmpy2.mpz(1 + m * pk.n) * pk.obfuscator() % pk.nsquare)
        textbook = (pow(c, lam, pk.nsquare) - 1) // pk.n * mu % pk.n
        assert sk.raw_decrypt(c) == textbook == m


def test_encryption_is_randomised_and_exposed_once(keys):
    pk, sk = keys
    a, b = pk.encrypt(1.5), pk.encrypt(1.5)
    m = pk.encode(1.5, a.exponent)
    ca = a.ciphertext
    assert ca != b.ciphertext and ca != 1 + m * pk.n  # fresh randomness, not the bare encoding
    assert a.ciphertext == ca  # stable once exposed
    assert sk.decrypt(a) == sk.decrypt(b) == 1.5


def test_results_of_arithmetic_get_fresh_randomness_before_leaving(keys):
    """A receiver that knows c must not be able to strip c from c·Enc(m) and learn m."""
    pk, sk = keys
    sent = pk.encrypt(2.0)
    c = sent.ciphertext
    derived = sent + 5.0
    m = pk.encode(5.0, sent.exponent)
    assert derived.ciphertext != c * (1 + m * pk.n) % pk.nsquare
    scaled = sent * 3
    assert scaled.ciphertext != pow(c, 3, pk.nsquare)
    assert sk.decrypt(derived) == pytest.approx(7.0) and sk.decrypt(scaled) == pytest.approx(6.0)


def test_received_ciphertext_is_exposed_unchanged(keys):
    pk, sk = keys
    c = pk.encrypt(4.25).ciphertext
    received = EncryptedNumber(PaillierPublicKey(pk.n), c, DEFAULT_PRECISION)
    assert received.ciphertext == c and sk.decrypt(received) == 4.25


def test_operators_with_negatives(keys):
    pk, sk = keys
    a, b = pk.encrypt(3.5), pk.encrypt(-1.25)
    d = sk.decrypt
    cases = {
        "a+b": (a + b, 2.25), "a+float": (a + -0.75, 2.75), "float+a": (10.0 + a, 13.5),
        "a+int": (b + 2, 0.75), "a-b": (a - b, 4.75), "a-float": (a - 1.5, 2.0), "float-a": (1.0 - a, -2.5),
        "-a": (-a, -3.5), "-b": (-b, 1.25), "a*float": (a * 0.5, 1.75), "float*a": (-2.0 * a, -7.0),
        "a*int": (b * 4, -5.0), "a*neg int": (a * -3, -10.5), "a*0": (a * 0, 0.0), "a/2": (a / 2, 1.75),
        "np.float64*a": (np.float64(2.0) * a, 7.0), "a+np.int64": (a + np.int64(2), 5.5),
        "sum": (sum([a, b, a]), 5.75), "combo": (a * 3 + b * -2 - 1.0, 12.0),
    }
    for name, (enc, expected) in cases.items():
        assert isinstance(enc, EncryptedNumber), name
        assert d(enc) == pytest.approx(expected, abs=1e-8), name


def test_scalar_exponents_add_and_mixed_exponents_align(keys):
    pk, sk = keys
    coarse, fine = pk.encrypt(1.5, precision_bits=10), pk.encrypt(2.25, precision_bits=40)
    assert (coarse.exponent, fine.exponent) == (10, 40)
    total = coarse + fine
    assert total.exponent == 40 and sk.decrypt(total) == 3.75
    product = coarse * 0.1
    assert product.exponent == 10 + DEFAULT_PRECISION
    assert sk.decrypt(product + fine) == pytest.approx(2.4, abs=1e-6)
    assert sk.decrypt(fine - coarse * 2) == pytest.approx(-0.75)
    assert coarse.multiply(0.5, precision_bits=1).exponent == 11


def test_plaintext_and_scalar_overflow_raise(keys):
    pk, sk = keys
    with pytest.raises(CryptoError, match="overflows"):
        pk.encrypt(pk.n)
    with pytest.raises(CryptoError, match="overflows"):
        pk.encrypt(1e300)
    with pytest.raises(CryptoError, match="overflows"):
        pk.encrypt(1.0) * (pk.max_int + 1)
    with pytest.raises(CryptoError, match="overflow"):
        pk.encrypt_many([1.0, 1e300])
    wrapped = pk.encrypt(pk.max_int) + pk.encrypt(pk.max_int)  # lands between max_int and n - max_int
    with pytest.raises(CryptoError, match="decryption overflow"):
        sk.decrypt(wrapped)
    assert sk.decrypt(pk.encrypt(-pk.max_int)) == float(-pk.max_int)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1.0", None, [1.0], True])
def test_unencodable_values_raise(keys, bad):
    pk, _ = keys
    with pytest.raises(CryptoError):
        pk.encrypt(bad)
    with pytest.raises(CryptoError):
        pk.encrypt(1.0) + bad
    with pytest.raises(CryptoError):
        pk.encrypt(1.0) - bad
    with pytest.raises(CryptoError):
        bad - pk.encrypt(1.0)


def test_invalid_arguments_raise(keys):
    pk, sk = keys
    enc = pk.encrypt(1.0)
    for call in (lambda: enc * enc, lambda: enc / 0, lambda: enc / "x", lambda: pk.encrypt(1.0, precision_bits=-1),
                 lambda: pk.encrypt_many(np.ones((2, 2))), lambda: pk.encrypt_many(["a", "b"]),
                 lambda: generate_keypair(100), lambda: PaillierPublicKey(pk.n + 1), lambda: PaillierPublicKey(97),
                 lambda: PaillierPublicKey("123"), lambda: EncryptedNumber(pk, 0, 0),
                 lambda: EncryptedNumber(pk, pk.nsquare, 0), lambda: EncryptedNumber(pk, 5, -1),
                 lambda: EncryptedNumber(pk, 5, 10_000), lambda: EncryptedNumber(pk.n, 5, 0),
                 lambda: PaillierPrivateKey(pk, 3, 5), lambda: sk.decrypt(1.0)):
        with pytest.raises(CryptoError):
            call()


def test_mixing_keys_raises(keys, other_keys):
    (pk, _sk), (pk2, sk2) = keys, other_keys
    a, b = pk.encrypt(1.0), pk2.encrypt(1.0)
    for call in (lambda: a + b, lambda: a - b, lambda: sk2.decrypt(a), lambda: encrypted_sum([a, b]),
                 lambda: encrypted_dot([a, b], np.ones((2, 1)))):
        with pytest.raises(CryptoError, match="different"):
            call()


def test_pickle_round_trip_keeps_value_key_and_obfuscation_state(keys):
    pk, sk = keys
    exposed, raw = pk.encrypt(-3.25), pk.encrypt(8.5) * 2
    c = exposed.ciphertext
    out = pickle.loads(pickle.dumps([exposed, raw, pk, sk]))
    e2, r2, pk2, sk2 = out
    assert pk2 == pk and e2.public_key is r2.public_key  # the key travels once per pickle
    assert e2.ciphertext == c and e2.exponent == exposed.exponent
    assert sk2.decrypt(e2) == -3.25 and sk.decrypt(r2) == 17.0
    assert r2.ciphertext != raw._c  # still obfuscated on first exposure after the trip
    assert sk.decrypt(e2 + r2) == 13.75


def test_encrypted_sum_matches_numpy_with_mixed_exponents(keys, rng):
    pk, sk = keys
    values = rng.normal(size=30)
    encs = pk.encrypt_many(values[:20]) + [pk.encrypt(float(v), precision_bits=45) for v in values[20:]]
    total = encrypted_sum(encs)
    assert total.exponent == 45 and sk.decrypt(total) == pytest.approx(values.sum(), abs=1e-6)
    with pytest.raises(CryptoError):
        encrypted_sum([])


def test_encrypted_dot_matches_numpy(keys, rng):
    pk, sk = keys
    d = rng.normal(size=57) * 2
    X = rng.normal(size=(57, 6)) * 3
    X[:, 2] = np.abs(X[:, 2])  # an all non-negative column (no offset)
    X[:, 3] = 0.0  # an all-zero column
    X[5, 4] = -1e-9
    cipher = pk.encrypt_many(d)
    out = encrypted_dot(cipher, X)
    assert len(out) == 6 and all(o.exponent == cipher[0].exponent + DEFAULT_PRECISION for o in out)
    np.testing.assert_allclose(sk.decrypt_many(out), X.T @ d, rtol=0, atol=1e-6)
    coarse = encrypted_dot(cipher, X, precision_bits=12)
    np.testing.assert_allclose(sk.decrypt_many(coarse), X.T @ d, rtol=0, atol=57 * 6 * 2.0**-12)


def test_encrypted_dot_in_row_blocks_matches_one_block(keys, rng, monkeypatch):
    from components.crypto import vector

    pk, sk = keys
    d, X = rng.normal(size=45), rng.normal(size=(45, 3))
    cipher = pk.encrypt_many(d)
    whole = sk.decrypt_many(encrypted_dot(cipher, X))
    monkeypatch.setattr(vector, "_DOT_ROWS", 16)
    np.testing.assert_array_equal(sk.decrypt_many(encrypted_dot(cipher, X)), whole)
    np.testing.assert_allclose(whole, X.T @ d, atol=1e-6)


def test_encrypted_dot_integer_vector_mixed_exponents_and_big_values(keys, rng):
    pk, sk = keys
    d = rng.normal(size=9)
    cipher = pk.encrypt_many(d[:5]) + [pk.encrypt(float(v), precision_bits=40) for v in d[5:]]
    Xi = rng.integers(-7, 8, size=(9, 3))
    out = encrypted_dot(cipher, Xi)
    assert out[0].exponent == 40
    np.testing.assert_allclose(sk.decrypt_many(out), Xi.T @ d, atol=1e-9)
    single = encrypted_dot(cipher, Xi[:, 0].astype(float))
    assert len(single) == 1 and sk.decrypt(single[0]) == pytest.approx(Xi[:, 0] @ d, abs=1e-6)
    huge = rng.normal(size=(9, 2)) * 1e15  # scaled values exceed int64: the exact big-int path
    d_encoded = sk.decrypt_many(cipher)  # d as quantised (error 2**-33 each, x 1e15)
    np.testing.assert_allclose(sk.decrypt_many(encrypted_dot(cipher, huge)), huge.T @ d_encoded, rtol=1e-12)
    assert encrypted_dot(cipher, np.zeros((9, 0))) == []


def test_encrypted_dot_rejects_bad_input(keys):
    pk, _ = keys
    cipher = pk.encrypt_many([1.0, 2.0, 3.0])
    for X in (np.ones((2, 2)), np.ones((3, 2, 1)), np.array([[1.0], [np.nan], [2.0]]), np.array([["a"], ["b"], ["c"]])):
        with pytest.raises(CryptoError):
            encrypted_dot(cipher, X)
    with pytest.raises(CryptoError):
        encrypted_dot([], np.ones((0, 1)))
    with pytest.raises(CryptoError):
        encrypted_dot([1.0, 2.0, 3.0], np.ones((3, 1)))


def test_1024_bit_key_end_to_end():
    pk, sk = generate_keypair(1024)
    assert pk.n.bit_length() == 1024
    rng = np.random.default_rng(3)
    d, X = rng.normal(size=40), rng.normal(size=(40, 4))
    cipher = [c.obfuscate() for c in pk.encrypt_many(d)]
    dot = encrypted_dot(cipher, X)
    np.testing.assert_allclose(sk.decrypt_many(dot), X.T @ d, atol=1e-6)
    assert sk.decrypt(cipher[0] * -0.25 + 1.0) == pytest.approx(1.0 - d[0] / 4, abs=1e-8)


def test_dot_refuses_an_exponent_beyond_the_key():
    pk, _ = generate_keypair(256)
    with pytest.raises(CryptoError):
        encrypted_dot(pk.encrypt_many([1.0, 2.0]), np.zeros((2, 1)), precision_bits=300)
