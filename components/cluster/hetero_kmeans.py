"""HeteroKmeans: vertical k-means (FATE 1.x), guest and hosts holding features of the same ids.

Each centroid is split by feature owner: every party keeps its own part. One iteration:

1. each party computes, for every row, the squared distance of its features to its part of
   each centroid (an ``n × k`` matrix);
2. it sends that matrix to the arbiter under pairwise cancelling masks
   (:mod:`components.crypto.secure_agg`), so the arbiter learns only the sum over parties,
   i.e. the full squared distances, never one party's part;
3. the arbiter assigns each row to its nearest centroid and sends the assignments back;
4. each party moves its centroid parts to the mean of their rows (an empty cluster keeps its
   centroid) and sends its squared centroid shift, masked the same way; the arbiter stops when
   the summed shift is below ``tol`` (FATE's rule), or after ``max_iter`` iterations.

Start (FATE's): the guest draws ``k`` distinct rows with ``random_stat`` as the seed (rows in id
order here, so a seed gives the same start on every run); every party starts from its features
of those rows. After training, the rows are assigned to the final centroids once more; that
assignment is the output, as FATE's predict on the train data.

Output: guest and hosts their rows with the cluster index (``predicted_cluster_index``, after
the label where there is one); the arbiter, which alone learns distances, a table per cluster
(``cluster_sample_count``, ``cluster_inner_dist``: mean distance of the members to their
centroid, as FATE's arbiter). A row's distance is not given to the guest: with its own part it
would reveal the hosts' part. Metric ``train.within_cluster_sum_of_squares``: entry ``i`` is the
sum of squared distances of the rows to their nearest centroid after ``i`` updates (the last
entry: the final centroids). Model: each party its own centroid parts; predict jobs take it on
``input.model``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from pydantic import Field

from backends.storage.api import TableMeta
from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params, instances_meta
from components.crypto.secure_agg import SecureAggregator, add_words, decode
from components.masking import contributor, join_masks, relay_mask_keys
from federation.api import Party
from flow.core.errors import ComponentError

CLUSTER_COLUMN = "predicted_cluster_index"


class KmeansParams(Params):
    """FATE's KmeansParam."""

    k: int = Field(5, gt=1)
    max_iter: int = Field(300, gt=0)
    tol: float = Field(0.001, ge=0)
    random_stat: int | None = Field(None, ge=0)



def squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``n × k``: squared euclidean distance of each row to each centroid (over these columns)."""
    out = np.empty((x.shape[0], centroids.shape[0]))
    for j, c in enumerate(centroids):
        out[:, j] = np.sum((x - c) ** 2, axis=1)
    return out


def update_centroids(x: np.ndarray, assign: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean of each cluster's rows (an empty cluster keeps its centroid), and the counts."""
    k = centroids.shape[0]
    counts = np.bincount(assign, minlength=k)
    sums = np.zeros_like(centroids)
    np.add.at(sums, assign, x)
    new = centroids.copy()
    full = counts > 0
    new[full] = sums[full] / counts[full, None]
    return new, counts


def initial_rows(n: int, k: int, seed: int | None) -> list[int]:
    """FATE's start: ``k`` distinct row indices drawn with numpy's legacy generator."""
    return [int(i) for i in np.random.RandomState(seed).choice(n, k, replace=False)]


def _ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


class _Rows:
    """One party's rows in id order: what every party agrees on without sending ids."""

    def __init__(self, ctx: Context, data: Dataset):
        rows = sorted(data.table.collect(), key=lambda kv: str(kv[0]))
        if not rows:
            raise ComponentError(f"{ctx.component}: the input data on {ctx.role} {ctx.local.party_id} is empty")
        self.keys = [k for k, _ in rows]
        self.ids = [str(k) for k in self.keys]
        self.labels = [inst.label for _, inst in rows]
        self.x = np.stack([np.asarray(inst.features, dtype=np.float64) for _, inst in rows])
        if self.x.ndim != 2 or self.x.shape[1] == 0:
            raise ComponentError(f"{ctx.component}: {ctx.role} {ctx.local.party_id} has no features")
        if not np.all(np.isfinite(self.x)):
            raise ComponentError(f"{ctx.component}: {ctx.role} {ctx.local.party_id} has missing or infinite "
                                 "feature values (impute them first)")
        self.header = list(data.meta.feature_columns)
        self.data = data


