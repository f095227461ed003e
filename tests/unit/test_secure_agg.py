"""Secure aggregation masks: exact cancellation, and a lone masked update tells nothing."""

from __future__ import annotations

import numpy as np
import pytest

from components.crypto.secure_agg import FRACTION_BITS, SecureAggregator, add_words, decode, encode, prg_words
from flow.core.errors import CryptoError

NAMES = ["guest:9999", "host:10000", "host:10001", "host:10002"]


def parties(context: bytes = b"job.homo_lr_0") -> list[SecureAggregator]:
    aggs = [SecureAggregator(n, context) for n in NAMES]
    keys = {a.name: a.public_key for a in aggs}
    for a in aggs:
        a.agree(keys)
    return aggs


def test_fixed_point_round_trip_and_wrapping_sum():
    x = np.array([0.0, 1.5, -2.25, 1e-7, -123456.789, 3e10])
    np.testing.assert_allclose(decode(encode(x)), x, atol=2.0 ** -FRACTION_BITS)
    a, b = np.array([-5.5, 7.0]), np.array([2.25, -9.5])
    np.testing.assert_array_equal(decode(add_words([encode(a), encode(b)])), a + b)


def test_masks_cancel_exactly_in_the_sum():
    rng = np.random.default_rng(0)
    aggs = parties()
    updates = [rng.normal(0, 50, 1000) for _ in aggs]
    for rnd in (0, 1, 7):
        masked = [a.mask(u, rnd) for a, u in zip(aggs, updates)]
        total = add_words(masked)
        # exact: the masked sum equals the plain fixed-point sum word for word
        np.testing.assert_array_equal(total, add_words([encode(u) for u in updates]))
        np.testing.assert_allclose(decode(total), np.sum(updates, axis=0), atol=len(aggs) * 2.0 ** -FRACTION_BITS)
    # the pair masks themselves sum to zero modulo 2**64
    assert not add_words([a.mask_words(64, 3) for a in aggs]).any()


def test_a_lone_masked_update_is_unlike_the_update():
    rng = np.random.default_rng(1)
    aggs = parties()
    update = np.linspace(-3, 3, 4000) + rng.normal(0, 0.1, 4000)  # a very structured vector
    masked = aggs[1].mask(update, 0)
    # as seen alone, the words look uniform on [0, 2**64): 16 equal bins, chi-square
    counts = np.bincount((masked >> np.uint64(60)).astype(int), minlength=16)
    chi2 = float(((counts - len(masked) / 16) ** 2 / (len(masked) / 16)).sum())
    assert chi2 < 45.0, chi2  # 15 d.o.f.: p < 1e-4 only above ~44
    # decoded as if it were the update, it is uncorrelated with it and vastly off
    seen = decode(masked)
    assert abs(np.corrcoef(seen, update)[0, 1]) < 0.08
    assert np.median(np.abs(seen - update)) > 1e9
    # the same update in another round is masked afresh: the difference is uniform too
    diff = decode(aggs[1].mask(update, 1) - masked)
    assert np.median(np.abs(diff)) > 1e9
    # and fewer than all parties' vectors still look random
    partial = decode(add_words([a.mask(update, 0) for a in aggs[:3]]))
    assert np.median(np.abs(partial - 3 * update)) > 1e9


def test_pair_keys_are_symmetric_and_bound_to_the_context():
    a, b = parties(), parties(b"another job")
    for x in a:
        assert x.peers == sorted(set(NAMES) - {x.name})
    first, second = a[0], a[1]
    assert first._pair_keys[second.name] == second._pair_keys[first.name]
    # fresh keys and another context: other masks
    assert not np.array_equal(a[0].mask_words(8, 0), b[0].mask_words(8, 0))
    # the same secrets in another job's context give other masks
    def pair(context: bytes) -> SecureAggregator:
        group = [SecureAggregator(n, context, secret=bytes([i + 1]) * 32) for i, n in enumerate(NAMES[:2])]
        keys = {g.name: g.public_key for g in group}
        for g in group:
            g.agree(keys)
        return group[0]

    np.testing.assert_array_equal(pair(b"x").mask_words(8, 0), pair(b"x").mask_words(8, 0))
    assert not np.array_equal(pair(b"x").mask_words(8, 0), pair(b"y").mask_words(8, 0))


def test_prg_is_deterministic_and_rounds_differ():
    key = bytes(range(32))
    np.testing.assert_array_equal(prg_words(key, 5, 10), prg_words(key, 5, 10))
    assert not np.array_equal(prg_words(key, 5, 10), prg_words(key, 6, 10))
    # a longer stream starts with the shorter one (counter mode)
    np.testing.assert_array_equal(prg_words(key, 5, 100)[:10], prg_words(key, 5, 10))


def test_bad_input_is_refused():
    with pytest.raises(CryptoError, match="NaN"):
        encode(np.array([1.0, np.nan]))
    with pytest.raises(CryptoError, match="fixed-point range"):
        encode(np.array([2.0 ** 40]))
    a = SecureAggregator("guest:1")
    with pytest.raises(CryptoError, match="agree first"):
        a.mask(np.ones(3), 0)
    with pytest.raises(CryptoError, match="own public key"):
        a.agree({"guest:1": bytes(32), "host:2": SecureAggregator("host:2").public_key})
    with pytest.raises(CryptoError, match="malformed public key"):
        a.agree({"guest:1": a.public_key, "host:2": b"short"})
    with pytest.raises(CryptoError, match="low-order"):
        a.agree({"guest:1": a.public_key, "host:2": bytes(32)})
    with pytest.raises(CryptoError, match="uint64"):
        add_words([encode(np.ones(2)), np.ones(2)])
