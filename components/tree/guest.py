"""The guest's share of HeteroSecureBoost: it holds the labels and the private key.

Per tree: encrypt the packed (g, h) of every sample once and send them to the hosts;
then level by level send the hosts which samples sit in which splittable node, receive
their encrypted cumulative histograms (candidates shuffled by each host), decrypt,
compare with its own plaintext candidates, and tell the winning host which of its
candidates won. The host alone maps that candidate to a feature and threshold; it
answers with a split id and which of the node's samples go left.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.base import Context
from components.crypto import schemes
from components.tree.histogram import Binning, candidates, candidates_missing, missing_mask, plain_histogram
from components.tree.objective import Objective
from components.tree.packing import GHPacker, unpack_candidates
from components.tree.parallel import decrypt_all, encrypt_all
from components.tree.params import HeteroSecureBoostParams
from components.tree.plan import TreePlan
from components.tree.tree import GUEST, SplitRule, Tree, threshold_decider, walk
from federation.api import Party
from flow.core.errors import ComponentError


def ids_digest(ids: list[str]) -> str:
    """What guest and hosts compare to be sure they hold the same samples in the same order."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def sample_features(n_features: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """This tree's features of one party (all of them at rate 1)."""
    if rate >= 1.0 or n_features == 0:
        return np.arange(n_features)
    k = max(1, int(round(rate * n_features)))
    return np.sort(rng.choice(n_features, k, replace=False))


@dataclass
class _Level:
    """One level of one tree: its tag, the nodes to split, and who may offer splits."""

    tag: str
    active: list[int]
    frontier: dict[int, np.ndarray]
    totals: dict[int, np.ndarray]
    hosts: list[Party]
    guest_ok: bool