class HeteroKmeans(Component):
    module = "HeteroKmeans"
    params_model = KmeansParams
    roles = ("guest", "host", "arbiter")
    input_data = ("train_data", "data", "test_data")
    accepts_model = True
    output_model = True

    # ------------------------------------------------------------ guest / host
    def guest(self, ctx: Context, p: KmeansParams, inputs: Inputs) -> Outputs:
        return self._party(ctx, p, inputs)

    def host(self, ctx: Context, p: KmeansParams, inputs: Inputs) -> Outputs:
        return self._party(ctx, p, inputs)

    def _party(self, ctx: Context, p: KmeansParams, inputs: Inputs) -> Outputs:
        if inputs.model and "train_data" in inputs.data:
            raise ComponentError(f"{ctx.component}: not supported: warm start (input.model with train_data) for "
                                 "HeteroKmeans; connect the model only in a predict job")
        if inputs.model:
            return self._predict(ctx, inputs)
        rows = _Rows(ctx, inputs.require(ctx.component, "train_data", "data"))
        n = len(rows.ids)
        picks = self._agree_rows(ctx, rows, p)
        centroids = rows.x[picks].copy()
        masker = join_masks(ctx)
        arbiter = ctx.role_parties("arbiter")
        n_iter, converged = 0, False
        for it in range(p.max_iter):
            tag = ctx.tag(f"it.{it}")
            assign = self._assign(ctx, masker, rows.x, centroids, 2 * it, tag)
            new, _ = update_centroids(rows.x, assign, centroids)
            shift = float(np.sum((new - centroids) ** 2))
            ctx.federation.remote(masker.mask(np.array([shift]), 2 * it + 1), "kmeans_shift", tag, arbiter)
            (converged,) = ctx.federation.get("kmeans_converged", tag, arbiter)
            centroids, n_iter = new, it + 1
            ctx.tracker.progress(n_iter, p.max_iter)
            if converged:
                break
        assign = self._assign(ctx, masker, rows.x, centroids, 2 * p.max_iter, ctx.tag("final"))
        counts = np.bincount(assign, minlength=p.k)
        model = {"header": rows.header, "k": p.k, "tol": p.tol, "max_iter": p.max_iter, "n_iter": n_iter,
                 "converged": bool(converged), "centroids": centroids.tolist(),
                 "cluster_count": [[j, int(c), float(c) / n] for j, c in enumerate(counts)]}
        return Outputs(data=[self._output(ctx, rows, assign, "train")], model=model)

    def _predict(self, ctx: Context, inputs: Inputs) -> Outputs:
        model = inputs.model[0]
        rows = _Rows(ctx, inputs.require(ctx.component, "test_data", "data"))
        if rows.header != list(model.get("header", [])):
            raise ComponentError(f"{ctx.component}: the data's features {rows.header} on {ctx.role} "
                                 f"{ctx.local.party_id} differ from the model's {list(model.get('header', []))}")
        centroids = np.asarray(model["centroids"], dtype=np.float64)
        self._agree_rows(ctx, rows, None)
        masker = join_masks(ctx)
        assign = self._assign(ctx, masker, rows.x, centroids, 0, ctx.tag("predict"))
        return Outputs(data=[self._output(ctx, rows, assign, "predict")], model=model)

    @staticmethod
    def _agree_rows(ctx: Context, rows: _Rows, p: KmeansParams | None) -> list[int]:
        """The guest checks the hosts hold the same ids (a digest) and, when training, draws the
        starting rows; every party gets their indices."""
        n, digest = len(rows.ids), _ids_digest(rows.ids)
        if ctx.role == "guest":
            picks: list[int] = []
            if p is not None:
                if p.k > n:
                    raise ComponentError(f"{ctx.component}: k={p.k} is more than the {n} rows of the data")
                picks = initial_rows(n, p.k, p.random_stat)
            ctx.federation.remote({"n": n, "ids": digest, "start": [rows.ids[i] for i in picks]}, "kmeans_rows",
                                  ctx.tag(), ctx.role_parties("host"))
            return picks
        (msg,) = ctx.federation.get("kmeans_rows", ctx.tag(), ctx.role_parties("guest"))
        if not isinstance(msg, dict) or msg.get("n") != n or msg.get("ids") != digest:
            theirs = msg.get("n") if isinstance(msg, dict) else "?"
            raise ComponentError(f"{ctx.component}: host {ctx.local.party_id} holds {n} ids, not the same ids as "
                                 f"the guest ({theirs}); HeteroKmeans needs intersected data")
        where = {k: i for i, k in enumerate(rows.ids)}
        return [where[str(k)] for k in msg.get("start", [])]

    @staticmethod
    def _assign(ctx: Context, masker: SecureAggregator, x: np.ndarray, centroids: np.ndarray, round_no: int,
                tag: str) -> np.ndarray:
        """Send this party's masked distance parts; the arbiter answers with every row's cluster."""
        arbiter = ctx.role_parties("arbiter")
        parts = squared_distances(x, centroids)
        ctx.federation.remote(masker.mask(parts.ravel(), round_no), "kmeans_dist", tag, arbiter)
        (assign,) = ctx.federation.get("kmeans_assign", tag, arbiter)
        assign = np.asarray(assign)
        if assign.shape != (x.shape[0],) or assign.dtype.kind not in "iu" or \
                (assign.size and (assign.min() < 0 or assign.max() >= centroids.shape[0])):
            raise ComponentError(f"{ctx.component}: the arbiter's cluster assignment is malformed")
        return assign.astype(np.int64)

    @staticmethod
    def _output(ctx: Context, rows: _Rows, assign: np.ndarray, kind: str) -> Dataset:
        label = rows.data.meta.label_column if ctx.role == "guest" else None
        pairs = [(key, Instance(np.array([float(c)]), rows.labels[i] if label else None))
                 for i, (key, c) in enumerate(zip(rows.keys, assign))]
        table = ctx.computing.parallelize(pairs, rows.data.table.partitions)
        return Dataset(table, instances_meta(rows.data.meta, [CLUSTER_COLUMN], label, type=kind))

    # ---------------------------------------------------------------- arbiter
    def arbiter(self, ctx: Context, p: KmeansParams, inputs: Inputs) -> Outputs:
        parties = ctx.role_parties("guest") + ctx.role_parties("host")
        if not ctx.role_parties("guest") or not ctx.role_parties("host"):
            raise ComponentError(f"{ctx.component}: HeteroKmeans needs a guest and at least one host")
        k = int(inputs.model[0].get("k", p.k)) if inputs.model else p.k
        relay_mask_keys(ctx, parties)
        if inputs.model:
            dist, _ = self._assign_rows(ctx, parties, k, ctx.tag("predict"))
            return Outputs(data=[self._summary(ctx, dist, k, "predict")], model=inputs.model[0])
        wcss: list[float] = []
        n_iter, converged = 0, False
        for it in range(p.max_iter):
            tag = ctx.tag(f"it.{it}")
            _, best = self._assign_rows(ctx, parties, k, tag)
            wcss.append(best)
            shift = float(self._sum(ctx, ctx.federation.get("kmeans_shift", tag, parties), parties, 1)[0])
            converged = shift < p.tol
            ctx.logger.info("iteration %d: within-cluster sum of squares %.6f, centroid shift %.6g", it, best, shift)
            ctx.federation.remote(converged, "kmeans_converged", tag, parties)
            n_iter = it + 1
            ctx.tracker.progress(n_iter, p.max_iter)
            if converged:
                break
        dist, best = self._assign_rows(ctx, parties, k, ctx.tag("final"))
        wcss.append(best)
        ctx.tracker.log_metric("train", "within_cluster_sum_of_squares", wcss)
        ctx.tracker.log_metric("train", "converged", converged)
        model: dict[str, Any] = {"k": k, "tol": p.tol, "max_iter": p.max_iter, "n_iter": n_iter,
                                 "converged": converged, "within_cluster_sum_of_squares": wcss}
        return Outputs(data=[self._summary(ctx, dist, k, "train")], model=model)

    def _assign_rows(self, ctx: Context, parties: list[Party], k: int, tag: str) -> tuple[np.ndarray, float]:
        """Sum the masked distance parts, send each row's nearest cluster: (distances, WCSS)."""
        masked = ctx.federation.get("kmeans_dist", tag, parties)
        size = np.asarray(masked[0]).shape[0] if np.asarray(masked[0]).ndim == 1 else -1
        if size <= 0 or size % k:
            raise ComponentError(f"{ctx.component}: {contributor(parties[0])} sent distances of shape "
                                 f"{np.asarray(masked[0]).shape}, expected rows × {k}")
        dist = self._sum(ctx, masked, parties, size).reshape(-1, k)
        assign = np.argmin(dist, axis=1).astype(np.int64)
        ctx.federation.remote(assign, "kmeans_assign", tag, parties)
        return dist, float(np.sum(dist[np.arange(dist.shape[0]), assign]))

    @staticmethod
    def _sum(ctx: Context, vectors: list, parties: list[Party], size: int) -> np.ndarray:
        for party, v in zip(parties, vectors):
            arr = np.asarray(v)
            if arr.dtype != np.uint64 or arr.shape != (size,):
                raise ComponentError(f"{ctx.component}: {contributor(party)} sent {arr.dtype} {arr.shape}, "
                                     f"expected masked uint64 ({size},)")
        return decode(add_words(vectors))

    @staticmethod
    def _summary(ctx: Context, dist: np.ndarray, k: int, kind: str) -> Dataset:
        """FATE's arbiter table per cluster: member count and mean distance to the centroid."""
        assign = np.argmin(dist, axis=1)
        near = np.sqrt(np.maximum(dist[np.arange(dist.shape[0]), assign], 0.0))
        pairs = []
        for j in range(k):
            members = assign == j
            count = int(members.sum())
            pairs.append((j, Instance(np.array([float(count), float(near[members].mean()) if count else 0.0]))))
        base = TableMeta(namespace=ctx.job_id, name=f"{ctx.component}_clusters", id_column="cluster_index")
        meta = instances_meta(base, ["cluster_sample_count", "cluster_inner_dist"], None, type=kind)
        return Dataset(ctx.computing.parallelize(pairs), meta)
