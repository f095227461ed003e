"""CKKS (components/crypto/ckks.py): the host's [[Xᵀ·d + mask]] against numpy within the
flooding noise, flooding that is really there, and a wire that carries public material only."""

from __future__ import annotations

import numpy as np
import pytest

from flow.core.errors import CryptoError

ts = pytest.importorskip("tenseal")
from components.crypto import ckks  # noqa: E402 - after the importorskip


@pytest.fixture(scope="module")
def holder():
    return ckks.KeyHolder()


@pytest.fixture(scope="module")
def public(holder):
    return ckks.public_context(holder.public_bytes())


def test_parameters_are_within_the_128_bit_bound():
    ckks.check_parameters()
    # SEAL's own table of the HE standard, not our copy of it
    import tenseal.sealapi as seal

    seal_max = seal.CoeffModulus.MaxBitCount(ckks.POLY_MODULUS_DEGREE, seal.SEC_LEVEL_TYPE.TC128)
    assert sum(ckks.COEFF_MOD_BIT_SIZES) <= seal_max == ckks.MAX_LOG_Q and ckks.POLY_MODULUS_DEGREE == 16384
    assert ckks.FLOOD_SIGMA == 2.0 ** (ckks.FLOOD_BITS - 46) and ckks.FLOOD_BITS >= 40


def test_masked_product_over_the_wire_equals_numpy(holder, public):
    rng = np.random.default_rng(4)
    n = ckks.SLOTS + 500  # two ciphertexts, the second padded
    d, X = rng.normal(size=n), rng.normal(size=(n, 3))
    mask = rng.uniform(-2 ** 20, 2 ** 20, 3)
    sent = ckks.to_bytes(ckks.encrypt_vector(public, d))  # guest -> host: bytes only
    product = ckks.dot_plain(ckks.vectors_from(public, sent), X, mask)
    received = ckks.vectors_from(holder.context, ckks.to_bytes(product))  # host -> key holder
    got = np.array([holder.decrypt_flooded(v, 1)[0] for v in received]) - mask
    np.testing.assert_allclose(got, X.T @ d, atol=8 * ckks.FLOOD_SIGMA)
    raw = np.array([v.decrypt()[0] for v in received]) - mask  # unflooded: far more precise than the noise
    np.testing.assert_allclose(raw, X.T @ d, atol=ckks.FLOOD_SIGMA / 1000)


def test_flooding_noise_has_the_documented_size(holder, public):
    [zeros] = ckks.vectors_from(holder.context, ckks.to_bytes(ckks.encrypt_vector(public, np.zeros(ckks.SLOTS))))
    first, second = holder.decrypt_flooded(zeros), holder.decrypt_flooded(zeros)
    assert first.std() == pytest.approx(ckks.FLOOD_SIGMA, rel=0.05)
    assert not np.array_equal(first, second)  # fresh noise each time


def test_the_public_context_cannot_decrypt(public):
    [v] = ckks.encrypt_vector(public, np.ones(3))
    assert not public.has_secret_key()
    with pytest.raises(ValueError, match="secret"):
        v.decrypt()


def test_received_contexts_and_vectors_are_checked(holder, public):
    secret = bytes(holder.context.serialize(save_secret_key=True, save_galois_keys=False))
    with pytest.raises(CryptoError, match="carries a secret key"):
        ckks.public_context(secret)
    weak = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    weak.generate_galois_keys()
    weak.make_context_public()
    with pytest.raises(CryptoError, match="expected"):
        ckks.public_context(bytes(weak.serialize(save_galois_keys=True)))
    with pytest.raises(CryptoError, match="invalid CKKS context"):
        ckks.public_context(b"\x00not a context")
    with pytest.raises(CryptoError, match="invalid CKKS vector #0"):
        ckks.vectors_from(public, [b"garbage"])
    with pytest.raises(CryptoError, match="one row per packed value"):
        ckks.dot_plain(ckks.encrypt_vector(public, np.ones(10)), np.ones((ckks.SLOTS + 1, 2)))
