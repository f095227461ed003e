"""HomoSecureBoost: gradient boosting over parties that hold the same columns of different rows.

Guest and hosts each hold labelled rows; the arbiter holds none. As in FATE 1.x:

  party    header, label set, X25519 public key                                  -> arbiter
  arbiter  checks the headers agree, the classes (union), task, relayed keys     -> parties
  all      the pooled quantile split points (HomoFeatureBinning's masked search)
  party    masked class counts (or Σy, n)                        -> arbiter: the pooled initial score
  per tree level:
  party    masked per-node (Σg, Σh, count) and per-bin histograms of its own rows -> arbiter
  arbiter  sums them (the masks cancel), leaf weights of the level's nodes and the best
           (feature, bin) split of each splittable node                           -> parties
  per round: masked (Σloss, n) -> arbiter: pooled loss and FATE's n_iter_no_change stop

Every party thus grows the same trees as one histogram booster on the pooled rows with
the pooled bins; the arbiter sees one party's histogram only under the pairwise masks of
:mod:`components.crypto.secure_agg`, and never a threshold (it picks bins by index).
Each party's model holds the whole ensemble and ``feature_importance`` (split counts, or
gains with ``tree_param.feature_importance_type: gain``) under its own party name, as
HeteroFeatureSelection's ``homo_sbt_filter`` reads it. Prediction is local to each party.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Outputs, TrainingParams
from components.crypto.secure_agg import SecureAggregator, add_words, decode
from components.feature.homo_binning import HomoFeatureBinning, HomoFeatureBinningParams
from components.linear.params import PredictParam
from components.masking import contributor
from components.tree.guest import sample_features
from components.tree.hetero_secureboost import HeteroSecureBoost, load
from components.tree.histogram import candidates, plain_histogram
from components.tree.objective import Objective, make_objective
from components.tree.params import ObjectiveParam, TreeParam
from components.tree.tree import SplitRule, Tree
from federation.api import Party
from flow.core.errors import ComponentError

#: a split node's owner in the Tree structure: every party holds every split
HOMO = "homo"


class HomoSecureBoostParams(TrainingParams):
    """FATE 1.x's HomoSecureBoostParam."""

    inert = TrainingParams.inert | {"binning_error", "backend"}

    task_type: Literal["classification", "regression"] = "classification"
    objective_param: ObjectiveParam = ObjectiveParam()
    learning_rate: float = Field(0.3, gt=0)
    num_trees: int = Field(5, ge=1, le=10000)
    subsample_feature_rate: float = Field(1.0, gt=0, le=1)
    #: FATE's early stop: end boosting once a round changes the pooled training loss by less than tol
    n_iter_no_change: bool = True
    tol: float = Field(1e-4, ge=0)
    bin_num: int = Field(32, ge=2, le=65536)
    tree_param: TreeParam = TreeParam()
    predict_param: PredictParam = PredictParam()
    random_seed: int | None = 100
    use_missing: bool = False
    zero_as_missing: bool = False
    binning_error: float = 1e-4
    backend: str | None = None
    multi_mode: str = "single_output"

    @model_validator(mode="after")
    def _supported(self) -> HomoSecureBoostParams:
        if self.use_missing or self.tree_param.use_missing:
            raise PydanticCustomError("not_supported", "not supported: HomoSecureBoost use_missing (missing values "
                                      "routed by learned directions)")
        if self.multi_mode != "single_output":
            raise PydanticCustomError("not_supported", "not supported: HomoSecureBoost multi_mode "
                                      "{m}", {"m": self.multi_mode})
        obj = self.objective_param.objective
        if obj == "lse" and self.task_type != "regression":
            raise ValueError("objective_param.objective 'lse' needs task_type 'regression'")
        if obj == "cross_entropy" and self.task_type == "regression":
            raise ValueError("objective_param.objective 'cross_entropy' needs task_type 'classification'")
        return self

    def split_rule(self) -> SplitRule:
        tp = self.tree_param
        return SplitRule(l2=tp.criterion_param[0], l1=tp.criterion_param[1] if len(tp.criterion_param) > 1 else 0.0,
                         min_child_weight=tp.min_child_weight, min_leaf_node=tp.min_leaf_node,
                         min_sample_split=tp.min_sample_split, min_impurity_split=tp.min_impurity_split)


# ---------------------------------------------------------------- pure pieces

