"""A host's share of HeteroSecureBoost: it holds features only and never a key to decrypt.

Per level it sums the guest's encrypted (g, h, 1) into cumulative bins for every node
it is told about, shuffles each node's candidates with randomness the guest cannot
predict, packs them and sends them. When the guest names a winning candidate, the host
records the (feature, threshold) under a new split id, which is all the guest gets
back, together with which of the node's samples go left.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from backends.computing.api import Session
from components.base import Context
from components.crypto import schemes
from components.crypto.paillier import AdditivePublicKey, EncryptedNumber
from components.tree.guest import ids_digest, sample_features
from components.tree.histogram import Binning, encrypted_candidates, encrypted_candidates_missing, missing_mask
from components.tree.parallel import RowBlocks, node_histograms, pack_groups, row_blocks
from components.tree.params import HeteroSecureBoostParams
from components.tree.tree import threshold_decider
from flow.core.errors import ComponentError, CryptoError


class HostTrainer:
    """Answers the guest tree by tree, level by level; keeps its split table."""

    def __init__(self, ctx: Context, p: HeteroSecureBoostParams, x: np.ndarray, ids: list[str]):
        self.ctx, self.p, self.x, self.ids = ctx, p, x, ids
        self.guest = ctx.role_parties("guest")
        self.binning = Binning.fit(x, p.bins)  # refitted once the guest has said whether values may be missing
        self.use_missing = self.zero_as_missing = False
        index = ctx.role_parties("host").index(ctx.local)
        seed = None if p.random_seed is None else p.random_seed + 1 + index
        self.rng = np.random.default_rng(seed)
        self.shuffle = np.random.default_rng(secrets.randbits(64))  # unknown to the guest
        #: this host's split table: (feature, threshold, missing goes left)
        self.splits: list[tuple[int, float, bool]] = []

    def fit(self) -> list[tuple[int, float, bool]]:
        ctx = self.ctx
        (setup,) = ctx.federation.get("sbt_setup", ctx.tag(), self.guest)
        if setup.get("ids") != ids_digest(self.ids):
            raise ComponentError(f"{ctx.component}: this host's samples differ from the guest's; "
                                 "run Intersection before HeteroSecureBoost")
        # the guest's params decide (it drives the protocol); the host's data must allow them
        self.use_missing, self.zero_as_missing = bool(setup["use_missing"]), bool(setup["zero_as_missing"])
        check_values(self.x, self.use_missing, ctx.component, "train_data")
        if self.use_missing:
            self.binning = Binning.fit(self.x, self.p.bins, missing_mask(self.x, self.zero_as_missing))
        try:
            key = schemes.public_key_from(setup.get("key"))
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: the guest's public key is unusable: {exc}") from None
        trees = [int(t) for t in setup["trees"]]
        for k, t in enumerate(trees):
            if not self._tree(t, key):
                break
            ctx.tracker.progress(k + 1, len(trees))
        return self.splits

    def _tree(self, index: int, key: AdditivePublicKey) -> bool:
        """Take part in growing one tree; False when the guest stopped boosting instead."""
        ctx, n = self.ctx, len(self.ids)
        base = ctx.tag(f"t{index}")
        (gh,) = ctx.federation.get("sbt_gh", base, self.guest)
        if gh.get("stop") is True:
            return False
        cipher = list(gh["cipher"])
        if len(cipher) != n or any(not isinstance(c, EncryptedNumber) or c.public_key != key for c in cipher):
            raise ComponentError(f"{ctx.component}: the guest's gradients do not match this host's samples")
        slot_bits, slots = int(gh["slot_bits"]), int(gh["slots"])
        if slots < 1 or slot_bits * slots >= key.max_int.bit_length():  # within the plaintext space
            raise ComponentError(f"{ctx.component}: the guest asked for a packing that does not fit its key")
        features = sample_features(self.x.shape[1], self.p.subsample_feature_rate, self.rng)
        depth, table, prev = 0, None, None
        while True:
            tag = f"{base}.d{depth}"
            (msg,) = ctx.federation.get("sbt_nodes", tag, self.guest)
            active = [int(a) for a in msg["active"]]
            if not active:
                return True
            pos = np.asarray(msg["pos"])
            if pos.shape != (n,):
                raise ComponentError(f"{ctx.component}: the guest's node positions do not match this host's samples")
            if not msg.get("offer", True):  # a layer of the guest's features only (layered mode)
                prev, depth = None, depth + 1
                continue
            if table is None:  # built once per tree, only if some node is worth splitting
                table = row_blocks(ctx.computing, cipher, self.binning.bins)
            rows = {nid: np.nonzero(pos == nid)[0] for nid in active}
            cells = self._histograms(ctx.computing, table, pos, rows, features.tolist(), prev)
            self._level(tag, active, rows, cells, features.tolist(), slot_bits, slots)
            prev, depth = (pos, cells), depth + 1

    @staticmethod
    def _histograms(session: Session, table: RowBlocks, pos: np.ndarray, rows: dict[int, np.ndarray],
                    features: list[int],
                    prev: tuple[np.ndarray, dict] | None) -> dict[tuple[int, int, int], EncryptedNumber]:
        """Per-bin sums of every active node. Where both children of a node are active, only the
        smaller is summed over its rows; the other is its parent's sums minus the smaller's."""
        derived: dict[int, tuple[int, int]] = {}  # larger child -> (parent, smaller sibling)
        if prev is not None:
            by_parent: dict[int, list[int]] = {}
            for nid, r in rows.items():
                if len(r):
                    by_parent.setdefault(int(prev[0][r[0]]), []).append(nid)
            for parent, kids in by_parent.items():
                if len(kids) == 2:
                    small, large = sorted(kids, key=lambda k: len(rows[k]))
                    derived[large] = (parent, small)
        cells = node_histograms(session, table, pos, [nid for nid in rows if nid not in derived], features)
        of_parent: dict[int, list] = {}
        for (node, f, b), total in (prev[1].items() if derived else ()):
            of_parent.setdefault(node, []).append((f, b, total))
        for large, (parent, small) in derived.items():
            for f, b, total in of_parent.get(parent, ()):
                part = cells.get((small, f, b))
                cells[(large, f, b)] = total if part is None else total - part
        return cells

    def _level(self, tag: str, active: list[int], rows: dict[int, np.ndarray],
               cells: dict[tuple[int, int, int], EncryptedNumber], features: list[int],
               slot_bits: int, slots: int) -> None:
        ctx = self.ctx
        counts, groups, where = [], [], {}
        for nid in active:
            spots: list[tuple[int, int, bool]]
            if self.use_missing:
                spots, sums = encrypted_candidates_missing(cells, nid, self.binning.bins, self.binning.n_bins,
                                                           rows[nid], features)
            else:
                plain_spots, sums = encrypted_candidates(cells, nid, self.binning.bins, self.binning.n_bins,
                                                         rows[nid], features)
                spots = [(f, b, False) for f, b in plain_spots]
            perm = self.shuffle.permutation(len(spots))
            where[nid] = [spots[i] for i in perm]
            counts.append(len(spots))
            shuffled = [sums[i] for i in perm]
            groups += [shuffled[i:i + slots] for i in range(0, len(shuffled), slots)]  # per node
        packed = pack_groups(ctx.computing, groups, slot_bits)
        ctx.federation.remote({"counts": counts, "cipher": packed}, "sbt_hist", tag, self.guest)
        (won,) = ctx.federation.get("sbt_won", tag, self.guest)
        answer: list[Any] = []
        for nid, cand in won:
            nid, cand = int(nid), int(cand)
            if nid not in where or not 0 <= cand < len(where[nid]):
                raise ComponentError(f"{ctx.component}: the guest chose a split candidate this host did not offer")
            f, b, m_left = where[nid][cand]
            self.splits.append((f, self.binning.threshold(f, b), m_left))
            answer.append([nid, len(self.splits) - 1, self.binning.goes_left(rows[nid], f, b, m_left)])
        ctx.federation.remote(answer, "sbt_split", tag, self.guest)


def check_values(x: np.ndarray, use_missing: bool, component: str, port: str) -> None:
    """Infinite values are refused always, missing ones (NaN) unless use_missing routes them."""
    if np.isinf(x).any() or (not use_missing and np.isnan(x).any()):
        raise ComponentError(f"{component}: {port} has {'infinite' if np.isinf(x).any() else 'missing'} "
                             "feature values; impute them first (FeatureImputation, or DataTransform's "
                             "missing_fill) or set use_missing: true")


def host_walk(ctx: Context, x: np.ndarray, splits: list[tuple], prefix: str,
              missing: np.ndarray | None = None) -> int:
    """Answer the guest's left/right questions about this host's nodes until it says done."""
    guest = ctx.role_parties("guest")
    decide = threshold_decider(x, splits, missing)
    r = 0
    while True:
        tag = ctx.tag(f"{prefix}.r{r}")
        (q,) = ctx.federation.get("sbt_walk", tag, guest)
        if q["done"]:
            return r
        rows, split_ids = np.asarray(q["rows"], dtype=np.int64), np.asarray(q["splits"], dtype=np.int64)
        if rows.shape != split_ids.shape or (len(rows) and (rows.min() < 0 or rows.max() >= len(x)
                                                            or split_ids.min() < 0
                                                            or split_ids.max() >= len(splits))):
            raise ComponentError(f"{ctx.component}: the guest asked about rows or splits this host does not have")
        ctx.federation.remote(decide(rows, split_ids), "sbt_walk_answer", tag, guest)
        r += 1
