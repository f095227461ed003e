"""HomoFeatureBinning: quantile split points of the rows pooled over all parties, found
without pooling them.

Guest and hosts hold the same columns of different rows. The quantile ``i/bin_num`` of a
column is the smallest sample value ``v`` whose global rank ``count(x <= v)`` reaches
``ceil(N·i/bin_num)`` (numpy's ``inverted_cdf``, as HeteroFeatureBinning on one party), N
the pooled number of finite values. Every global count is a sum of per-party counts,
masked with pairwise cancelling masks (:mod:`components.crypto.secure_agg`), so the
arbiter learns only the sums, never a party's count nor any value:

  party    sends the binned column names and an X25519 public key            -> arbiter
  arbiter  checks the names agree, relays the public keys                    -> parties
  party    masked count of finite values per column                          -> arbiter
  arbiter  the summed counts N                                               -> parties
  repeat:  each party proposes the same query values for every (column, quantile) and
           sends its masked counts ``count(x <= q)``; the arbiter returns the sums,
           and every party narrows each search interval the same way

The search runs on the order-preserving 64-bit integer image of float64, ``QUERIES``
points per interval per round, so it ends after about 11 rounds on the exact sample
value: the split points equal the pooled quantiles (FATE's recursive query stops within
``error``; an exact answer is within any ``error``). FATE's ``virtual_summary`` and
``recursive_query`` both run this search; their tuning knobs are not needed. The arbiter
learns the pooled totals and the summed counts at query values it never sees.

As in FATE, no WOE/IV is computed (homo binning outputs split points only); bins are
right-closed, the last split point is the pooled maximum, and ``transform_param``
replaces values by their bin index. The query values a party sees reveal the pooled
quantiles, which is the result every party receives anyway.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Inputs, Outputs, Params
from components.crypto.secure_agg import SecureAggregator, add_words, decode
from components.feature.binning import HeteroFeatureBinning, TransformParam
from components.feature.common import gather_matrix, model_columns, pick_columns
from components.masking import contributor
from federation.api import Party
from flow.core.errors import ComponentError

#: query values per search interval per round: 64 sub-intervals cut 2**64 keys in 11 rounds
QUERIES = 63
_SIGN = np.uint64(1 << 63)
#: a search needs at most ceil(64 / log2(QUERIES + 1)) rounds; this bounds a broken peer
_MAX_ROUNDS = 64


class HomoFeatureBinningParams(Params):
    """FATE 1.x's HomoFeatureBinningParam."""

    inert = frozenset({"compress_thres", "head_size", "error", "sample_bins", "max_iter", "adjustment_factor"})

    method: Literal["virtual_summary", "recursive_query"] = "virtual_summary"
    compress_thres: int = Field(10000, ge=1)
    head_size: int = Field(10000, ge=1)
    error: float = Field(1e-4, ge=0, lt=1)
    sample_bins: int = Field(100, ge=1)
    bin_num: int = Field(10, ge=2)
    bin_indexes: int | list[int] = -1
    bin_names: list[str] | None = None
    adjustment_factor: float = Field(0.5, gt=0, lt=1)
    transform_param: TransformParam = TransformParam()
    category_indexes: list[int] | None = None
    category_names: list[str] | None = None
    skip_static: bool = False
    max_iter: int = Field(100, ge=1, le=100)

    @model_validator(mode="after")
    def _supported(self) -> HomoFeatureBinningParams:
        if self.category_indexes or self.category_names:
            raise PydanticCustomError("not_supported", "not supported: HomoFeatureBinning category_indexes / "
                                      "category_names (category columns across parties)")
        if self.transform_param.transform_type == "woe":
            raise PydanticCustomError("not_supported", "not supported: HomoFeatureBinning transform_param."
                                      "transform_type 'woe' (homo binning computes no WOE, as in FATE)")
        return self


# ---------------------------------------------------------------- pure search math

def order_keys(values: np.ndarray) -> np.ndarray:
    """float64 -> uint64 with the same order (-0.0 taken as 0.0); NaN must be dropped first."""
    u = (np.asarray(values, dtype=np.float64) + 0.0).view(np.uint64)
    return np.where(u & _SIGN, ~u, u | _SIGN)


def from_keys(keys: np.ndarray) -> np.ndarray:
    """The inverse of :func:`order_keys`."""
    k = np.asarray(keys, dtype=np.uint64)
    return np.where(k & _SIGN, k & ~_SIGN, ~k).view(np.float64)


def target_ranks(total: int, bin_num: int) -> np.ndarray:
    """The rank (1-based) of quantile i/bin_num, i = 1..bin_num, as numpy's ``inverted_cdf``
    computes it (the same float arithmetic, so the same sample value is chosen)."""
    q = np.arange(1, bin_num + 1) / bin_num
    return np.clip(np.ceil(total * q - 1), 0, max(total - 1, 0)).astype(np.int64) + 1


