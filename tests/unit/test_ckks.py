"""CKKS (components/crypto/ckks.py): the column sums of [[d]] ⊙ X through the key holder
against numpy within the flooding noise, flooding that is really there and sized by the
rows, masks that hide the slots, and a wire that carries public material only."""

from __future__ import annotations

import math

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
    assert ckks.flood_sigma(1000) == 1000 * 2.0 ** (ckks.FLOOD_BITS - 62) and ckks.FLOOD_BITS >= 40


def column_sums(holder, public, d, X):
    """Guest -> host -> key holder and back, bytes only; the sums with masks and scales removed."""
    sent = ckks.to_bytes(ckks.encrypt_vector(public, d))
    scales = ckks.column_scales(X)
    columns, masks = ckks.masked(ckks.column_products(ckks.vectors_from(public, sent), X / scales))
    return (holder.slot_sums(ckks.to_bytes(columns), len(d)) - masks) * scales, columns


def test_masked_column_sums_over_the_wire_equal_numpy(holder, public):
    rng = np.random.default_rng(4)
    n = ckks.SLOTS + 500  # two ciphertexts, the second padded
    d, X = rng.normal(size=n), rng.normal(size=(n, 3))
    X[:, 2] *= 300.0  # wider than X_BOUND: scaled by a power of two and back
    got, _ = column_sums(holder, public, d, X)
    sigma = ckks.flood_sigma(n)
    np.testing.assert_allclose(got[:2], X[:, :2].T @ d, atol=8 * sigma)
    scales = ckks.column_scales(X)
    assert scales[0] == scales[1] == 1.0 and 8.0 < np.abs(X[:, 2]).max() / scales[2] <= 16.0
    assert got[2] == pytest.approx(X[:, 2] @ d, abs=8 * scales[2] * sigma)


def test_flooding_noise_has_the_documented_size_and_is_fresh(holder, public):
    [zeros] = ckks.encrypt_vector(public, np.zeros(ckks.SLOTS))
    blob = ckks.to_bytes([zeros])
    draws = np.concatenate([holder.slot_sums(blob * 50, 4096) for _ in range(4)])  # 200 draws of one sum
    assert draws.std() == pytest.approx(ckks.flood_sigma(4096), rel=0.2)
    assert len(set(draws.tolist())) == draws.size
    assert np.abs(holder.slot_sums(blob * 20, 1)).max() < 8 * ckks.flood_sigma(1) < np.abs(draws).max()


def test_the_key_holder_sees_masked_slots_only(holder, public):
    """What the key holder decrypts looks uniform in +-2**20 whatever the products are: the
    same products masked twice differ everywhere, and their slots are no closer to the
    products than to zero."""
    rng = np.random.default_rng(5)
    d, X = np.full(1000, 3.0), np.ones((1000, 1))  # every product is 3
    [column] = ckks.column_products(ckks.encrypt_vector(public, d), X)
    seen = [np.array(ckks.vectors_from(holder.context, ckks.to_bytes(ckks.masked([column])[0]))[0].decrypt())
            for _ in range(2)]
    assert np.abs(seen[0] - seen[1]).min() > 1e-3
    assert np.abs(seen[0]).max() <= ckks.MASK_BOUND + 10 and np.abs(seen[0]).mean() > ckks.MASK_BOUND / 4
    assert abs(np.corrcoef(seen[0][:1000], rng.normal(size=1000) + 3)[0, 1]) < 0.2


def test_the_public_context_cannot_decrypt(public):
    [v] = ckks.encrypt_vector(public, np.ones(3))
    assert not public.has_secret_key()
    with pytest.raises(ValueError, match="secret"):
        v.decrypt()


def test_received_contexts_and_vectors_are_checked(holder, public):
    secret = bytes(holder.context.serialize(save_secret_key=True))
    with pytest.raises(CryptoError, match="carries a secret key"):
        ckks.public_context(secret)
    weak = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    weak.make_context_public()
    with pytest.raises(CryptoError, match="expected"):
        ckks.public_context(bytes(weak.serialize()))
    with pytest.raises(CryptoError, match="invalid CKKS context"):
        ckks.public_context(b"\x00not a context")
    with pytest.raises(CryptoError, match="invalid CKKS vector #0"):
        ckks.vectors_from(public, [b"garbage"])
    with pytest.raises(CryptoError, match="one row per packed value"):
        ckks.column_products(ckks.encrypt_vector(public, np.ones(10)), np.ones((ckks.SLOTS + 1, 2)))
    with pytest.raises(CryptoError, match="within"):
        ckks.column_products(ckks.encrypt_vector(public, np.ones(10)), np.full((10, 1), 17.0))


def test_the_key_holder_refuses_a_scale_that_would_shrink_the_flooding(holder, public):
    low = ts.ckks_vector(public, [1.0] * ckks.SLOTS, scale=2.0 ** 30)
    with pytest.raises(CryptoError, match="scale"):
        holder.slot_sums(ckks.to_bytes([low]), 10)
    [fresh] = ckks.encrypt_vector(public, np.r_[2.5, np.zeros(10)])
    assert holder.slot_sums(ckks.to_bytes([fresh]), 1)[0] == pytest.approx(2.5, abs=1e-3)
    assert math.isfinite(holder.slot_sums(ckks.to_bytes([fresh]), 1)[0])
