"""HeteroFeatureSelection's filters that read a HeteroPearson or PSI model (isometric_model).

``vif_filter`` and ``psi_filter`` are local: each party compares the values its own model
holds for its own columns (VIF from HeteroPearson's ``local_vif``, PSI from the PSI
model's ``total_score``) with ``filter_type``/``threshold``/``take_high``; kept by default
are the columns at or *below* the threshold (VIF 5.0, PSI 1.0), as in FATE.

``correlation_filter`` runs on the guest, with the guest's HeteroPearson and binning
models: candidates sorted by IV, high to low; walking that order, each candidate still
kept drops every other kept candidate whose |correlation| with it exceeds ``threshold``.
So of each highly correlated pair the one with the lower IV goes (a dropped column drops
nothing more). With ``select_federated`` the hosts' candidates join by anonymous name,
compared with the guest's through the cross correlations (hosts' columns with each
other are unknown, so never compared):

  host   its remaining candidates, by anonymous name            -> guest
  guest  the walk above; the anonymous names that survive       -> host

Otherwise a host keeps its candidates. Every filter keeps at least one candidate per
party: if none passes, the best one by the filter's own order stays (FATE's rule).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.base import Context, Inputs
from flow.core.errors import ComponentError


class _Sub(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion


class CorrelationFilterParam(_Sub):
    sort_metric: Literal["iv"] = "iv"
    threshold: float = Field(0.1, gt=0)
    select_federated: bool = True


class _IsoFilterParam(_Sub):
    """FATE's CommonFilterParam for a local filter: one value, or one per metric (applied in turn)."""

    metrics: str | list[str]
    filter_type: str | list[str] = "threshold"
    take_high: bool | list[bool] = False
    threshold: float | list[float] = 1.0
    host_thresholds: list[Any] | None = None  # FATE's, for federated filters; these are local
    select_federated: bool | list[bool] = True  # likewise

    @model_validator(mode="after")
    def _same_lengths(self) -> _IsoFilterParam:
        n = len(self.metrics) if isinstance(self.metrics, list) else 1
        for name in ("filter_type", "take_high", "threshold"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} metrics")
        bad = [t for t in _listify(self.filter_type, n) if t not in FILTER_TYPES]
        if bad:
            raise ValueError(f"filter_type {bad} unknown (use {', '.join(FILTER_TYPES)})")
        return self

    def steps(self) -> list[tuple[str, str, float, bool]]:
        metrics = _listify(self.metrics, 1)
        n = len(metrics)
        return list(zip(metrics, _listify(self.filter_type, n), _listify(self.threshold, n),
                        _listify(self.take_high, n)))


class VifFilterParam(_IsoFilterParam):
    metrics: str | list[str] = "vif"
    threshold: float | list[float] = 5.0


class PsiFilterParam(_IsoFilterParam):
    metrics: str | list[str] = "psi"


def _listify(value, n: int) -> list:
    return list(value) if isinstance(value, list) else [value] * n


# ---------------------------------------------------------------- FATE's rules for model values

def _ranked(values: dict[Any, float], take_high: bool) -> list:
    """Keys best first (NaN values left out), ties in key order."""
    finite = [k for k, v in values.items() if not math.isnan(v)]
    return sorted(finite, key=lambda k: -values[k] if take_high else values[k])


FILTER_TYPES: dict[str, Callable[[dict, float, bool], set]] = {
    "threshold": lambda values, thr, high: {k for k, v in values.items() if (v >= thr if high else v <= thr)},
    "top_k": lambda values, k, high: set(_ranked(values, high)[:max(0, int(k))]),
    "top_percentile": lambda values, pct, high: set(_ranked(values, high)[:math.ceil(pct * len(values))]),
}


def iso_filter(values: dict[Any, float], filter_type: str, threshold: float, take_high: bool) -> set:
    """The keys kept by one (filter_type, threshold, take_high); at least the best one."""
    kept = FILTER_TYPES[filter_type](values, threshold, take_high)
    best = _ranked(values, take_high)
    return kept or set(best[:1])