def bin_index(x: np.ndarray, split_points: list[np.ndarray]) -> np.ndarray:
    """Bin of each value: the first split point at or above it (right-closed bins)."""
    cols = [np.minimum(np.searchsorted(sp, x[:, j], side="left"), max(len(sp) - 1, 0))
            for j, sp in enumerate(split_points)]
    return np.stack(cols, axis=1).astype(np.int32) if cols else np.zeros((len(x), 0), np.int32)


def node_block(bins: np.ndarray, n_bins: list[int], rows: np.ndarray, g: np.ndarray, h: np.ndarray) -> np.ndarray:
    """One node's vector: its (Σg, Σh, count), then per feature and bin (Σg, Σh, count)."""
    total = np.array([g[rows].sum(), h[rows].sum(), float(len(rows))])
    hist = plain_histogram(bins, n_bins, rows, g, h)
    return np.concatenate([total] + [hf.ravel() for hf in hist])


def best_split(block: np.ndarray, n_bins: list[int], features: np.ndarray,
               rule: SplitRule) -> tuple[int, int, float] | None:
    """The best (feature, bin, gain) of one node's summed block among ``features``, or None."""
    total, hist = block[:3], block[3:].reshape(-1, 3)
    offsets = np.concatenate([[0], np.cumsum(n_bins)]).astype(int)
    where: list[tuple[int, int]] = []
    sums = []
    for f in features.tolist():
        keep, cum = candidates(hist[offsets[f]:offsets[f + 1]])
        where += [(f, int(b)) for b in keep]
        sums.append(cum)
    i, gain = rule.best(np.concatenate(sums) if sums else np.zeros((0, 3)), total)
    return None if i < 0 else (where[i][0], where[i][1], gain)


def walk_local(trees: list[Tree], splits: list[tuple[int, float]], x: np.ndarray) -> np.ndarray:
    """Leaf node per (tree, row): ``x[feature] <= threshold`` goes left."""
    feat = np.array([f for f, _ in splits] or [0], dtype=np.int64)
    thr = np.array([t for _, t in splits] or [0.0], dtype=np.float64)
    out = np.zeros((len(trees), len(x)), dtype=np.int64)
    rows_all = np.arange(len(x))
    for t, tree in enumerate(trees):
        leaf = np.array([nd.is_leaf for nd in tree.nodes])
        sid = np.array([max(nd.split_id, 0) for nd in tree.nodes])
        left = np.array([nd.left for nd in tree.nodes])
        right = np.array([nd.right for nd in tree.nodes])
        pos = out[t]
        while True:
            at = ~leaf[pos]
            if not at.any():
                break
            rows, nodes = rows_all[at], pos[at]
            go = x[rows, feat[sid[nodes]]] <= thr[sid[nodes]]
            pos[at] = np.where(go, left[nodes], right[nodes])
    return out


def importance(trees: list[Tree], split_features: list[str], party: str, kind: str) -> list[dict[str, Any]]:
    """Split count and summed gain per feature, under this party's name, highest importance first."""
    splits: Counter = Counter()
    gains: Counter = Counter()
    for tree in trees:
        for node in tree.nodes:
            if not node.is_leaf:
                splits[split_features[node.split_id]] += 1
                gains[split_features[node.split_id]] += node.gain
    by = gains if kind == "gain" else splits
    return [{"party": party, "feature": f, "split": splits[f], "gain": gains[f], "importance": float(by[f])}
            for f in sorted(splits, key=lambda k: (-by[k], k))]


def resolve_task(task_type: str, classes: list[float], component: str) -> tuple[str, Objective]:
    task = task_type
    if task == "classification":
        task = "binary" if len(classes) <= 2 else "multiclass"
    return task, make_objective(task, max(len(classes), 1), component)


# ---------------------------------------------------------------- the component

