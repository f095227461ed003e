"""HeteroFeatureBinning: quantile or bucket bins per party, WOE and IV of every feature.

Each party bins its own columns (split points never leave the party). The guest, which
holds the labels, computes WOE/IV of its features directly. For a host's features:

  guest  generates a Paillier key pair; sends ([[y]], [[1-y]]) per sample   -> host
  host   sums both ciphertexts per (column, bin), bins in their own order    -> guest
  guest  decrypts event / non-event counts per bin and computes WOE and IV

Nothing else goes back to the host (as in FATE): the host's model holds its split points
only. What the guest learns of a host feature: its number of bins and, per bin in the
host's bin order, the event and non-event counts (so the WOE curve and the IV), under an
anonymous name ``host_<party_id>_x<column index>``; never its name, values or split
points. The host learns nothing of the labels (it only sees ciphertexts).

With ``method: "optimal"`` (optimal_binning.py) every party starts from fine initial bins;
the guest merges its own, and for a host's it merges the decrypted per-bin counts and sends
back only the indices of the initial split points to keep (``optimal_bins``); the host
picks those of its split points. The guest then sees the host's fine initial counts (as in
FATE); the host learns which of its boundaries stay (a function of the labels, as in FATE).

Bins are right-closed, ``(s[i-1], s[i]]``, and the last split point is the column's
maximum, as in FATE; a value above it (at transform time) falls into the last bin, a
missing value (NaN) into an extra bin after the regular ones, kept in the statistics
only when it is not empty. Quantile split points are exact (``inverted_cdf``: each
split point is a sample value), computed on the party's driver from its columns.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params
from components.crypto.paillier import PaillierPublicKey, generate_keypair
from components.crypto.params import EncryptParam
from components.crypto.vector import encrypted_sum
from components.feature.common import gather_matrix, model_columns, pick_columns
from components.feature.optimal_binning import OptimalBinningParam, merge_bins, merge_counts
from flow.core.errors import ComponentError


class TransformParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    transform_cols: int | list[int] | None = -1
    transform_names: list[str] | None = None
    transform_type: Literal["bin_num", "woe"] | None = "bin_num"


class FeatureBinningParams(Params):
    method: Literal["quantile", "bucket", "optimal"] = "quantile"
    compress_thres: int = 10000
    head_size: int = 10000
    error: float = 1e-4
    bin_num: int = Field(10, ge=2)
    bin_indexes: int | list[int] = -1
    bin_names: list[str] | None = None
    category_indexes: list[int] | None = None
    category_names: list[str] | None = None
    adjustment_factor: float = Field(0.5, gt=0)
    transform_param: TransformParam = TransformParam()
    local_only: bool = False
    encrypt_param: EncryptParam = EncryptParam()
    skip_static: bool = False
    split_points_by_index: dict[str, list[float]] | None = None
    split_points_by_col_name: dict[str, list[float]] | None = None
    encrypted_mode_calculator_param: dict[str, Any] | None = None
    optimal_binning_param: OptimalBinningParam = OptimalBinningParam()

    @model_validator(mode="after")
    def _optimal_needs_statistics(self) -> FeatureBinningParams:
        if self.method == "optimal" and self.skip_static:
            raise PydanticCustomError("not_supported", "not supported: method 'optimal' with skip_static (optimal "
                                      "binning merges bins by their label statistics)")
        return self


# ---------------------------------------------------------------- pure binning math

def quantile_split_points(values: np.ndarray, bin_num: int) -> np.ndarray:
    """Sample values at the quantiles i/bin_num (i = 1..bin_num), duplicates dropped."""
    v = values[np.isfinite(values)]
    if not len(v):
        return np.zeros(0)
    return np.unique(np.quantile(v, np.arange(1, bin_num + 1) / bin_num, method="inverted_cdf"))


def bucket_split_points(values: np.ndarray, bin_num: int) -> np.ndarray:
    """Equal-width bins between the minimum and the maximum (the last point is the maximum)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return np.zeros(0)
    lo, hi = float(v.min()), float(v.max())
    points = lo + (hi - lo) * np.arange(1, bin_num + 1) / bin_num
    points[-1] = hi
    return np.unique(points)


