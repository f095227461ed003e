"""EINI prediction (FATE's ``EINI_inference``): nobody follows a sample down a tree.

The plain walk tells the guest, node by node, which way a sample goes at each host's
splits. Here each party instead marks, per sample and tree, the leaves the sample *may*
reach as far as its own splits can tell (at another party's node: both sides); the true
leaf is the only one every party marks. The guest encrypts, for every sample and every
leaf of every tree, the leaf's learning-rate-scaled weight where it marks the leaf and 0
where it does not. The hosts in turn zero the leaves they do not mark; the last one adds
up what is left per sample and class. The guest decrypts only those sums: the scores the
walk gives, and nothing about the path. Hosts see ciphertexts and the trees' shape (which
nodes are theirs), never a weight or the guest's marks.

``EINI_random_mask``: the guest multiplies the weights by a secret random factor in [1, 2)
before encrypting and divides it out after decrypting. ``EINI_complexity_check``: refused
when the trees have fewer than :data:`MIN_LEAF_COMBINATIONS` leaf combinations in all,
where a score could single out the leaves (and so the hosts' decisions) that produced it.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import numpy as np

from components.base import Context
from components.crypto import schemes
from components.crypto.paillier import EncryptedNumber
from components.crypto.vector import encrypted_sum
from components.tree.parallel import decrypt_all, encrypt_all
from components.tree.params import HeteroSecureBoostParams
from components.tree.tree import GUEST, Node, Tree, leaf_candidates, threshold_decider
from flow.core.errors import ComponentError, CryptoError

#: fixed-point bits of the encrypted weights (a double's mantissa)
PRECISION = 52
#: the fewest leaf combinations (product over trees of their leaves) EINI_complexity_check allows
MIN_LEAF_COMBINATIONS = 10000


def _skeleton(tree: Tree, party: str) -> dict[str, Any]:
    """What a party needs of a tree to mark its leaf candidates: the shape, its own split ids."""
    mine = [n.party == party for n in tree.nodes]
    return {"dim": tree.dim, "left": [n.left for n in tree.nodes], "right": [n.right for n in tree.nodes],
            "leaf": [n.is_leaf for n in tree.nodes], "mine": mine,
            "split": [n.split_id if m else -1 for n, m in zip(tree.nodes, mine)]}


def _from_skeleton(sk: dict[str, Any]) -> tuple[Tree, np.ndarray]:
    nodes = [Node(i, party=None if leaf else "?", split_id=int(s), left=int(lf), right=int(r))
             for i, (leaf, s, lf, r) in enumerate(zip(sk["leaf"], sk["split"], sk["left"], sk["right"]))]
    return Tree(int(sk["dim"]), nodes), np.asarray(sk["mine"], dtype=bool)


def _marks(trees: list[Tree], mine: list[np.ndarray], x: np.ndarray, splits: list[tuple],
           missing: np.ndarray | None) -> np.ndarray:
    """(n, leaves of all trees) bool: this party's leaf candidates, tree after tree."""
    decide = threshold_decider(x, splits, missing)
    cols = []
    for tree, own in zip(trees, mine):
        reach = leaf_candidates(tree, len(x), own, decide)
        cols.append(reach[:, [n.id for n in tree.nodes if n.is_leaf]])
    return np.concatenate(cols, axis=1) if cols else np.zeros((len(x), 0), dtype=bool)