class GuestTrainer:
    """Grows every tree of the ensemble from the guest's side."""

    def __init__(self, ctx: Context, p: HeteroSecureBoostParams, x: np.ndarray, y: np.ndarray,
                 objective: Objective, ids: list[str], plan: TreePlan):
        self.ctx, self.p, self.x, self.y, self.objective, self.plan = ctx, p, x, y, objective, plan
        self.hosts = ctx.role_parties("host")
        self.host_ids = [h.party_id for h in self.hosts]
        self.rule: SplitRule = p.split_rule()
        self.use_missing, self.zero_as_missing = p.missing
        self.binning = Binning.fit(x, p.bins, missing_mask(x, self.zero_as_missing) if self.use_missing else None)
        #: the guest's split table: (feature, threshold, missing goes left)
        self.splits: list[tuple[int, float, bool]] = []
        self.rng = np.random.default_rng(p.random_seed)
        self.pub, self.priv = schemes.scheme(p.encrypt_param.scheme).generate(p.encrypt_param.key_length)
        self.ids = ids

    def fit(self) -> tuple[list[Tree], np.ndarray, np.ndarray, list[float]]:
        """Trees, initial score, training scores (n, dim) and the loss after each round."""
        p, obj, n = self.p, self.objective, len(self.y)
        dim = obj.tree_dim
        init = obj.init_score(self.y)
        total = p.num_trees * dim
        key = schemes.public_message(p.encrypt_param.scheme, self.pub)
        for host in self.hosts:
            setup = {"key": key, "trees": self.plan.trees_of(host.party_id, total), "ids": ids_digest(self.ids),
                     "use_missing": self.use_missing, "zero_as_missing": self.zero_as_missing}
            self.ctx.federation.remote(setup, "sbt_setup", self.ctx.tag(), [host])
        scores = np.tile(init, (n, 1))
        trees: list[Tree] = []
        losses: list[float] = []
        for r in range(p.num_trees):
            g, h = obj.gradients(self.y, scores)
            for k in range(dim):
                tree, leaf_of = self._grow(len(trees), k, g[:, k], h[:, k])
                scores[:, k] += p.learning_rate * tree.weights()[leaf_of]
                trees.append(tree)
            losses.append(obj.loss(self.y, scores))
            self.ctx.tracker.progress(r + 1, p.num_trees, f"tree round {r + 1}")
            self.ctx.logger.info("round %d: loss %.6f", r, losses[-1])
            if p.n_iter_no_change and len(losses) > 1 and abs(losses[-2] - losses[-1]) < p.tol:
                for host in self.hosts:  # each host waits for the gradients of its next tree: tell it
                    later = [t for t in self.plan.trees_of(host.party_id, total) if t >= len(trees)]
                    if later:
                        self.ctx.federation.remote({"stop": True}, "sbt_gh", self.ctx.tag(f"t{later[0]}"), [host])
                self.ctx.logger.info("loss changed less than tol %g: stopped after %d rounds", p.tol, r + 1)
                break
        return trees, init, scores, losses

    # ------------------------------------------------------------------ one tree
    def _grow(self, index: int, dim: int, g: np.ndarray, h: np.ndarray) -> tuple[Tree, np.ndarray]:
        ctx, p, n = self.ctx, self.p, len(g)
        base = ctx.tag(f"t{index}")
        pids = set(self.plan.hosts_of(index))
        hosts = [hp for hp in self.hosts if hp.party_id in pids]
        packer = GHPacker.fit(g, h, n)
        slots = 1
        if hosts:  # a tree of the guest's alone (complete_secure, mix) sends nothing
            slots = packer.slots(self.pub) if p.cipher_compress else 1
            cipher = encrypt_all(ctx.computing, self.priv, packer.pack(g, h))
            ctx.federation.remote({"cipher": cipher, "slot_bits": packer.slot_bits, "slots": slots},
                                  "sbt_gh", base, hosts)
        features = sample_features(self.x.shape[1], p.subsample_feature_rate, self.rng)
        tree = Tree(dim)
        tree.add(0, n)
        pos = np.zeros(n, dtype=np.int64)
        frontier = {0: np.arange(n)}
        for depth in range(p.depth + 1):
            totals = {nid: np.array([g[r].sum(), h[r].sum(), len(r)]) for nid, r in frontier.items()}
            for nid, t in totals.items():
                tree.nodes[nid].weight = self.rule.leaf_weight(t[0], t[1])
            guest_ok, hosts_ok = self.plan.layer(index, depth)
            active = [nid for nid in frontier if depth < p.depth and self.rule.can_split(totals[nid])]
            tag = f"{base}.d{depth}"
            node_pos = np.where(np.isin(pos, active), pos, -1)
            if hosts:
                ctx.federation.remote({"active": active, "pos": node_pos, "offer": hosts_ok}, "sbt_nodes", tag, hosts)
            if not active:
                break
            level = _Level(tag, active, frontier, totals, hosts if hosts_ok else [], guest_ok)
            frontier = self._split_level(tree, level, g, h, features, packer, slots, pos)
        return tree, pos

    def _split_level(self, tree: Tree, lv: _Level, g: np.ndarray, h: np.ndarray, features: np.ndarray,
                     packer: GHPacker, slots: int, pos: np.ndarray) -> dict[int, np.ndarray]:
        ctx, active, frontier, totals, hosts = self.ctx, lv.active, lv.frontier, lv.totals, lv.hosts
        host_ids = [hp.party_id for hp in hosts]
        own = {nid: (self._guest_candidates(frontier[nid], g, h, features) if lv.guest_ok else ([], np.zeros((0, 3))))
               for nid in active}  # while hosts work
        host_cands = [self._host_candidates(msg, active, packer, slots)
                      for msg in (ctx.federation.get("sbt_hist", lv.tag, hosts) if hosts else [])]
        won: list[list[list[int]]] = [[] for _ in hosts]
        guest_go: dict[int, tuple[int, int, bool]] = {}
        gains: dict[int, float] = {}
        for nid in active:
            best_owner, best_gain, best_what = None, -np.inf, None
            i, gain = self.rule.best(own[nid][1], totals[nid])
            if i >= 0:
                best_owner, best_gain, best_what = GUEST, gain, own[nid][0][i]
            for k, cands in enumerate(host_cands):
                j, gain = self.rule.best(cands[nid], totals[nid])
                if j >= 0 and gain > best_gain:
                    best_owner, best_gain, best_what = k, gain, j
            if best_owner == GUEST:
                guest_go[nid] = best_what
            elif best_owner is not None:
                won[best_owner].append([nid, int(best_what)])
            gains[nid] = best_gain
        for k, host in enumerate(hosts):
            ctx.federation.remote(won[k], "sbt_won", lv.tag, [host])
        masks: dict[int, tuple[str, int, np.ndarray]] = {}
        for k, answer in enumerate(ctx.federation.get("sbt_split", lv.tag, hosts) if hosts else []):
            expected = {nid for nid, _ in won[k]}
            for nid, split_id, mask in answer:
                if nid not in expected or len(mask) != len(frontier[nid]):
                    raise ComponentError(f"{ctx.component}: host {host_ids[k]} answered a split it did not win")
                masks[int(nid)] = (host_ids[k], int(split_id), np.asarray(mask, dtype=bool))
        for nid, (f, b, m_left) in guest_go.items():
            self.splits.append((int(f), self.binning.threshold(int(f), int(b)), bool(m_left)))
            masks[nid] = (GUEST, len(self.splits) - 1, self.binning.goes_left(frontier[nid], f, b, m_left))
        nxt: dict[int, np.ndarray] = {}
        for nid, (owner, split_id, go) in sorted(masks.items()):
            rows = frontier[nid]
            node = tree.nodes[nid]
            left, right = tree.add(node.depth + 1, int(go.sum())), tree.add(node.depth + 1, int((~go).sum()))
            node.party, node.split_id, node.left, node.right, node.gain = owner, split_id, left.id, right.id, gains[nid]
            nxt[left.id], nxt[right.id] = rows[go], rows[~go]
            pos[rows[go]], pos[rows[~go]] = left.id, right.id
        return nxt

    def _guest_candidates(self, rows: np.ndarray, g: np.ndarray, h: np.ndarray,
                          features: np.ndarray) -> tuple[list[tuple[int, int, bool]], np.ndarray]:
        """(feature, bin, missing_left) of each of the guest's own candidates and their left sums."""
        widths = self.binning.widths
        hist = plain_histogram(self.binning.bins[:, features], [widths[f] for f in features], rows, g, h)
        where: list[tuple[int, int, bool]] = []
        sums = []
        for f, hf in zip(features.tolist(), hist):
            if self.use_missing:
                spots, cum = candidates_missing(hf)
                where += [(f, b, m) for b, m in spots]
            else:
                keep, cum = candidates(hf)
                where += [(f, int(b), False) for b in keep]
            sums.append(cum)
        return where, (np.concatenate(sums) if sums else np.zeros((0, 3)))

    def _host_candidates(self, msg: Any, active: list[int], packer: GHPacker,
                         slots: int) -> dict[int, np.ndarray]:
        """Decrypt one host's packed candidates; per node, their (Σg, Σh, count) rows."""
        counts, cipher = [int(c) for c in msg["counts"]], list(msg["cipher"])
        per_node = [-(-c // slots) for c in counts]
        if len(counts) != len(active) or min(counts, default=0) < 0 or sum(per_node) != len(cipher):
            raise ComponentError(f"{self.ctx.component}: a host sent histograms for other nodes than asked")
        plain = decrypt_all(self.ctx.computing, self.priv, cipher)
        out, start = {}, 0
        for nid, c, k in zip(active, counts, per_node):
            out[nid] = unpack_candidates(packer, plain[start:start + k], c, slots)
            start += k
        return out


def guest_walk(ctx: Context, trees: list[Tree], x: np.ndarray, splits: list[tuple], prefix: str,
               missing: np.ndarray | None = None) -> np.ndarray:
    """Leaf per (tree, sample), asking each host about its nodes; ends the hosts' loop."""
    hosts = ctx.role_parties("host")
    by_id = {h.party_id: h for h in hosts}
    rounds = [0]

    def ask(queries: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        tag = ctx.tag(f"{prefix}.r{rounds[0]}")
        rounds[0] += 1
        for pid, (rows, split_ids) in queries.items():
            ctx.federation.remote({"rows": rows, "splits": split_ids, "done": False}, "sbt_walk", tag, [by_id[pid]])
        answers = ctx.federation.get("sbt_walk_answer", tag, hosts)
        return {h.party_id: np.asarray(a, dtype=bool) for h, a in zip(hosts, answers)}

    leaves = walk(trees, len(x), threshold_decider(x, splits, missing), ask, [h.party_id for h in hosts])
    done = {"rows": np.zeros(0, np.int64), "splits": np.zeros(0, np.int64), "done": True}
    ctx.federation.remote(done, "sbt_walk", ctx.tag(f"{prefix}.r{rounds[0]}"), hosts)
    return leaves
