"""Feldman verifiable secret sharing (components/crypto/feldman.py) and the FeldmanVerifiableSum
component over the real standalone transport, checked against plain sums of the same values."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import numpy as np
import pytest

from backends.computing.local import LocalSession
from components.base import Inputs
from components.crypto import feldman
from components.feature.feldman_sum import FeldmanVerifiableSum, FeldmanVerifiableSumParams
from federation.api import Party
from federation.standalone import StandaloneFederation
from flow.core.errors import ComponentError, CryptoError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties

GROUP = feldman.modp_group()
#: p = 2*11 + 1: small enough to enumerate every polynomial
TINY = feldman.Group(23, 11, 4)


def test_group_is_a_safe_prime_subgroup():
    assert pow(GROUP.g, GROUP.q, GROUP.p) == 1 and GROUP.g != 1
    assert GROUP.p == 2 * GROUP.q + 1 and GROUP.p.bit_length() == 2048
    e = random.getrandbits(2000)
    assert feldman.power_of_g(GROUP, e) == pow(GROUP.g, e, GROUP.p)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_reconstruction_equals_the_plain_sum(n):
    rng = random.Random(n)
    values = [[round(rng.uniform(-1e6, 1e6), 6) for _ in range(4)] for _ in range(n)]  # party x column
    dealt = [[feldman.share(feldman.encode(v, 6, GROUP), n, GROUP) for v in row] for row in values]
    for col in range(4):
        # party x (1-based) holds the sum of the shares every dealer gave it for this column
        held = {x: sum(dealt[d][col][0][x - 1] for d in range(n)) % GROUP.q for x in range(1, n + 1)}
        combined = feldman.combine_commitments([dealt[d][col][1] for d in range(n)], GROUP)
        assert all(feldman.verify(x, y, combined, GROUP) for x, y in held.items())
        total = feldman.decode(feldman.reconstruct(held, GROUP), 6, GROUP)
        plain = sum(row[col] for row in values)
        assert abs(total - plain) <= 1e-9 * max(1.0, abs(plain))


def test_fixed_point_rounds_to_q_n_decimals_and_keeps_the_sign():
    for v, q_n in [(-2.5, 0), (3.5, 0), (1.23456789, 3), (-0.000001, 6), (123456789.125, 2)]:
        expected = float(round(Decimal(repr(v)), q_n))
        assert feldman.decode(feldman.encode(v, q_n, GROUP), q_n, GROUP) == expected
    with pytest.raises(CryptoError, match="non-finite"):
        feldman.encode(float("nan"), 6, GROUP)


def test_a_tampered_share_fails_verification_naming_the_sender():
    items = [feldman.share(feldman.encode(float(v), 6, GROUP), 3, GROUP) for v in range(5)]
    ys = [s[1] for s, _ in items]
    cs = [c for _, c in items]
    feldman.check_shares("host 10000", 2, ys, cs, GROUP)  # the honest ones pass
    ys[3] = (ys[3] + 1) % GROUP.q
    assert not feldman.verify(2, ys[3], cs[3], GROUP)
    assert not feldman.verify_batch(2, ys, cs, GROUP)
    labels = [f"item {k}" for k in range(5)]
    with pytest.raises(CryptoError, match=r"from host 10000 \(item 3\)"):
        feldman.check_shares("host 10000", 2, ys, cs, GROUP, labels)
    # a share checked at another party's x, or a commitment outside the group, fails too
    assert not feldman.verify(3, items[0][0][1], items[0][1], GROUP)
    assert not feldman.verify(2, items[0][0][1], [GROUP.p - 1] + items[0][1][1:], GROUP)


def test_fewer_shares_than_the_threshold_reveal_nothing():
    """Threshold n = 3: over every polynomial with a given secret, any two shares take every pair
    of values exactly once, whatever the secret: they are uniform and independent of it."""
    q = TINY.q
    for secret in range(q):
        pairs = Counter()
        for a1 in range(q):
            for a2 in range(q):
                shares, _ = feldman.share(secret, 3, TINY, coefficients=[secret, a1, a2])
                pairs[(shares[0], shares[2])] += 1
        assert len(pairs) == q * q and set(pairs.values()) == {1}
    # and one share of a random polynomial is uniform: each value once over the q choices of a1
    for secret in (0, 5):
        assert sorted(feldman.share(secret, 2, TINY, coefficients=[secret, a])[0][0] for a in range(q)) == \
            list(range(q))


def test_lagrange_needs_distinct_nonzero_points():
    with pytest.raises(CryptoError):
        feldman.lagrange_weights([1, 1], GROUP.q)


def test_wire_round_trip_refuses_other_shapes():
    vals = [0, 1, GROUP.p - 1]
    assert feldman.from_bytes(feldman.to_bytes(vals, GROUP.width), GROUP.width) == vals
    with pytest.raises(CryptoError, match="malformed"):
        feldman.from_bytes(np.zeros((2, 3), dtype=np.uint8), GROUP.width)


# ------------------------------------------------------------------------------ the component

HOST2 = Party("host", "10001")


def _jobs(s, params: dict, tables: dict) -> dict:
    return {party: (s, params, Inputs(data={"data": ds})) for party, ds in tables.items()}


def test_component_sums_each_id_over_three_parties(tmp_path):
    rng = np.random.default_rng(3)
    ids = [f"id{i:03d}" for i in range(12)]
    x = {p: np.round(rng.normal(scale=50, size=(12, 3)), 4) for p in (GUEST, HOST, HOST2)}
    with LocalSession(partitions=2, workers=1) as s:
        tables = {GUEST: dataset(s, x[GUEST], ["a", "b", "c"], ids=ids),
                  HOST: dataset(s, x[HOST][:10], ["u", "v", "w"], ids=ids[:10]),  # two ids fewer
                  HOST2: dataset(s, x[HOST2][2:], ["p", "q", "r"], ids=ids[2:])}  # two other ids fewer
        host_x = {GUEST: x[GUEST], HOST: np.vstack([x[HOST][:10], np.zeros((2, 3))]),
                  HOST2: np.vstack([np.zeros((2, 3)), x[HOST2][2:]])}
        params = {"sum_cols": [0, 2], "q_n": 4}
        out = run_parties(tmp_path, FeldmanVerifiableSum, _jobs(s, params, tables))
        got_ids, got, _ = rows_of(out[GUEST][0].data[0])
    assert out[GUEST][0].data[0].meta.feature_columns == ["a", "c"]
    assert got_ids == ids[2:10]  # only the ids every party holds
    plain = sum(host_x[p] for p in host_x)[2:10][:, [0, 2]]
    np.testing.assert_allclose(got, plain, rtol=0, atol=1e-9)
    assert out[HOST][0].data == [] and out[HOST2][0].data == []
    assert out[GUEST][1].metrics[("train", "feldman_verifiable_sum")]["parties"] == 3


def test_component_names_the_host_that_sent_a_bad_share(tmp_path, monkeypatch):
    original = StandaloneFederation.remote

    def tampering(self, obj, name, tag, parties):
        if self.local == HOST and name == "shares":
            ids, ncols, shares, commits = obj
            shares = shares.copy()
            shares[1, -1] ^= 1
            obj = (ids, ncols, shares, commits)
        return original(self, obj, name, tag, parties)

    monkeypatch.setattr(StandaloneFederation, "remote", tampering)
    x = np.arange(12, dtype=float).reshape(4, 3)
    with LocalSession(partitions=1, workers=1) as s:
        tables = {GUEST: dataset(s, x, ["a", "b", "c"]), HOST: dataset(s, x + 1, ["u", "v", "w"])}
        with pytest.raises(ComponentError, match=r"from host 10000 \(id id00000, column 1\)"):
            run_parties(tmp_path, FeldmanVerifiableSum, _jobs(s, {}, tables))


def test_component_refuses_bad_columns(tmp_path):
    x = np.ones((3, 2))
    with LocalSession(partitions=1, workers=1) as s:
        tables = {GUEST: dataset(s, x, ["a", "b"]), HOST: dataset(s, np.ones((3, 1)), ["u"])}
        with pytest.raises(ComponentError, match="every party's sum_cols must pick as many"):
            run_parties(tmp_path, FeldmanVerifiableSum, _jobs(s, {}, tables))
        tables = {GUEST: dataset(s, x, ["a", "b"]), HOST: dataset(s, x, ["u", "v"])}
        with pytest.raises(ComponentError, match=r"sum_cols \[5\] out of range"):
            run_parties(tmp_path / "2", FeldmanVerifiableSum, _jobs(s, {"sum_cols": [5]}, tables))


def test_params_follow_fate():
    assert FeldmanVerifiableSumParams().q_n == 6
    for bad in ({"q_n": 17}, {"q_n": -1}, {"q_n": 2.0}, {"sum_cols": ["x0"]}):
        with pytest.raises(ValueError):
            FeldmanVerifiableSumParams(**bad)