# ---------------------------------------------------------------- model lookups

def _model(ctx: Context, inputs: Inputs, name: str, method: str, key: str) -> dict[str, Any]:
    found = next((m for m in inputs.isometric_model if m.get("model_name") == name), None)
    if found is None:
        raise ComponentError(f"{ctx.component}: filter method '{method}' needs a {name} model as "
                             "input.isometric_model")
    if found.get(key) is None:
        raise ComponentError(f"{ctx.component}: filter method '{method}': the {name} model has no {key}"
                             + (" (calc_local_vif is false)" if key == "local_vif" else ""))
    return found


def _values(ctx: Context, method: str, names: list[str], values: list, wanted: dict[str, Any]) -> dict[Any, float]:
    """{column: value} for the candidate names in ``wanted`` (name -> column), or a clear error."""
    lookup = dict(zip(names, values))
    missing = sorted(n for n in wanted if n not in lookup)
    if missing:
        raise ComponentError(f"{ctx.component}: filter method '{method}': the model has no value for columns "
                             f"{missing}")
    return {col: float("nan") if lookup[n] is None else float(lookup[n]) for n, col in wanted.items()}


def _local_filter(ctx: Context, param: _IsoFilterParam, metric: str, values: dict[int, float]) -> set[int]:
    kept = set(values)
    for name, ftype, thr, high in param.steps():
        if name != metric:
            raise ComponentError(f"{ctx.component}: {metric}_param.metrics '{name}' not supported "
                                 f"(this filter reads '{metric}')")
        kept = iso_filter({k: values[k] for k in kept}, ftype, thr, high)
    return kept


def vif_filter(ctx: Context, p, inputs: Inputs, step: int, header: list[str], left: set[int],
               model: dict) -> set[int]:
    pearson = _model(ctx, inputs, "HeteroPearson", "vif_filter", "local_vif")
    vifs = _values(ctx, "vif_filter", pearson["names"], pearson["local_vif"], {header[c]: c for c in sorted(left)})
    return _local_filter(ctx, p.vif_param, "vif", vifs) if left else left


def psi_filter(ctx: Context, p, inputs: Inputs, step: int, header: list[str], left: set[int],
               model: dict) -> set[int]:
    psi = _model(ctx, inputs, "PSI", "psi_filter", "total_score")
    scores = psi["total_score"]
    values = _values(ctx, "psi_filter", list(scores), list(scores.values()), {header[c]: c for c in sorted(left)})
    return _local_filter(ctx, p.psi_param, "psi", values) if left else left


# ---------------------------------------------------------------- correlation_filter