def category_split_points(values: np.ndarray, bin_num: int) -> np.ndarray:
    """One bin per distinct value."""
    return np.unique(values[np.isfinite(values)])


SPLITTERS = {"quantile": quantile_split_points, "bucket": bucket_split_points, "category": category_split_points}


def bin_index(values: np.ndarray, split_points: np.ndarray) -> np.ndarray:
    """Bin of each value: first split point >= value (the last bin above the maximum),
    ``len(split_points)`` for a missing value."""
    sp = np.asarray(split_points, dtype=float)
    idx = np.minimum(np.searchsorted(sp, values, side="left"), max(len(sp) - 1, 0))
    return np.where(np.isnan(values), len(sp), idx)


def woe_iv(event: np.ndarray, non_event: np.ndarray, adjustment_factor: float = 0.5) -> dict[str, Any]:
    """WOE and IV per bin (FATE's formulas): rates over the totals, a bin with no event or
    no non-event gets ``adjustment_factor`` added to both counts; ``woe = ln(event_rate /
    non_event_rate)``, ``iv_i = (event_rate - non_event_rate) * woe``."""
    event, non_event = np.asarray(event, dtype=float), np.asarray(non_event, dtype=float)
    total_e, total_n = event.sum(), non_event.sum()
    if total_e <= 0 or total_n <= 0:
        raise ComponentError("WOE/IV need both label values (0 and 1) among the samples")
    adjust = (event == 0) | (non_event == 0)
    er = np.where(adjust, event + adjustment_factor, event) / total_e
    nr = np.where(adjust, non_event + adjustment_factor, non_event) / total_n
    woe = np.log(er / nr)
    iv = (er - nr) * woe
    diffs = np.diff(woe)
    return {
        "event_count_array": event.tolist(), "non_event_count_array": non_event.tolist(),
        "count_array": (event + non_event).tolist(), "event_rate_array": er.tolist(),
        "non_event_rate_array": nr.tolist(), "woe_array": woe.tolist(), "iv_array": iv.tolist(),
        "iv": float(iv.sum()), "is_woe_monotonic": bool(np.all(diffs >= 0) or np.all(diffs <= 0)),
    }


def bin_statistics(event: np.ndarray, non_event: np.ndarray, adjustment_factor: float) -> dict[str, Any]:
    """Statistics of bins whose last slot is the missing bin; that slot is dropped if empty."""
    event, non_event = np.asarray(event, dtype=float), np.asarray(non_event, dtype=float)
    has_missing = bool(event[-1] + non_event[-1] > 0)
    if not has_missing:
        event, non_event = event[:-1], non_event[:-1]
    return {**woe_iv(event, non_event, adjustment_factor), "has_missing_bin": has_missing}


# ---------------------------------------------------------------- worker functions

def _encrypt_label(pub: PaillierPublicKey):
    def f(inst: Instance) -> tuple:
        y = int(inst.label)
        return pub.encrypt(y).obfuscate(), pub.encrypt(1 - y).obfuscate()
    return f


def _pair(cipher, inst: Instance) -> tuple:
    return cipher, inst.features


def _encrypted_bin_sums(cols: list[int], split_points: list[np.ndarray]):
    """A partition of (([[y]], [[1-y]]) or one ciphertext per class, features) -> per column,
    per bin: the sum of each ciphertext (or None)."""
    def f(part):
        if not part:
            return None
        x = np.stack([feats for _, (_, feats) in part])[:, cols]
        enc = [c for _, (c, _) in part]
        out = []
        for j, sp in enumerate(split_points):
            idx = bin_index(x[:, j], sp)
            col = []
            for b in range(len(sp) + 1):
                rows = np.flatnonzero(idx == b)
                col.append(tuple(encrypted_sum([enc[i][t] for i in rows]) for t in range(len(enc[0])))
                           if len(rows) else None)
            out.append(col)
        return out
    return f


def _add_sums(a: list, b: list) -> list:
    return [[y if x is None else x if y is None else tuple(u + v for u, v in zip(x, y)) for x, y in zip(ca, cb)]
            for ca, cb in zip(a, b)]


