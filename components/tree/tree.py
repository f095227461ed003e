"""Tree structure, split scoring and the prediction walk.

A node that splits names its owner (``"guest"`` or a host's party id) and a split id
into the owner's own split table; only the owner knows the feature and threshold
behind that id. Prediction therefore walks the trees together: the guest moves samples
through its own nodes and asks each host "left or right?" for the nodes that host owns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

GUEST = "guest"


@dataclass(frozen=True)
class SplitRule:
    """XGBoost-style criterion: ``gain = S(G_L,H_L) + S(G_R,H_R) - S(G,H)``, ``S = T(G)² / (H + l2)``
    with ``T`` the L1 soft threshold; leaf weight ``-T(G) / (H + l2)``."""

    l2: float = 0.1
    l1: float = 0.0
    min_child_weight: float = 0.0
    min_leaf_node: int = 1
    min_sample_split: int = 2
    min_impurity_split: float = 1e-3

    def _t(self, g):
        return np.sign(g) * np.maximum(np.abs(g) - self.l1, 0.0) if self.l1 else g

    def score(self, g, h):
        return self._t(g) ** 2 / (h + self.l2)

    def leaf_weight(self, g: float, h: float) -> float:
        return float(-self._t(g) / (h + self.l2))

    def can_split(self, total: np.ndarray) -> bool:
        return total[2] >= max(self.min_sample_split, 2 * self.min_leaf_node)

    def best(self, left: np.ndarray, total: np.ndarray) -> tuple[int, float]:
        """The best of candidate left sums ``left`` (k, 3) of a node with sums ``total`` (3,):
        (index, gain), or (-1, -inf) when none is allowed or good enough."""
        if not len(left):
            return -1, -np.inf
        right = total[None, :] - left
        ok = ((left[:, 2] >= self.min_leaf_node) & (right[:, 2] >= self.min_leaf_node)
              & (left[:, 1] >= self.min_child_weight) & (right[:, 1] >= self.min_child_weight))
        if not ok.any():
            return -1, -np.inf
        gain = self.score(left[:, 0], left[:, 1]) + self.score(right[:, 0], right[:, 1]) \
            - self.score(total[0], total[1])
        gain = np.where(ok, gain, -np.inf)
        i = int(np.argmax(gain))
        return (i, float(gain[i])) if gain[i] > self.min_impurity_split else (-1, -np.inf)


@dataclass
class Node:
    id: int
    depth: int = 0
    weight: float = 0.0
    #: None for a leaf; else "guest" or the owning host's party id
    party: str | None = None
    split_id: int = -1
    left: int = -1
    right: int = -1
    gain: float = 0.0
    count: int = 0

    @property
    def is_leaf(self) -> bool:
        return self.party is None


@dataclass
class Tree:
    """One regression tree of the ensemble; ``dim`` is the class it scores (0 unless multiclass)."""

    dim: int = 0
    nodes: list[Node] = field(default_factory=list)

    def add(self, depth: int, count: int) -> Node:
        node = Node(len(self.nodes), depth, count=count)
        self.nodes.append(node)
        return node

    def to_json(self) -> dict:
        return {"dim": self.dim, "nodes": [asdict(n) for n in self.nodes]}

    @classmethod
    def from_json(cls, data: dict) -> Tree:
        return cls(int(data["dim"]), [Node(**n) for n in data["nodes"]])

    def weights(self) -> np.ndarray:
        return np.array([n.weight for n in self.nodes])


def guest_importance(trees: list[Tree], split_features: list[str],
                     importance_type: str = "split") -> list[dict[str, Any]]:
    """Split count and summed gain per guest feature and, as one entry each, per host (the
    guest never learns which host feature a host split used). ``split_features[i]`` is
    the feature of the guest's split id ``i``; ``importance`` is the split count or the gain
    as FATE's ``feature_importance_type`` says. Highest gain first."""
    splits: Counter = Counter()
    gains: Counter = Counter()
    for tree in trees:
        for node in tree.nodes:
            if node.is_leaf:
                continue
            key = (GUEST, split_features[node.split_id]) if node.party == GUEST else (f"host:{node.party}", None)
            splits[key] += 1
            gains[key] += node.gain
    by = gains if importance_type == "gain" else splits
    return [{"party": party, "feature": feature, "split": splits[(party, feature)], "gain": gains[(party, feature)],
             "importance": float(by[(party, feature)])}
            for party, feature in sorted(splits, key=lambda k: (-gains[k], k[0], k[1] or ""))]