def eini_guest_scores(ctx: Context, p: HeteroSecureBoostParams, model: dict, x: np.ndarray,
                      splits: list[tuple], missing: np.ndarray | None) -> np.ndarray:
    """The guest's side: scores (n, tree_dim), as the walk would give them."""
    trees = [Tree.from_json(t) for t in model["trees"]]
    hosts = ctx.role_parties("host")
    leaves = [[n for n in t.nodes if n.is_leaf] for t in trees]
    if p.EINI_complexity_check:
        combos = math.prod(len(lv) for lv in leaves)
        if combos < MIN_LEAF_COMBINATIONS:
            raise ComponentError(f"{ctx.component}: EINI_complexity_check: the model's trees have {combos} leaf "
                                 f"combinations, fewer than {MIN_LEAF_COMBINATIONS}: a score could reveal the "
                                 "hosts' decisions; predict without EINI_inference or with a larger model")
    dim = int(model["tree_dim"])
    for h in hosts:
        ctx.federation.remote({"dim": dim, "trees": [_skeleton(t, h.party_id) for t in trees]}, "eini_trees",
                              ctx.tag(), [h])
    marks = _marks(trees, [np.array([n.party == GUEST for n in t.nodes]) for t in trees], x, splits, missing)
    lr = float(model["learning_rate"])
    weights = np.concatenate([[lr * n.weight for n in lv] for lv in leaves]) if trees else np.zeros(0)
    mask = 1.0 + secrets.randbelow(2 ** 52) / 2.0 ** 52 if p.EINI_random_mask else 1.0
    scale = mask * 2.0 ** PRECISION
    plain = [int(round(v)) for v in np.where(marks, weights[None, :] * scale, 0.0).ravel().tolist()]
    pub, priv = schemes.scheme(p.encrypt_param.scheme).generate(p.encrypt_param.key_length)
    cipher = encrypt_all(ctx.computing, priv, plain)
    key = schemes.public_message(p.encrypt_param.scheme, pub)
    ctx.federation.remote({"key": key, "cipher": cipher, "shape": list(marks.shape)}, "eini_vec", ctx.tag("h0"),
                          [hosts[0]])
    (sums,) = ctx.federation.get("eini_sum", ctx.tag(), [hosts[-1]])
    sums = list(sums)
    if len(sums) != len(x) * dim or any(not isinstance(c, EncryptedNumber) or c.public_key != pub for c in sums):
        raise ComponentError(f"{ctx.component}: the last host's EINI sums do not match the samples")
    modulus = priv.plain_modulus
    raw = np.array([m - modulus if m > modulus // 2 else m for m in decrypt_all(ctx.computing, priv, sums)],
                   dtype=object)
    total = np.array([float(v) / scale for v in raw], dtype=np.float64).reshape(len(x), dim)
    return np.asarray(model["init_score"], dtype=np.float64)[None, :] + total


def eini_host(ctx: Context, x: np.ndarray, splits: list[tuple], missing: np.ndarray | None) -> None:
    """A host's side: zero the leaves it rules out; the last host sums per sample and class."""
    guest = ctx.role_parties("guest")
    hosts = ctx.role_parties("host")
    k = hosts.index(ctx.local)
    (shape,) = ctx.federation.get("eini_trees", ctx.tag(), guest)
    n_dim = int(shape["dim"])
    parsed = [_from_skeleton(sk) for sk in shape["trees"]]
    trees, mine = [t for t, _ in parsed], [m for _, m in parsed]
    for tree, own in zip(trees, mine):
        used = [tree.nodes[i].split_id for i in np.nonzero(own)[0]]
        if any(not 0 <= s < len(splits) for s in used):
            raise ComponentError(f"{ctx.component}: the guest's trees name splits this host does not have")
    marks = _marks(trees, mine, x, splits, missing)
    (msg,) = ctx.federation.get("eini_vec", ctx.tag(f"h{k}"), [guest[0] if k == 0 else hosts[k - 1]])
    try:
        key = schemes.public_key_from(msg.get("key"))
    except CryptoError as exc:
        raise ComponentError(f"{ctx.component}: the EINI public key is unusable: {exc}") from None
    cipher = list(msg["cipher"])
    if tuple(msg["shape"]) != marks.shape or len(cipher) != marks.size \
            or any(not isinstance(c, EncryptedNumber) or c.public_key != key for c in cipher):
        raise ComponentError(f"{ctx.component}: the EINI vectors do not match this host's samples and trees")
    flat = marks.ravel()
    if k + 1 < len(hosts):  # pass on, the leaves this host rules out replaced by fresh zeros
        out = [c if keep else key.encrypt(0).obfuscate() for c, keep in zip(cipher, flat)]
        ctx.federation.remote({"key": msg["key"], "cipher": out, "shape": list(marks.shape)}, "eini_vec",
                              ctx.tag(f"h{k + 1}"), [hosts[k + 1]])
        return
    dims = np.concatenate([[t.dim] * sum(n.is_leaf for n in t.nodes) for t in trees]).astype(np.int64) \
        if trees else np.zeros(0, np.int64)
    n, width = marks.shape
    sums = []
    for i in range(n):
        row = cipher[i * width:(i + 1) * width]
        for d in range(n_dim):
            kept = [row[j] for j in np.nonzero(marks[i] & (dims == d))[0].tolist()]
            sums.append((encrypted_sum(kept) if kept else key.encrypt(0)).multiply(1).obfuscate())
    ctx.federation.remote(sums, "eini_sum", ctx.tag(), guest)