class HomoSecureBoost(Component):
    module = "HomoSecureBoost"
    params_model = HomoSecureBoostParams
    roles = ("guest", "host", "arbiter")
    input_data = ("train_data", "data", "test_data")
    accepts_model = True
    output_model = True

    def _party(self, ctx: Context, p: HomoSecureBoostParams, inputs: Inputs) -> Outputs:
        if "train_data" not in inputs.data and inputs.model:
            return self._predict(ctx, inputs.require(ctx.component, "test_data", "data"), inputs.model[0])
        data = inputs.require(ctx.component, "train_data", "data")
        keys, _, x, y = load(data, True, ctx.component)
        if y is None:
            raise ComponentError(f"{ctx.component}: train_data has no labels")
        _check_finite(ctx, x, "train_data")
        header = list(data.meta.feature_columns)
        client = _Client(ctx)
        labels = sorted(set(y.tolist())) if p.task_type == "classification" else []
        setup = client.hello(header, labels)
        task, classes = str(setup["task"]), [float(c) for c in setup["classes"]]
        _, objective = resolve_task(task, classes, ctx.component)
        y_fit = np.searchsorted(classes, y).astype(np.float64) if objective.classifier else y
        split_points = HomoFeatureBinning()._fit(ctx, HomoFeatureBinningParams(bin_num=p.bin_num), header, x)
        bins, n_bins = bin_index(x, split_points), [len(sp) for sp in split_points]
        first = (np.bincount(y_fit.astype(int), minlength=len(classes)).astype(float) if objective.classifier
                 else np.array([y.sum(), float(len(y))]))
        init = np.asarray(client.ask("init", first, n_bins=n_bins)["init"], dtype=np.float64)
        scores = np.tile(init, (len(y), 1))
        trees: list[Tree] = []
        table: list[tuple[int, float]] = []
        losses: list[float] = []
        for r in range(p.num_trees):
            g, h = objective.gradients(y_fit, scores)
            for k in range(objective.tree_dim):
                tree, pos = self._grow(client, p, len(trees), k, g[:, k], h[:, k], bins, n_bins, split_points, table)
                scores[:, k] += p.learning_rate * tree.weights()[pos]
                trees.append(tree)
            reply = client.ask("loss", np.array([objective.loss(y_fit, scores) * len(y), float(len(y))]))
            losses.append(float(reply["loss"]))
            ctx.tracker.progress(r + 1, p.num_trees, f"tree round {r + 1}")
            if reply["stop"]:
                ctx.logger.info("pooled loss changed less than tol %g: stopped after %d rounds", p.tol, r + 1)
                break
        client.end()
        kind = p.tree_param.feature_importance_type
        name = "guest" if ctx.role == "guest" else f"host:{ctx.local.party_id}"
        model = {"header": header, "task": task, "classes": classes if objective.classifier else [],
                 "learning_rate": p.learning_rate, "init_score": init.tolist(), "tree_dim": objective.tree_dim,
                 "trees": [t.to_json() for t in trees], "bin_num": p.bin_num,
                 "splits": [{"feature": header[f], "threshold": thr} for f, thr in table],
                 "loss_history": losses, "threshold": p.predict_param.threshold, "feature_importance_type": kind,
                 "feature_importance": importance(trees, [header[f] for f, _ in table], name, kind)}
        if not np.allclose(self._scores(model, x), scores, atol=1e-9):
            raise ComponentError(f"{ctx.component}: the prediction walk disagrees with training")
        ctx.tracker.log_metric("train", "loss", losses)
        ctx.tracker.log_metric("train", "trees", len(trees))
        out = HeteroSecureBoost()._output(ctx, data, model, keys, y, scores, "train")
        return Outputs(data=[out], model=model)

    guest = host = _party

    @staticmethod
    def _grow(client: _Client, p: HomoSecureBoostParams, index: int, dim: int, g: np.ndarray, h: np.ndarray,
              bins: np.ndarray, n_bins: list[int], split_points: list[np.ndarray],
              table: list[tuple[int, float]]) -> tuple[Tree, np.ndarray]:
        """One tree, level by level, as the arbiter decides from the summed histograms."""
        tree = Tree(dim)
        tree.add(0, 0)
        pos = np.zeros(len(g), dtype=np.int64)
        frontier = [0]
        for depth in range(p.tree_param.max_depth + 1):
            blocks = [node_block(bins, n_bins, np.nonzero(pos == nid)[0], g, h) for nid in frontier]
            reply = client.ask("level", np.concatenate(blocks), tree=index, depth=depth, nodes=frontier,
                               n_bins=n_bins)
            for nid, weight, count in reply["weights"]:
                tree.nodes[int(nid)].weight, tree.nodes[int(nid)].count = float(weight), int(count)
            frontier = []
            for nid, f, b, gain in sorted(reply["splits"]):
                nid, f, b = int(nid), int(f), int(b)
                rows = np.nonzero(pos == nid)[0]
                go = bins[rows, f] <= b
                node, left, right = tree.nodes[nid], tree.add(depth + 1, 0), tree.add(depth + 1, 0)
                table.append((f, float(split_points[f][b])))
                node.party, node.split_id, node.left, node.right, node.gain = HOMO, len(table) - 1, left.id, \
                    right.id, float(gain)
                pos[rows[go]], pos[rows[~go]] = left.id, right.id
                frontier += [left.id, right.id]
            if not frontier:
                break
        return tree, pos

    @staticmethod
    def _scores(model: dict, x: np.ndarray) -> np.ndarray:
        trees = [Tree.from_json(t) for t in model["trees"]]
        header = list(model["header"])
        splits = [(header.index(s["feature"]), float(s["threshold"])) for s in model["splits"]]
        leaves = walk_local(trees, splits, x)
        scores = np.tile(np.asarray(model["init_score"], dtype=np.float64), (len(x), 1))
        for t, tree in enumerate(trees):
            scores[:, tree.dim] += float(model["learning_rate"]) * tree.weights()[leaves[t]]
        return scores

    def _predict(self, ctx: Context, data: Dataset, model: dict) -> Outputs:
        if list(data.meta.feature_columns) != list(model.get("header", [])):
            raise ComponentError(f"{ctx.component}: the data's features {data.meta.feature_columns} are not the "
                                 f"model's {model.get('header')}")
        keys, _, x, _ = load(data, False, ctx.component)
        _check_finite(ctx, x, "the data to predict")
        labels = np.array([np.nan if inst.label is None else inst.label for _, inst in
                           sorted(data.table.collect(), key=lambda kv: str(kv[0]))], dtype=np.float64)
        out = HeteroSecureBoost()._output(ctx, data, model, keys, labels, self._scores(model, x), "predict")
        return Outputs(data=[out], model=model)

    # ---------------------------------------------------------------- arbiter
    def arbiter(self, ctx: Context, p: HomoSecureBoostParams, inputs: Inputs) -> Outputs:
        if inputs.model:  # a predict job: every party scores its own rows
            return Outputs(model=inputs.model[0])
        parties = ctx.role_parties("guest") + ctx.role_parties("host")
        if len(parties) < 2:
            raise ComponentError(f"{ctx.component}: HomoSecureBoost needs at least two parties with data")
        task, objective, classes = self._setup(ctx, p, parties)
        HomoFeatureBinning().arbiter(ctx, HomoFeatureBinningParams(bin_num=p.bin_num), Inputs())
        rule, rng = p.split_rule(), np.random.default_rng(p.random_seed)
        features: dict[int, np.ndarray] = {}
        losses: list[float] = []
        round_no = 0
        while True:
            tag = ctx.tag(f"hsbt.{round_no}")
            ups = ctx.federation.get("hsbt_up", tag, parties)
            kinds = {u.get("kind") if isinstance(u, dict) else None for u in ups}
            if kinds == {"end"}:
                break
            if len(kinds) != 1 or not kinds <= {"init", "level", "loss"}:
                self._refuse(ctx, parties, tag,
                             f"the parties are out of step at round {round_no}: {sorted(map(str, kinds))}")
            total = self._sum(ctx, parties, ups, tag)
            kind = ups[0]["kind"]
            if kind == "init":
                if objective.classifier:
                    y = np.repeat(np.arange(len(classes)), np.rint(total).astype(np.int64))
                    reply: dict[str, Any] = {"init": objective.init_score(y.astype(np.float64)).tolist()}
                else:
                    reply = {"init": [float(total[0] / total[1])]}
            elif kind == "loss":
                losses.append(float(total[0] / total[1]))
                stop = p.n_iter_no_change and len(losses) > 1 and abs(losses[-2] - losses[-1]) < p.tol
                reply = {"loss": losses[-1], "stop": bool(stop)}
            else:
                msg = ups[0]
                index, n_bins = int(msg["tree"]), [int(b) for b in msg["n_bins"]]
                if index not in features:
                    features[index] = sample_features(len(n_bins), p.subsample_feature_rate, rng)
                splittable = int(msg["depth"]) < p.tree_param.max_depth
                reply = self._level(rule, total, [int(n) for n in msg["nodes"]], n_bins, features[index], splittable)
            ctx.federation.remote(reply, "hsbt_down", tag, parties)
            round_no += 1
        ctx.tracker.log_metric("train", "loss", losses)
        return Outputs(model={"task": task, "classes": classes, "loss_history": losses, "rounds": len(losses),
                              "aggregate_rounds": round_no, "secure_aggregate": True})

    @staticmethod
    def _level(rule: SplitRule, total: np.ndarray, nodes: list[int], n_bins: list[int], features: np.ndarray,
               splittable: bool) -> dict[str, Any]:
        size = 3 + 3 * sum(n_bins)
        weights, splits = [], []
        for i, nid in enumerate(nodes):
            block = total[i * size:(i + 1) * size]
            weights.append([nid, rule.leaf_weight(block[0], block[1]), int(round(block[2]))])
            found = best_split(block, n_bins, features, rule) if splittable and rule.can_split(block[:3]) else None
            if found is not None:
                splits.append([nid, found[0], found[1], found[2]])
        return {"weights": weights, "splits": splits}

    def _setup(self, ctx: Context, p: HomoSecureBoostParams, parties: list[Party]) -> tuple[str, Objective, list]:
        hello = ctx.federation.get("hsbt_hello", ctx.tag(), parties)
        header = list(hello[0][0])
        for party, (other, _, _) in zip(parties[1:], hello[1:]):
            if list(other) != header:
                self._refuse(ctx, parties, ctx.tag(), f"{contributor(party)} has features {list(other)[:8]}, "
                             f"{contributor(parties[0])} has {header[:8]}; HomoSecureBoost needs the same columns "
                             "in the same order", "hsbt_setup")
        classes = sorted(set().union(*(set(float(c) for c in labels) for _, labels, _ in hello)))
        try:
            task, objective = resolve_task(p.task_type, classes, ctx.component)
        except ComponentError as exc:
            self._refuse(ctx, parties, ctx.tag(), str(exc), "hsbt_setup")
        ctx.federation.remote({"keys": {contributor(q): key for q, (_, _, key) in zip(parties, hello)},
                               "task": task, "classes": classes}, "hsbt_setup", ctx.tag(), parties)
        return task, objective, classes

    @staticmethod
    def _refuse(ctx: Context, parties: list[Party], tag: str, problem: str, name: str = "hsbt_down") -> None:
        ctx.federation.remote(problem, name, tag, parties)
        raise ComponentError(f"{ctx.component}: {problem}")

    def _sum(self, ctx: Context, parties: list[Party], ups: list, tag: str) -> np.ndarray:
        words = [np.asarray(u.get("data")) for u in ups]
        for party, w in zip(parties, words):
            if w.dtype != np.uint64 or w.shape != words[0].shape:
                self._refuse(ctx, parties, tag, f"the update of {contributor(party)} is {w.dtype} {w.shape}, "
                             f"expected uint64 {words[0].shape}")
        return decode(add_words(words))