def host_importance(party_id: str, split_features: list[str]) -> list[dict[str, Any]]:
    """Split count per feature of a host's own split table (one entry per node it won).
    Gains stay with the guest, which computed them: a host's ``importance`` is its split count."""
    counts = Counter(split_features)
    return [{"party": f"host:{party_id}", "feature": f, "split": n, "importance": float(n)}
            for f, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


#: (rows, split ids) -> bool "goes left" per row
Decide = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: {owner: (rows, split ids)} -> {owner: goes-left bools}, one round trip to every host
AskHosts = Callable[[dict[str, tuple[np.ndarray, np.ndarray]]], dict[str, np.ndarray]]


def walk(trees: list[Tree], n: int, decide_guest: Decide, ask_hosts: AskHosts,
         hosts: list[str]) -> np.ndarray:
    """Leaf node id per (tree, sample): the guest's own nodes locally, hosts' in rounds.

    Each round asks every host once for all samples, in all trees, that wait at one of
    its nodes, so a walk costs at most ``depth`` round trips however many trees there are.
    """
    arrays = [_arrays(t, hosts) for t in trees]
    pos = np.zeros((len(trees), n), dtype=np.int64)
    rows_all = np.arange(n)
    while True:
        for t, (owner, split, left, right) in enumerate(arrays):
            while True:  # guest nodes, possibly several in a row
                at = owner[pos[t]] == 0
                if not at.any():
                    break
                rows = rows_all[at]
                nodes = pos[t][at]
                go = np.asarray(decide_guest(rows, split[nodes]), dtype=bool)
                pos[t][at] = np.where(go, left[nodes], right[nodes])
        queries: dict[str, list] = {h: [] for h in hosts}
        for t, (owner, split, _, _) in enumerate(arrays):
            for k, h in enumerate(hosts, start=1):
                at = owner[pos[t]] == k
                if at.any():
                    queries[h].append((t, rows_all[at], split[pos[t][at]]))
        if not any(queries.values()):
            return pos
        asked = {h: (np.concatenate([q[1] for q in qs]) if qs else np.zeros(0, np.int64),
                     np.concatenate([q[2] for q in qs]) if qs else np.zeros(0, np.int64))
                 for h, qs in queries.items()}
        answers = ask_hosts(asked)
        for h, qs in queries.items():
            go_all, start = np.asarray(answers[h], dtype=bool), 0
            for t, rows, _ in qs:
                _, _, left, right = arrays[t]
                go, start = go_all[start:start + len(rows)], start + len(rows)
                nodes = pos[t][rows]
                pos[t][rows] = np.where(go, left[nodes], right[nodes])


def _arrays(tree: Tree, hosts: list[str]) -> tuple[np.ndarray, ...]:
    """Per node: owner code (-1 leaf, 0 guest, k host k-1), split id, left, right."""
    code = {GUEST: 0, **{h: k for k, h in enumerate(hosts, start=1)}}
    owner = np.array([-1 if nd.party is None else code[nd.party] for nd in tree.nodes], dtype=np.int64)
    split = np.array([nd.split_id for nd in tree.nodes], dtype=np.int64)
    left = np.array([nd.left for nd in tree.nodes], dtype=np.int64)
    right = np.array([nd.right for nd in tree.nodes], dtype=np.int64)
    return owner, split, left, right


def threshold_decider(x: np.ndarray, splits: list[tuple], missing: np.ndarray | None = None) -> Decide:
    """A party's own rule: row goes left when ``x[row, feature] <= threshold`` of the split; with
    a ``missing`` mask (use_missing) a missing value goes where the split's third item says
    (True: left; absent: right)."""
    feat = np.array([s[0] for s in splits], dtype=np.int64)
    thr = np.array([s[1] for s in splits], dtype=np.float64)
    m_left = np.array([bool(s[2]) if len(s) > 2 else False for s in splits], dtype=bool)

    def decide(rows: np.ndarray, split_ids: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros(0, dtype=bool)
        f = feat[split_ids]
        go = x[rows, f] <= thr[split_ids]
        if missing is not None:
            miss = missing[rows, f]
            go = np.where(miss, m_left[split_ids], go & ~miss)
        return go
    return decide


def leaf_candidates(tree: Tree, n: int, mine: np.ndarray, decide: Decide) -> np.ndarray:
    """(n, nodes) bool: the nodes each sample may reach as far as one party can tell: at its own
    nodes (``mine``) the sample goes where ``decide`` says, at any other node down both sides.
    The samples' true leaf is the one every party's candidates share (EINI)."""
    reach = np.zeros((n, len(tree.nodes)), dtype=bool)
    reach[:, 0] = True
    rows_all = np.arange(n)
    for node in tree.nodes:  # children always come after their parent
        if node.is_leaf:
            continue
        at = reach[:, node.id]
        if mine[node.id]:
            rows = rows_all[at]
            go = np.asarray(decide(rows, np.full(len(rows), node.split_id, dtype=np.int64)), dtype=bool)
            reach[rows[go], node.left] = True
            reach[rows[~go], node.right] = True
        else:
            reach[:, node.left] |= at
            reach[:, node.right] |= at
    return reach