def _replace_by_bin(cols: list[int], split_points: list[np.ndarray], lookups: list[np.ndarray]):
    """Instance -> Instance with column ``cols[j]`` replaced by ``lookups[j][bin]``."""
    def f(inst: Instance) -> Instance:
        feats = inst.features.copy()
        for c, sp, table in zip(cols, split_points, lookups):
            feats[c] = table[bin_index(feats[c:c + 1], sp)[0]]
        return Instance(feats, inst.label)
    return f


# ---------------------------------------------------------------- the component

class HeteroFeatureBinning(Component):
    module = "HeteroFeatureBinning"
    params_model = FeatureBinningParams
    roles = ("guest", "host")
    accepts_model = True
    output_model = True

    def guest(self, ctx: Context, p: FeatureBinningParams, inputs: Inputs) -> Outputs:
        return self._run(ctx, p, inputs, self._guest_statistics)

    def host(self, ctx: Context, p: FeatureBinningParams, inputs: Inputs) -> Outputs:
        if p.transform_param.transform_type == "woe" and p.transform_param.transform_cols not in (None, []):
            raise ComponentError(f"{ctx.component}: transform_param.transform_type 'woe' is for the guest only "
                                 "(a host has no labels); use 'bin_num' or null on the host")
        return self._run(ctx, p, inputs, self._host_statistics)

    def _run(self, ctx: Context, p: FeatureBinningParams, inputs: Inputs, statistics) -> Outputs:
        data = inputs.require(ctx.component)
        header = data.meta.feature_columns
        if inputs.model:  # transform with a stored model (predict)
            model = dict(inputs.model[0])
            cols = model_columns(ctx.component, header, model["bin_cols"])
            split_points = [np.asarray(model["binning_result"][c]["split_points"], float) for c in model["bin_cols"]]
        else:
            cols = self._bin_columns(ctx, p, header)
            _, x, y = gather_matrix(data.table, cols)
            if not len(x):
                raise ComponentError(f"{ctx.component}: input table {data.meta.name} is empty")
            split_points = self._split_points(p, header, cols, x)
            model = {"role": ctx.role, "method": p.method, "bin_num": p.bin_num, "header": header,
                     "bin_cols": [header[c] for c in cols],
                     "binning_result": {header[c]: {"split_points": sp.tolist(), "bin_nums": len(sp)}
                                        for c, sp in zip(cols, split_points)}}
            statistics(ctx, p, data, cols, split_points, x, y, model)
        out = self._transform(ctx, p, data, header, cols, split_points, model)
        return Outputs(data=[out], model=model)

    @staticmethod
    def _bin_columns(ctx: Context, p: FeatureBinningParams, header: list[str]) -> list[int]:
        cols = set(pick_columns(ctx.component, header, p.bin_indexes, p.bin_names, "bin_indexes", "bin_names"))
        cats = set(pick_columns(ctx.component, header, p.category_indexes, p.category_names,
                                "category_indexes", "category_names"))
        return sorted(cols | cats)

    @staticmethod
    def _split_points(p: FeatureBinningParams, header: list[str], cols: list[int], x: np.ndarray) -> list[np.ndarray]:
        given = {int(k): v for k, v in (p.split_points_by_index or {}).items()}
        given.update({header.index(k): v for k, v in (p.split_points_by_col_name or {}).items() if k in header})
        cats = set(p.category_indexes or []) | {header.index(n) for n in p.category_names or [] if n in header}
        opt = p.optimal_binning_param
        points = []
        for j, c in enumerate(cols):
            if c in given:
                points.append(np.unique(np.asarray(given[c], dtype=float)))
            elif c in cats:
                points.append(category_split_points(x[:, j], p.bin_num))
            elif p.method == "optimal":  # the fine initial bins; merged by the label statistics
                points.append(SPLITTERS[opt.init_bucket_method](x[:, j], opt.init_bin_nums))
            else:
                points.append(SPLITTERS[p.method](x[:, j], p.bin_num))
        return points

    @staticmethod
    def _mergeable(p: FeatureBinningParams, header: list[str], cols: list[int]) -> list[bool]:
        """Per binned column: does optimal binning merge it (not a category nor given split points)?"""
        if p.method != "optimal":
            return [False] * len(cols)
        fixed = {int(k) for k in p.split_points_by_index or {}} | set(p.category_indexes or [])
        names = set(p.split_points_by_col_name or {}) | set(p.category_names or [])
        return [c not in fixed and header[c] not in names for c in cols]

    @staticmethod
    def _merge(p: FeatureBinningParams, event: np.ndarray, non_event: np.ndarray) -> list[int]:
        """Kept initial bins of one column (counts with the missing slot last, left out)."""
        return merge_bins(event[:-1], non_event[:-1], p.bin_num, p.optimal_binning_param, p.adjustment_factor)

    # ---------------------------------------------------------------- statistics
    def _guest_statistics(self, ctx: Context, p: FeatureBinningParams, data: Dataset, cols: list[int],
                          split_points: list[np.ndarray], x: np.ndarray, y: np.ndarray | None, model: dict) -> None:
        header, hosts = model["header"], ctx.role_parties("host")
        model["host_results"] = {}
        if p.skip_static:
            return
        if y is None:
            raise ComponentError(f"{ctx.component}: input {data.meta.name} has no labels; WOE/IV need them "
                                 "(or set skip_static)")
        if len(np.unique(y)) > 2:  # one-vs-rest per class
            from components.feature.binning_multiclass import multiclass_statistics  # it imports this module
            return multiclass_statistics(ctx, p, data, cols, split_points, x, y, model)
        if not np.isin(y, (0.0, 1.0)).all():
            raise ComponentError(f"{ctx.component}: WOE/IV need binary labels 0/1; found {sorted(set(y.tolist()))[:5]}")
        ivs: dict[str, float] = {}
        for j, (c, sp, merge) in enumerate(zip(cols, split_points, self._mergeable(p, header, cols))):
            idx = bin_index(x[:, j], sp)
            event = np.bincount(idx, weights=y, minlength=len(sp) + 1)
            total = np.bincount(idx, minlength=len(sp) + 1)
            if merge:  # split_points is the caller's list: the transform uses the merged points
                ends = self._merge(p, event, total - event)
                split_points[j] = sp = sp[ends]
                model["binning_result"][header[c]].update(split_points=sp.tolist(), bin_nums=len(sp))
                idx = bin_index(x[:, j], sp)
                event = np.bincount(idx, weights=y, minlength=len(sp) + 1)
                total = np.bincount(idx, minlength=len(sp) + 1)
            stats = bin_statistics(event, total - event, p.adjustment_factor)
            model["binning_result"][header[c]].update(stats)
            ivs[header[c]] = stats["iv"]
        if hosts and not p.local_only:
            pub, priv = generate_keypair(p.encrypt_param.key_length)
            ctx.federation.remote(data.table.map_values(_encrypt_label(pub)), "encrypted_label", ctx.tag(), hosts)
            for host, (names, sums, mergeable) in zip(hosts, ctx.federation.get("encrypted_bin_sum", ctx.tag(), hosts)):
                result, kept = {}, {}
                for name, col, merge in zip(names, sums, mergeable):
                    dec = np.array([(priv.decrypt(s[0]), priv.decrypt(s[1])) if s else (0.0, 0.0) for s in col])
                    event, non_event = np.rint(dec[:, 0]), np.rint(dec[:, 1])
                    if merge:
                        kept[name] = ends = self._merge(p, event, non_event)
                        merged = merge_counts(event[:-1], non_event[:-1], ends)
                        event, non_event = np.r_[merged[0], event[-1]], np.r_[merged[1], non_event[-1]]
                    result[name] = bin_statistics(event, non_event, p.adjustment_factor)
                    ivs[name] = result[name]["iv"]
                model["host_results"][host.party_id] = result
                if any(mergeable):
                    ctx.federation.remote(kept, "optimal_bins", ctx.tag(), [host])
        ctx.tracker.log_metric("binning", "iv", ivs)
        ctx.logger.info("IV of %d features (%d own)", len(ivs), len(cols))

    def _host_statistics(self, ctx: Context, p: FeatureBinningParams, data: Dataset, cols: list[int],
                         split_points: list[np.ndarray], x: np.ndarray, y, model: dict) -> None:
        header = model["header"]
        anonymous = [f"host_{ctx.local.party_id}_x{i}" for i in range(len(header))]
        model["anonymous_header"] = anonymous
        mergeable = self._mergeable(p, header, cols)
        if any(mergeable) and p.local_only:
            raise ComponentError(f"{ctx.component}: method 'optimal' needs the guest's label statistics; a host "
                                 "cannot use it with local_only")
        if not (p.skip_static or p.local_only):
            self._send_bin_sums(ctx, p, data, cols, split_points, anonymous, mergeable)
        for j, (c, sp) in enumerate(zip(cols, split_points)):
            counts = np.bincount(bin_index(x[:, j], sp), minlength=len(sp) + 1)
            model["binning_result"][header[c]].update(
                split_points=sp.tolist(), bin_nums=len(sp), count_array=counts[:len(sp) + bool(counts[-1])].tolist())

    @staticmethod
    def _send_bin_sums(ctx: Context, p: FeatureBinningParams, data: Dataset, cols: list[int],
                       split_points: list[np.ndarray], anonymous: list[str], mergeable: list[bool]) -> None:
        (enc,) = ctx.federation.get("encrypted_label", ctx.tag(), ctx.role_parties("guest"))
        parts = [s for s in enc.join(data.table, _pair).apply_partitions(_encrypted_bin_sums(cols, split_points))
                 if s is not None]
        if not parts:
            raise ComponentError(f"{ctx.component}: no sample of the guest's matches this party's input data")
        sums = parts[0]
        for other in parts[1:]:
            sums = _add_sums(sums, other)
        guest = ctx.role_parties("guest")
        ctx.federation.remote(([anonymous[c] for c in cols], sums, mergeable), "encrypted_bin_sum", ctx.tag(), guest)
        ctx.logger.info("sent encrypted bin sums of %d features", len(cols))
        if any(mergeable):  # the guest chose which initial split points stay
            (kept,) = ctx.federation.get("optimal_bins", ctx.tag(), guest)
            result = dict(kept)
            for j, (c, merge) in enumerate(zip(cols, mergeable)):
                if merge:
                    split_points[j] = split_points[j][np.asarray(result[anonymous[c]], dtype=int)]
            ctx.logger.info("optimal binning: %d features merged to the guest's choice", sum(mergeable))

    # ---------------------------------------------------------------- transform
    @staticmethod
    def _transform(ctx: Context, p: FeatureBinningParams, data: Dataset, header: list[str], cols: list[int],
                   split_points: list[np.ndarray], model: dict) -> Dataset:
        tp = p.transform_param
        if tp.transform_type is None or tp.transform_cols is None:
            return data
        bin_cols = [header[c] for c in cols]
        if tp.transform_cols == -1 and not tp.transform_names:
            chosen = list(cols)
        else:
            indexes = None if tp.transform_cols == -1 else tp.transform_cols
            chosen = pick_columns(ctx.component, header, indexes, tp.transform_names,
                                  "transform_param.transform_cols", "transform_param.transform_names")
        unbinned = [header[c] for c in chosen if c not in cols]
        if unbinned:
            raise ComponentError(f"{ctx.component}: transform_param names columns that are not binned: {unbinned}")
        if not chosen:
            return data
        pos = [cols.index(c) for c in chosen]
        sps = [split_points[j] for j in pos]
        if tp.transform_type == "woe":
            results = [model["binning_result"][bin_cols[j]] for j in pos]
            if any("woe_array" not in r for r in results):
                raise ComponentError(f"{ctx.component}: transform_type 'woe' needs WOE (not with skip_static)")
            lookups = [np.r_[r["woe_array"], [] if r["has_missing_bin"] else [0.0]] for r in results]
        else:
            lookups = [np.arange(len(sp) + 1, dtype=float) for sp in sps]
        model["transform"] = {"cols": [header[c] for c in chosen], "type": tp.transform_type}
        return Dataset(data.table.map_values(_replace_by_bin(chosen, sps, lookups)), data.meta)