def _check_finite(ctx: Context, x: np.ndarray, port: str) -> None:
    if not np.isfinite(x).all():
        raise ComponentError(f"{ctx.component}: {port} has missing or infinite feature values; impute them first "
                             "(FeatureImputation, or DataTransform's missing_fill); not supported: HomoSecureBoost "
                             "use_missing")


class _Client:
    """A party's side of the exchanges with the arbiter, one masked sum per round."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.arbiter = ctx.role_parties("arbiter")
        if not self.arbiter:
            raise ComponentError(f"{ctx.component}: HomoSecureBoost needs an arbiter to sum the histograms")
        self.masker = SecureAggregator(contributor(ctx.local), f"{ctx.job_id}|{ctx.tag()}|hsbt".encode())
        self.round = 0

    def hello(self, header: list[str], labels: list[float]) -> dict[str, Any]:
        ctx = self.ctx
        ctx.federation.remote((header, labels, self.masker.public_key), "hsbt_hello", ctx.tag(), self.arbiter)
        (setup,) = ctx.federation.get("hsbt_setup", ctx.tag(), self.arbiter)
        if isinstance(setup, str):
            raise ComponentError(f"{ctx.component}: {setup}")
        self.masker.agree(setup["keys"])
        return setup

    def ask(self, kind: str, values: np.ndarray, **extra: Any) -> dict[str, Any]:
        ctx, tag = self.ctx, self.ctx.tag(f"hsbt.{self.round}")
        ctx.federation.remote({"kind": kind, "data": self.masker.mask(values, self.round), **extra},
                              "hsbt_up", tag, self.arbiter)
        (reply,) = ctx.federation.get("hsbt_down", tag, self.arbiter)
        self.round += 1
        if isinstance(reply, str):
            raise ComponentError(f"{ctx.component}: {reply}")
        return reply

    def end(self) -> None:
        self.ctx.federation.remote({"kind": "end"}, "hsbt_up", self.ctx.tag(f"hsbt.{self.round}"), self.arbiter)
