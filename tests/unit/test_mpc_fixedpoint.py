"""components/mpc/fixedpoint.py: encoding, shares, local arithmetic and truncation in Z_2^k."""

from __future__ import annotations

import numpy as np
import pytest

from components.mpc import FixedPoint
from flow.core.errors import CryptoError

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("ring_bits", [64, 128])
def test_encode_decode_and_share_roundtrip(ring_bits: int):
    fp = FixedPoint(24, ring_bits)
    x = RNG.normal(0, 100, (7, 3))
    assert np.abs(fp.decode(fp.encode(x)) - x).max() <= 2.0 ** -25
    s0, s1 = fp.share(fp.encode(x))
    assert np.abs(fp.decode(fp.reconstruct(s0, s1)) - x).max() <= 2.0 ** -25
    assert fp.from_wire(fp.to_wire(s0)).tolist() == s0.tolist()


def test_linear_operations_on_shares():
    fp = FixedPoint(24, 128)
    x, y, c = RNG.normal(size=5), RNG.normal(size=5), RNG.normal(size=5)
    x0, x1 = fp.share(fp.encode(x))
    y0, y1 = fp.share(fp.encode(y))
    total = fp.reconstruct(fp.add(x0, y0), fp.add(x1, y1))
    assert np.allclose(fp.decode(total), x + y, atol=1e-6)
    d0, d1 = fp.add_public(fp.sub(x0, y0), fp.encode(c), 0), fp.add_public(fp.sub(x1, y1), fp.encode(c), 1)
    diff = fp.reconstruct(d0, d1)
    assert np.allclose(fp.decode(diff), x - y + c, atol=1e-6)
    scaled = fp.reconstruct(fp.scale(x0, -0.37, 0), fp.scale(x1, -0.37, 1))
    assert np.allclose(fp.decode(scaled), -0.37 * x, atol=1e-6)


@pytest.mark.parametrize("ring_bits", [64, 128])
def test_truncation_after_products_is_within_one_ulp(ring_bits: int):
    """A product of shares by a public encoded value has 2f fractional bits; truncating each
    share locally gives the product back to within 2^-f (small values, so no wrap at 64 bits)."""
    fp = FixedPoint(24, ring_bits)
    x = RNG.uniform(-0.01, 0.01, 2000) if ring_bits == 64 else RNG.normal(0, 50, 2000)
    c = RNG.normal(0, 3, 2000)
    s0, s1 = fp.share(fp.encode(x))
    prod0, prod1 = fp.mul(s0, fp.encode(c)), fp.mul(s1, fp.encode(c))
    got = fp.decode(fp.reconstruct(fp.truncate(prod0, 0), fp.truncate(prod1, 1)))
    exact = fp.decode(fp.encode(x)) * fp.decode(fp.encode(c))
    assert np.abs(got - exact).max() <= 2 * 2.0 ** -24


def test_a_share_is_not_correlated_with_the_value():
    fp = FixedPoint(24, 64)
    x = RNG.normal(0, 1, 20000)
    for s in fp.share(fp.encode(x)):
        as_real = np.array([float(v) for v in s]) / fp.modulus  # uniform in [0, 1) if it hides x
        assert abs(np.corrcoef(as_real, x)[0, 1]) < 0.05
        assert abs(np.corrcoef(fp.decode(s), x)[0, 1]) < 0.05


def test_bad_values_are_refused():
    fp = FixedPoint(24, 64)
    with pytest.raises(CryptoError, match="NaN"):
        fp.encode([np.nan])
    with pytest.raises(CryptoError, match="overflows"):
        fp.encode([2.0 ** 40])
    with pytest.raises(CryptoError, match="uint64 limbs"):
        FixedPoint(24, 128).from_wire(np.zeros((3, 1), dtype=np.uint64))
    with pytest.raises(CryptoError, match="ring_bits"):
        FixedPoint(24, 100)