def correlation_filter(ctx: Context, p, inputs: Inputs, step: int, header: list[str], left: set[int],
                       model: dict) -> set[int]:
    cp: CorrelationFilterParam = p.correlation_param
    tag = ctx.tag(f"{step}.correlation_filter")
    if ctx.role == "host":
        if not cp.select_federated:
            return left
        pearson = _model(ctx, inputs, "HeteroPearson", "correlation_filter", "anonymous_header")
        anonymous = dict(zip(pearson["header"], pearson["anonymous_header"]))
        names = {anonymous.get(header[c], f"host_{ctx.local.party_id}_x{c}"): c for c in left}
        guest = ctx.role_parties("guest")
        ctx.federation.remote(sorted(names), "host_select_cols", tag, guest)
        (kept,) = ctx.federation.get("result_left_cols", tag, guest)
        return {names[a] for a in kept if a in names}
    pearson = _model(ctx, inputs, "HeteroPearson", "correlation_filter", "local_corr")
    binning = next((m for m in inputs.isometric_model if "binning_result" in m), None)
    if binning is None:
        raise ComponentError(f"{ctx.component}: correlation_filter with sort_metric 'iv' needs a "
                             "HeteroFeatureBinning model as input.isometric_model")
    names = pearson["names"]
    candidates: list[tuple[str, Any]] = [("guest", c) for c in sorted(left)]
    own = _ivs(ctx, binning["binning_result"], {header[c]: c for c in sorted(left)})
    ivs = {("guest", c): v for c, v in own.items()}
    position = {("guest", c): names.index(header[c]) for c in left if header[c] in names}
    missing = sorted(header[c] for c in left if header[c] not in names)
    if missing:
        raise ComponentError(f"{ctx.component}: correlation_filter: columns {missing} are not in the "
                             "HeteroPearson model")
    cross = {entry["party_id"]: entry for entry in pearson.get("cross") or []}
    hosts = ctx.role_parties("host") if cp.select_federated else []
    for host, offered in zip(hosts, ctx.federation.get("host_select_cols", tag, hosts) if hosts else []):
        entry = cross.get(host.party_id)
        if entry is None:
            raise ComponentError(f"{ctx.component}: correlation_filter with select_federated needs the "
                                 f"HeteroPearson cross correlations with host {host.party_id} (cross_parties)")
        results = binning.get("host_results", {}).get(host.party_id, {})
        for name, iv in _ivs(ctx, results, {a: a for a in offered}).items():
            if name not in entry["names"]:
                raise ComponentError(f"{ctx.component}: correlation_filter: host column {name} is not in the "
                                     "HeteroPearson model")
            key = (host.party_id, name)
            candidates.append(key)
            ivs[key] = iv
            position[key] = entry["names"].index(name)
    local = np.asarray(pearson["local_corr"], dtype=float)
    cross_corr = {pid: np.asarray(e["corr"], dtype=float) for pid, e in cross.items()}

    def corr(a: tuple, b: tuple) -> float:
        if a[0] == "guest" and b[0] == "guest":
            return float(local[position[a], position[b]])
        if a[0] == "guest" or b[0] == "guest":
            g, h = (a, b) if a[0] == "guest" else (b, a)
            return float(cross_corr[h[0]][position[g], position[h]])
        return float("nan")  # two hosts' columns: nobody knows their correlation

    kept = walk(candidates, ivs, corr, cp.threshold)
    for host in hosts:
        left_names = sorted(a for pid, a in kept if pid == host.party_id)
        model.setdefault("host_left_cols", {})[host.party_id] = left_names
        ctx.federation.remote(left_names, "result_left_cols", tag, [host])
    return {c for party, c in kept if party == "guest"}


def walk(candidates: list, ivs: dict, corr: Callable[[Any, Any], float], threshold: float) -> set:
    """FATE's correlation walk (see the module docstring), then at least one candidate per party."""
    order = sorted(candidates, key=lambda k: -ivs[k])  # stable: ties keep the candidates' order
    dropped: set = set()
    for key in order:
        if key in dropped:
            continue
        dropped.update(o for o in order if o != key and o not in dropped and abs(corr(key, o)) > threshold)
    kept = set(candidates) - dropped
    for party in {k[0] for k in candidates} - {k[0] for k in kept}:
        kept.add(next(k for k in order if k[0] == party))
    return kept


def _ivs(ctx: Context, results: dict, names: dict[str, Any]) -> dict[Any, float]:
    missing = sorted(n for n in names if n not in results or "iv" not in results[n])
    if missing:
        raise ComponentError(f"{ctx.component}: correlation_filter: the binning model has no IV for columns "
                             f"{missing} (bin them, without skip_static)")
    return {col: float(results[n]["iv"]) for n, col in names.items()}


#: (ctx, params, inputs, step, header, candidate columns, selection model) -> kept columns
MODEL_FILTERS: dict[str, Callable[..., set[int]]] = {
    "vif_filter": vif_filter,
    "correlation_filter": correlation_filter,
    "psi_filter": psi_filter,
}
