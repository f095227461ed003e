"""SecureBoost building blocks: packing round trips, histograms against numpy, split gains
against a direct computation, params in FATE's nesting."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from components.crypto.paillier import generate_keypair
from components.tree.histogram import Binning, candidates, encrypted_candidates, plain_histogram
from components.tree.host import HostTrainer
from components.tree.packing import GHPacker, decrypt_packed, encrypt_packed, pack_ciphers
from components.tree.parallel import node_histograms, row_blocks
from components.tree.params import HeteroSecureBoostParams
from components.tree.tree import Node, SplitRule, Tree, threshold_decider, walk


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512)


@pytest.fixture(scope="module")
def gh():
    rng = np.random.default_rng(0)
    g = rng.uniform(-1, 1, 200)
    return g, rng.uniform(0, 0.25, 200)


def test_pack_round_trip_of_one_sample_and_of_sums(gh):
    g, h = gh
    packer = GHPacker.fit(g, h, len(g))
    plain = packer.pack(g, h)
    for i in (0, 17, 199):
        gi, hi, c = packer.unpack(plain[i])
        assert c == 1 and abs(gi - g[i]) < 1e-11 and abs(hi - h[i]) < 1e-12  # 40 significant bits
    G, H, C = packer.unpack(sum(plain))  # adding packed ints adds every field, without carries
    assert C == len(g) and abs(G - g.sum()) < 1e-9 and abs(H - h.sum()) < 1e-9
    assert "offset" not in packer.to_json()


def test_encrypted_pack_slots_round_trip(keys, gh):
    pub, priv = keys
    g, h = gh
    packer = GHPacker.fit(g, h, len(g))
    slots = packer.slots(pub)
    assert slots >= 2  # a 512-bit key holds several ~140-bit sums
    enc = encrypt_packed(pub, packer.pack(g[:7], h[:7]))
    packed = pack_ciphers(enc, packer.slot_bits, slots)
    assert len(packed) == -(-7 // slots)
    rows = decrypt_packed(priv, packer, packed, 7, slots)
    np.testing.assert_allclose(rows[:, 0], g[:7], atol=1e-11)
    np.testing.assert_allclose(rows[:, 1], h[:7], atol=1e-11)
    np.testing.assert_array_equal(rows[:, 2], 1)


def test_key_too_small_for_one_slot_is_a_clear_error(keys):
    pub, _ = keys
    packer = GHPacker(0.0, 600, 300, 300, 20)
    with pytest.raises(Exception, match="key_length"):
        packer.slots(pub)


def test_binning_and_histogram_against_numpy():
    rng = np.random.default_rng(1)
    x = np.c_[rng.normal(size=300), rng.integers(0, 3, 300), np.ones(300)]
    b = Binning.fit(x, 8)
    assert b.n_bins == [8, 3, 1]
    for f in range(3):  # bin b holds exactly the values in (sp[b-1], sp[b]]
        sp = b.split_points[f]
        lower = np.r_[-np.inf, sp[:-1]][b.bins[:, f]]
        assert ((x[:, f] > lower) & (x[:, f] <= sp[b.bins[:, f]])).all()
    g, h = rng.normal(size=300), rng.uniform(size=300)
    rows = np.sort(rng.choice(300, 120, replace=False))
    hist = plain_histogram(b.bins, b.n_bins, rows, g, h)
    for f in range(3):
        for k in range(b.n_bins[f]):
            sel = rows[b.bins[rows, f] == k]
            np.testing.assert_allclose(hist[f][k], [g[sel].sum(), h[sel].sum(), len(sel)], atol=1e-12)
    keep, cum = candidates(hist[0])
    for k, c in zip(keep, cum):
        sel = rows[x[rows, 0] <= b.threshold(0, k)]
        np.testing.assert_allclose(c, [g[sel].sum(), h[sel].sum(), len(sel)], atol=1e-12)
    assert len(candidates(hist[2])[0]) == 0  # a constant column offers no split


def test_encrypted_candidates_equal_plain_ones(keys):
    pub, priv = keys
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 3))
    b = Binning.fit(x, 6)
    g, h = rng.uniform(-1, 1, 60), rng.uniform(0, 0.25, 60)
    packer = GHPacker.fit(g, h, 60)
    enc = encrypt_packed(pub, packer.pack(g, h))
    pos = np.where(np.arange(60) % 3 == 0, 5, np.where(np.arange(60) % 3 == 1, 6, -1))  # two nodes, rest done
    with LocalSession(partitions=3, workers=1) as session:
        cells = node_histograms(session, row_blocks(session, enc, b.bins), pos, [5, 6], [0, 2])
    for node in (5, 6):
        rows = np.nonzero(pos == node)[0]
        where, sums = encrypted_candidates(cells, node, b.bins, b.n_bins, rows, [0, 2])
        got = decrypt_packed(priv, packer, sums, len(sums), 1)
        hist = plain_histogram(b.bins, b.n_bins, rows, g, h)
        expect = {(f, int(k)): c for f in (0, 2) for k, c in zip(*candidates(hist[f]))}
        assert where and set(where) == set(expect)
        for spot, row in zip(where, got):
            np.testing.assert_allclose(row, expect[spot], atol=1e-10)


def test_sibling_histogram_by_subtraction_equals_direct_sums(keys):
    pub, priv = keys
    rng = np.random.default_rng(5)
    b = Binning.fit(rng.normal(size=(40, 2)), 5)
    g, h = rng.uniform(-1, 1, 40), rng.uniform(0, 0.25, 40)
    packer = GHPacker.fit(g, h, 40)
    enc = encrypt_packed(pub, packer.pack(g, h))
    root = np.zeros(40, dtype=np.int64)
    kids = np.where(np.arange(40) < 12, 1, 2)  # node 1 smaller: node 2 is derived
    with LocalSession(partitions=2, workers=1) as session:
        table = row_blocks(session, enc, b.bins)
        parent = HostTrainer._histograms(session, table, root, {0: np.arange(40)}, [0, 1], None)
        derived = HostTrainer._histograms(session, table, kids, {1: np.arange(12), 2: np.arange(12, 40)}, [0, 1],
                                          (root, parent))
        direct = node_histograms(session, table, kids, [1, 2], [0, 1])
    assert set(direct) <= set(derived)
    for cell, c in direct.items():
        assert priv.raw_decrypt(derived[cell].ciphertext) == priv.raw_decrypt(c.ciphertext)


def test_split_gain_against_direct_computation():
    rng = np.random.default_rng(4)
    g, h = rng.normal(size=50), rng.uniform(0.1, 1, 50)
    rule = SplitRule(l2=0.5, min_child_weight=0.0, min_leaf_node=1, min_impurity_split=0.0)
    order = np.argsort(rng.normal(size=50))
    left = np.array([[g[order[:k]].sum(), h[order[:k]].sum(), k] for k in range(1, 50)])
    total = np.array([g.sum(), h.sum(), 50])

    def direct(k):
        gl, hl, gr, hr = g[order[:k]].sum(), h[order[:k]].sum(), g[order[k:]].sum(), h[order[k:]].sum()
        return gl ** 2 / (hl + 0.5) + gr ** 2 / (hr + 0.5) - g.sum() ** 2 / (h.sum() + 0.5)

    i, gain = rule.best(left, total)
    gains = [direct(k) for k in range(1, 50)]
    assert i == int(np.argmax(gains)) and abs(gain - max(gains)) < 1e-12
    assert rule.leaf_weight(g.sum(), h.sum()) == pytest.approx(-g.sum() / (h.sum() + 0.5))
    # min_child_weight and min_leaf_node rule out children that are too light or too small
    strict = SplitRule(l2=0.5, min_child_weight=h.sum(), min_impurity_split=0.0)
    assert strict.best(left, total) == (-1, -np.inf)
    few = SplitRule(l2=0.5, min_leaf_node=20, min_impurity_split=0.0)
    j, _ = few.best(left, total)
    assert 19 <= j <= 29
    assert SplitRule(l1=1.0).leaf_weight(0.5, 1.0) == 0.0  # inside the L1 dead zone


def test_walk_asks_hosts_only_about_their_nodes():
    tree = Tree(0, [Node(0, party="guest", split_id=0, left=1, right=2), Node(1, party="h1", split_id=0, left=3,
                                                                                right=4),
                    Node(2, weight=-1.0), Node(3, weight=1.0), Node(4, weight=2.0)])
    x_guest, x_host = np.array([[0.0], [1.0], [0.0]]), np.array([[5.0], [5.0], [0.0]])
    asked = []

    def ask(queries):
        asked.append(queries)
        rows, splits = queries["h1"]
        return {"h1": threshold_decider(x_host, [(0, 1.0)])(rows, splits)}

    leaves = walk([tree], 3, threshold_decider(x_guest, [(0, 0.5)]), ask, ["h1"])
    assert leaves[0].tolist() == [4, 2, 3]
    assert len(asked) == 1 and asked[0]["h1"][0].tolist() == [0, 2]  # row 1 never reached the host's node


def test_params_fate_nesting_and_short_names():
    p = HeteroSecureBoostParams.model_validate({"bin_num": 16, "tree_param": {"max_depth": 4, "criterion_param": [2.0],
                                                                               "min_leaf_node": 3}})
    assert (p.bins, p.depth, p.split_rule().l2, p.split_rule().min_leaf_node) == (16, 4, 2.0, 3)
    q = HeteroSecureBoostParams.model_validate({"max_bin": 8, "max_depth": 2, "l2": 1.0, "min_child_weight": 0.5,
                                                "objective": "multiclass"})
    assert (q.bins, q.depth, q.split_rule().l2, q.split_rule().min_child_weight, q.task) == (8, 2, 1.0, 0.5,
                                                                                            "multiclass")
    with pytest.raises(pydantic.ValidationError, match="lse"):
        HeteroSecureBoostParams.model_validate({"objective_param": {"objective": "lse"}})
    with pytest.raises(pydantic.ValidationError, match="run_goss"):
        HeteroSecureBoostParams.model_validate({"run_goss": True})


def test_row_blocks_on_the_pool_sum_like_encrypted_sum_at_mixed_exponents(keys):
    """The host's blocks cross to pool workers as byte buffers: per (node, feature, bin) the
    sums equal encrypted_sum of the same ciphertexts, here of mixed exponents."""
    from components.crypto.vector import encrypted_sum
    from components.tree.parallel import RowBlock

    pub, priv = keys
    rng = np.random.default_rng(8)
    b = Binning.fit(rng.normal(size=(30, 2)), 4)
    enc = [pub.encrypt(float(v)) if i % 2 else pub.encrypt(int(i)) for i, v in enumerate(rng.uniform(-1, 1, 30))]
    assert len({c.exponent for c in enc}) == 2
    pos = np.where(np.arange(30) < 10, 3, 4)
    with LocalSession(partitions=3, workers=2, inline_below=0) as session:
        blocks = row_blocks(session, enc, b.bins)
        assert len(blocks.blocks) == 3 and all(isinstance(x, RowBlock) for x in blocks.blocks)
        cells = node_histograms(session, blocks, pos, [3, 4], [0, 1])
    for node in (3, 4):
        for f in (0, 1):
            for bin_ in range(b.n_bins[f]):
                sel = [c for i, c in enumerate(enc) if pos[i] == node and b.bins[i, f] == bin_]
                if not sel:
                    assert (node, f, bin_) not in cells
                    continue
                assert priv.decrypt(cells[(node, f, bin_)]) == pytest.approx(priv.decrypt(encrypted_sum(sel)), abs=1e-9)


def test_a_ciphertext_beyond_its_modulus_is_refused_by_the_blocks(keys):
    from components.crypto.paillier import _new
    from flow.core.errors import CryptoError

    pub, _ = keys
    bad = [pub.encrypt(1), _new(pub, pub._n2 * 3, 0)]
    with LocalSession(partitions=1, workers=1) as session, pytest.raises(CryptoError, match="does not fit"):
        row_blocks(session, bad, np.zeros((2, 1), dtype=np.int32))


def test_encrypt_all_on_the_pool_returns_randomised_exact_ciphertexts_in_order(keys):
    """The guest's workers return each chunk as one buffer: the ciphertexts come back in input
    order, exact (exponent 0), already randomised, and two encryptions of one value differ."""
    from components.tree.parallel import encrypt_all

    pub, priv = keys
    plain = [7, 7, 0, 2**60 + 3, 12345]
    with LocalSession(partitions=4, workers=2, inline_below=0) as session:
        enc = encrypt_all(session, priv, plain)
    assert [priv.raw_decrypt(c.ciphertext) for c in enc] == plain
    assert all(c.exponent == 0 and c._obfuscated and c.public_key == pub for c in enc)
    assert enc[0].ciphertext != enc[1].ciphertext