class QuantileSearch:
    """Every party's (identical) state: per node (column, quantile) an interval ``(lo, hi]``
    of keys with ``count(<= lo) < target <= count(<= hi)``; done when ``hi = lo + 1``."""

    def __init__(self, totals: np.ndarray, bin_num: int):
        self.column = np.repeat(np.arange(len(totals)), bin_num)
        self.target = np.concatenate([target_ranks(int(n), bin_num) for n in totals]) if len(totals) else \
            np.zeros(0, np.int64)
        empty = np.repeat(np.asarray(totals) == 0, bin_num)
        lo, hi = int(order_keys(np.array([-np.inf]))[0]), int(order_keys(np.array([np.inf]))[0])
        self.lo = [hi - 1 if e else lo for e in empty]  # an empty column has no split point: done at once
        self.hi = [hi] * len(self.target)
        self.empty = empty

    @property
    def done(self) -> bool:
        return all(h - lo_ == 1 for lo_, h in zip(self.lo, self.hi))

    def queries(self) -> np.ndarray:
        """``QUERIES`` keys strictly inside each node's interval (below ``hi``), nodes x QUERIES."""
        return np.array([[lo + (hi - lo) * j // (QUERIES + 1) for j in range(1, QUERIES + 1)]
                         for lo, hi in zip(self.lo, self.hi)], dtype=np.uint64).reshape(len(self.lo), QUERIES)

    def narrow(self, queries: np.ndarray, counts: np.ndarray) -> None:
        """Shrink every interval with the global counts at its query keys."""
        for n, (qs, cs) in enumerate(zip(queries.tolist(), counts.tolist())):
            if self.empty[n]:
                continue
            for q, c in zip(qs, cs):
                if c >= self.target[n]:
                    self.hi[n] = min(self.hi[n], q)
                else:
                    self.lo[n] = max(self.lo[n], q)

    def split_points(self, columns: int) -> list[np.ndarray]:
        """Per column: the distinct found values, ascending (empty for a column without values)."""
        values = from_keys(np.asarray(self.hi, dtype=np.uint64))
        return [np.unique(values[(self.column == c) & ~self.empty]) for c in range(columns)]


def local_counts(sorted_keys: list[np.ndarray], column: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """This party's ``count(x <= q)`` for every query of every node (nodes x QUERIES)."""
    out = np.zeros(queries.shape, dtype=np.float64)
    for n, c in enumerate(column):
        out[n] = np.searchsorted(sorted_keys[c], queries[n], side="right")
    return out



# ---------------------------------------------------------------- the component

class HomoFeatureBinning(Component):
    module = "HomoFeatureBinning"
    params_model = HomoFeatureBinningParams
    roles = ("guest", "host", "arbiter")
    accepts_model = True
    output_model = True

    def _party(self, ctx: Context, p: HomoFeatureBinningParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        header = data.meta.feature_columns
        if inputs.model:  # transform with a stored model (predict)
            model: dict[str, Any] = dict(inputs.model[0])
            cols = model_columns(ctx.component, header, model["bin_cols"])
            split_points = [np.asarray(model["binning_result"][c]["split_points"], float) for c in model["bin_cols"]]
        else:
            cols = pick_columns(ctx.component, header, p.bin_indexes, p.bin_names, "bin_indexes", "bin_names")
            names = [header[c] for c in cols]
            _, x, _ = gather_matrix(data.table, cols)
            split_points = self._fit(ctx, p, names, x.reshape(-1, len(cols)))
            model = {"role": ctx.role, "method": p.method, "bin_num": p.bin_num, "header": header,
                     "bin_cols": names,
                     "binning_result": {n: {"split_points": sp.tolist(), "bin_nums": len(sp)}
                                        for n, sp in zip(names, split_points)}}
            ctx.tracker.log_metric("binning", "split_points", {n: sp.tolist() for n, sp in zip(names, split_points)})
        out = HeteroFeatureBinning._transform(ctx, p, data, header, cols, split_points, model)
        return Outputs(data=[out], model=model)

    guest = host = _party

    def _fit(self, ctx: Context, p: HomoFeatureBinningParams, names: list[str], x: np.ndarray) -> list[np.ndarray]:
        arbiter = ctx.role_parties("arbiter")
        if not arbiter:
            raise ComponentError(f"{ctx.component}: HomoFeatureBinning needs an arbiter to sum the parties' counts")
        masker = SecureAggregator(contributor(ctx.local), f"{ctx.job_id}|{ctx.tag()}".encode())
        ctx.federation.remote((names, masker.public_key), "binning_header", ctx.tag(), arbiter)
        (keys,) = ctx.federation.get("secure_agg_pubkeys", ctx.tag(), arbiter)
        if isinstance(keys, str):  # the arbiter's refusal
            raise ComponentError(f"{ctx.component}: {keys}")
        if not isinstance(keys, dict):
            raise ComponentError(f"{ctx.component}: the arbiter sent {type(keys).__name__}, not the key list")
        masker.agree(keys)
        sorted_keys = [np.sort(order_keys(col[np.isfinite(col)])) for col in x.T]
        totals = self._sum(ctx, masker, 0, np.array([len(k) for k in sorted_keys], dtype=float))
        search = QuantileSearch(totals.astype(np.int64), p.bin_num)
        rounds = 0
        while not search.done:
            rounds += 1
            if rounds > _MAX_ROUNDS:
                raise ComponentError(f"{ctx.component}: the quantile search did not end in {_MAX_ROUNDS} rounds")
            queries = search.queries()
            counts = self._sum(ctx, masker, rounds, local_counts(sorted_keys, search.column, queries).ravel())
            search.narrow(queries, counts.reshape(queries.shape).astype(np.int64))
        ctx.federation.remote(None, "bin_counts", ctx.tag(f"round.{rounds + 1}"), arbiter)
        ctx.logger.info("pooled quantiles of %d columns (%d values) found in %d rounds", len(names),
                        int(totals.sum()), rounds)
        return search.split_points(len(names))

    @staticmethod
    def _sum(ctx: Context, masker: SecureAggregator, round_no: int, values: np.ndarray) -> np.ndarray:
        """The sum over all parties of ``values`` (integer counts), through the arbiter."""
        tag = ctx.tag(f"round.{round_no}")
        arbiter = ctx.role_parties("arbiter")
        ctx.federation.remote(masker.mask(values, round_no, fraction_bits=0), "bin_counts", tag, arbiter)
        (total,) = ctx.federation.get("bin_counts_sum", tag, arbiter)
        arr = np.asarray(total)
        if arr.shape != values.shape:
            raise ComponentError(f"{ctx.component}: the arbiter's sum has shape {arr.shape}, expected {values.shape}")
        return np.rint(arr.astype(np.float64))

    # ---------------------------------------------------------------- arbiter
    def arbiter(self, ctx: Context, p: HomoFeatureBinningParams, inputs: Inputs) -> Outputs:
        if inputs.model:  # a predict job: each party bins its own rows
            return Outputs(model=inputs.model[0])
        parties = ctx.role_parties("guest") + ctx.role_parties("host")
        if len(parties) < 2:
            raise ComponentError(f"{ctx.component}: HomoFeatureBinning needs at least two parties with data")
        messages = ctx.federation.get("binning_header", ctx.tag(), parties)
        names = list(messages[0][0])
        for party, (other, _) in zip(parties[1:], messages[1:]):
            if list(other) != names:
                problem = (f"{contributor(party)} bins columns {list(other)[:8]}, {contributor(parties[0])} bins "
                           f"{names[:8]}; the parties must bin the same columns in the same order")
                ctx.federation.remote(problem, "secure_agg_pubkeys", ctx.tag(), parties)
                raise ComponentError(f"{ctx.component}: {problem}")
        ctx.federation.remote({contributor(q): key for q, (_, key) in zip(parties, messages)},
                              "secure_agg_pubkeys", ctx.tag(), parties)
        round_no = 0
        while True:
            tag = ctx.tag(f"round.{round_no}")
            updates = ctx.federation.get("bin_counts", tag, parties)
            if all(u is None for u in updates):
                break
            if round_no > _MAX_ROUNDS or any(u is None for u in updates):
                raise ComponentError(f"{ctx.component}: the parties disagree on the end of the quantile search "
                                     f"(round {round_no})")
            self._check(ctx, parties, updates, names if round_no == 0 else None)
            ctx.federation.remote(decode(add_words(updates), 0), "bin_counts_sum", tag, parties)
            round_no += 1
        ctx.logger.info("summed the counts of %d parties for %d columns in %d rounds", len(parties), len(names),
                        round_no)
        return Outputs(model={"bin_cols": names, "bin_num": p.bin_num, "search_rounds": round_no - 1})

    @staticmethod
    def _check(ctx: Context, parties: list[Party], updates: list, names: list[str] | None) -> None:
        shape = (len(names),) if names is not None else np.asarray(updates[0]).shape
        for party, u in zip(parties, updates):
            arr = np.asarray(u)
            if arr.dtype != np.uint64 or arr.shape != shape:
                raise ComponentError(f"{ctx.component}: counts of {contributor(party)} are {arr.dtype} {arr.shape}, "
                                     f"expected uint64 {shape}")
