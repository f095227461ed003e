"""HeteroFeatureSelection: filter columns by IV (from a binning model), by statistics, by hand.

``filter_methods`` run in order, each on the columns the earlier ones left (only the
columns chosen by ``select_col_indexes``/``select_names`` are candidates; the others
are always kept). Local methods (``manually``, ``unique_value``,
``coefficient_of_variation_value_thres``, ``statistic_filter``, ``percentage_value``)
run on each party over its own columns. IV methods (``iv_value_thres``, ``iv_percentile``,
``iv_top_k``, ``iv_filter``) need the HeteroFeatureBinning model as
``isometric_model``; unless their ``local_only`` is set, the guest decides for the
hosts too:

  host   its remaining candidates, by anonymous name (``host_<id>_x<i>``)  -> guest
  guest  ranks them with its own by the IVs of its binning model;
         sends each host the anonymous names that survive                 -> host

So a host learns only which of its own columns survive; the guest learns no more than
the binning step gave it (anonymous names and IVs).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from components.base import Component, Context, Dataset, Inputs, Outputs, Params
from components.feature.common import gather_matrix, keep_features, model_columns, pick_columns, with_columns
from flow.core.errors import ComponentError


class _Sub(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion


class UniqueValueParam(_Sub):
    eps: float = 1e-5


class IVValueSelectionParam(_Sub):
    value_threshold: float = 0.0
    host_thresholds: list[float] | None = None
    local_only: bool = False


class IVPercentileSelectionParam(_Sub):
    percentile_threshold: float = 1.0
    local_only: bool = False


class IVTopKParam(_Sub):
    k: int = 10
    local_only: bool = False


class VarianceOfCoeSelectionParam(_Sub):
    value_threshold: float = 1.0


class PercentageValueParam(_Sub):
    upper_pct: float = 1.0


class ManuallyFilterParam(_Sub):
    filter_out_indexes: list[int] | None = None
    filter_out_names: list[str] | None = None
    left_col_indexes: list[int] | None = None
    left_col_names: list[str] | None = None


class CommonFilterParam(_Sub):
    metrics: str | list[str] = "iv"
    filter_type: str | list[str] = "threshold"
    take_high: bool | list[bool] = True
    threshold: float | list[float] = 1.0
    host_filter_type: str | list[str] | None = None
    host_threshold: float | list[float] | None = None
    host_top_k: int | list[int] | None = None
    select_federated: bool = True

    @model_validator(mode="after")
    def _same_lengths(self) -> "CommonFilterParam":
        n = len(self.metrics) if isinstance(self.metrics, list) else 1
        for name in ("filter_type", "take_high", "threshold", "host_filter_type", "host_threshold", "host_top_k"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} metrics")
        return self


class FeatureSelectionParams(Params):
    select_col_indexes: int | list[int] = -1
    select_names: list[str] | None = None
    filter_methods: list[str] = ["manually"]
    unique_param: UniqueValueParam = UniqueValueParam()
    iv_value_param: IVValueSelectionParam = IVValueSelectionParam()
    iv_percentile_param: IVPercentileSelectionParam = IVPercentileSelectionParam()
    iv_top_k_param: IVTopKParam = IVTopKParam()
    variance_coe_param: VarianceOfCoeSelectionParam = VarianceOfCoeSelectionParam()
    manually_param: ManuallyFilterParam = ManuallyFilterParam()
    iv_param: CommonFilterParam = CommonFilterParam(metrics="iv")
    statistic_param: CommonFilterParam = CommonFilterParam(metrics="mean")
    outlier_param: dict[str, Any] | None = None
    percentage_value_param: PercentageValueParam = PercentageValueParam()
    psi_param: dict[str, Any] | None = None
    sbt_param: dict[str, Any] | None = None
    correlation_param: dict[str, Any] | None = None
    vif_param: dict[str, Any] | None = None


# ---------------------------------------------------------------- ranking rules

def top_k(values: dict[Any, float], k: int, take_high: bool = True) -> set:
    """The k best keys (ties broken by key order, so every party agrees)."""
    order = sorted(values, key=lambda key: (-values[key] if take_high else values[key], str(key)))
    return set(order[:max(0, int(k))])


def top_percentile(values: dict[Any, float], pct: float, take_high: bool = True) -> set:
    """Keys whose value reaches the value at rank ``floor(pct * n)`` (1.0 keeps all)."""
    if not values:
        return set()
    ranked = sorted(values.values(), reverse=take_high)
    cut = ranked[min(len(ranked) - 1, max(0, math.floor(pct * len(ranked) - 1e-9)))]
    return {k for k, v in values.items() if (v >= cut if take_high else v <= cut)}


def by_threshold(values: dict[Any, float], threshold: float, take_high: bool = True) -> set:
    return {k for k, v in values.items() if (v >= threshold if take_high else v <= threshold)}


FILTER_TYPES: dict[str, Callable[[dict, float, bool], set]] = {
    "threshold": by_threshold, "top_k": top_k, "top_percentile": top_percentile}


def _listify(value, n: int) -> list:
    return list(value) if isinstance(value, list) else [value] * n


def common_filter(component: str, values: dict[Any, float], filter_type: str, threshold: float,
                  take_high: bool) -> set:
    if filter_type not in FILTER_TYPES:
        raise ComponentError(f"{component}: filter_type '{filter_type}' unknown (use {', '.join(FILTER_TYPES)})")
    return FILTER_TYPES[filter_type](values, threshold, take_high)


# ---------------------------------------------------------------- column statistics

def _top_value_ratio(col: np.ndarray) -> float:
    present = col[~np.isnan(col)]
    return float(np.unique(present, return_counts=True)[1].max() / len(col)) if len(present) else 1.0


def column_statistics(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per column, over its present (non-NaN) values: FATE's statistic names. Variance and
    std are population ones; kurtosis is the excess kurtosis; a constant column has skewness
    and kurtosis 0 and an infinite coefficient of variance only if its mean is 0."""
    present = (~np.isnan(x)).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column gives NaN, not a warning
        mean = np.nanmean(x, 0)
        centred = x - mean
        var = np.nanmean(centred ** 2, 0)
        std = np.sqrt(var)
        safe = np.where(std > 0, std, 1.0)
        stats = {
            "mean": mean, "variance": var, "std": std, "min": np.nanmin(x, 0), "max": np.nanmax(x, 0),
            "median": np.nanmedian(x, 0),
            "coefficient_of_variance": np.where(mean != 0, std / np.abs(mean), np.where(std > 0, np.inf, 0.0)),
            "skewness": np.where(std > 0, np.nanmean(centred ** 3, 0) / safe ** 3, 0.0),
            "kurtosis": np.where(std > 0, np.nanmean(centred ** 4, 0) / safe ** 4 - 3.0, 0.0),
            "missing_count": (len(x) - present).astype(float),
            "missing_ratio": (len(x) - present) / max(len(x), 1),
            "top_value_ratio": np.array([_top_value_ratio(x[:, j]) for j in range(x.shape[1])]),
        }
    return stats


# ---------------------------------------------------------------- the component

class HeteroFeatureSelection(Component):
    module = "HeteroFeatureSelection"
    params_model = FeatureSelectionParams
    roles = ("guest", "host")
    accepts_model = True
    accepts_isometric_model = True
    output_model = True

    def guest(self, ctx: Context, p: FeatureSelectionParams, inputs: Inputs) -> Outputs:
        return self._run(ctx, p, inputs)

    host = guest

    def _run(self, ctx: Context, p: FeatureSelectionParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        header = data.meta.feature_columns
        if inputs.model:  # transform with a stored model (predict)
            model = dict(inputs.model[0])
            left = model_columns(ctx.component, header, model["left_cols"])
        else:
            unknown = [m for m in p.filter_methods if m not in IV_FILTERS and m not in LOCAL_FILTERS]
            if unknown:
                raise ComponentError(f"{ctx.component}: filter_methods {unknown} not supported "
                                     f"(supported: {', '.join([*LOCAL_FILTERS, *IV_FILTERS])})")
            select = pick_columns(ctx.component, header, p.select_col_indexes, p.select_names,
                                  "select_col_indexes", "select_names")
            model = {"role": ctx.role, "header": header, "select_cols": [header[c] for c in select],
                     "filter_results": [], "host_left_cols": {}}
            left_set = set(select)
            stats = {}
            if any(m in LOCAL_FILTERS and m != "manually" for m in p.filter_methods):
                if data.table.count() == 0:
                    raise ComponentError(f"{ctx.component}: input table {data.meta.name} is empty")
                stats = column_statistics(gather_matrix(data.table, select)[1])
            for step, method in enumerate(p.filter_methods):
                before = sorted(left_set)
                if method in IV_FILTERS:
                    left_set = self._iv_step(ctx, p, inputs, method, step, header, left_set, model)
                else:
                    left_set = self._local_step(ctx, p, method, header, select, left_set, stats)
                model["filter_results"].append({"method": method,
                                                "filtered_out": [header[c] for c in before if c not in left_set]})
            left = sorted(left_set | (set(range(len(header))) - set(select)))
            model["left_cols"] = [header[c] for c in left]
            ctx.tracker.log_metric("selection", "left_cols", model["left_cols"])
            ctx.logger.info("kept %d of %d columns", len(left), len(header))
        table = data.table.map_values(keep_features(left))
        return Outputs(data=[Dataset(table, with_columns(data.meta, [header[c] for c in left]))], model=model)

    # ---------------------------------------------------------------- local methods
    @staticmethod
    def _local_step(ctx: Context, p: FeatureSelectionParams, method: str, header: list[str], select: list[int],
                    left: set[int], stats: dict[str, np.ndarray]) -> set[int]:
        position = {c: i for i, c in enumerate(select)}  # column -> position in stats

        def metric(name: str) -> dict[int, float]:
            if name not in stats:
                raise ComponentError(f"{ctx.component}: statistic_param.metrics '{name}' unknown "
                                     f"(use {', '.join(stats)})")
            return {c: float(stats[name][position[c]]) for c in left}

        return LOCAL_FILTERS[method](ctx.component, p, header, left, metric)

    # ---------------------------------------------------------------- IV methods
    @staticmethod
    def _local_only(p: FeatureSelectionParams, method: str) -> bool:
        sub = {"iv_value_thres": p.iv_value_param, "iv_percentile": p.iv_percentile_param,
               "iv_top_k": p.iv_top_k_param}.get(method)
        return sub.local_only if sub is not None else False  # iv_filter: hosts per select_federated

    def _iv_step(self, ctx: Context, p: FeatureSelectionParams, inputs: Inputs, method: str, step: int,
                 header: list[str], left: set[int], model: dict) -> set[int]:
        binning = next((m for m in inputs.isometric_model if "binning_result" in m), None)
        if binning is None:
            raise ComponentError(f"{ctx.component}: filter method '{method}' needs a HeteroFeatureBinning model "
                                 "as input.isometric_model")
        tag = ctx.tag(f"{step}.{method}")
        if ctx.role == "host":
            if self._local_only(p, method):
                return left
            anonymous = dict(zip(binning["header"], binning["anonymous_header"]))
            names = {anonymous.get(header[c], f"host_{ctx.local.party_id}_x{c}"): c for c in left}
            guest = ctx.role_parties("guest")
            ctx.federation.remote(sorted(names), "host_select_cols", tag, guest)
            (kept,) = ctx.federation.get("result_left_cols", tag, guest)
            return {names[a] for a in kept if a in names}
        own = self._ivs(ctx, binning["binning_result"], {header[c]: c for c in left}, method)
        hosts = [] if self._local_only(p, method) else ctx.role_parties("host")
        candidates: dict[tuple[str, Any], float] = {("guest", c): v for c, v in own.items()}
        host_sets = ctx.federation.get("host_select_cols", tag, hosts) if hosts else []
        for host, names in zip(hosts, host_sets):
            results = binning.get("host_results", {}).get(host.party_id, {})
            candidates.update({(host.party_id, a): v for a, v in self._ivs(ctx, results, {a: a for a in names},
                                                                             method).items()})
        kept = self._decide(ctx, p, method, candidates, hosts)
        for host in hosts:
            left_names = sorted(a for pid, a in kept if pid == host.party_id)
            model["host_left_cols"][host.party_id] = left_names
            ctx.federation.remote(left_names, "result_left_cols", tag, [host])
        return {c for role, c in kept if role == "guest"}

    @staticmethod
    def _ivs(ctx: Context, results: dict, names: dict[str, Any], method: str) -> dict[Any, float]:
        missing = [n for n in names if n not in results or "iv" not in results[n]]
        if missing:
            raise ComponentError(f"{ctx.component}: filter method '{method}': the binning model has no IV for "
                                 f"columns {sorted(missing)} (bin them, without skip_static)")
        return {col: float(results[n]["iv"]) for n, col in names.items()}

    @staticmethod
    def _decide(ctx: Context, p: FeatureSelectionParams, method: str, ivs: dict, hosts) -> set:
        return IV_FILTERS[method](ctx.component, p, ivs, [h.party_id for h in hosts])


# ---------------------------------------------------------------- the filters, by FATE method name

def _manually(component: str, p: FeatureSelectionParams, header: list[str], left: set[int], metric) -> set[int]:
    mp = p.manually_param
    kept = left - set(pick_columns(component, header, mp.filter_out_indexes or [], mp.filter_out_names,
                                   "manually_param.filter_out_indexes", "manually_param.filter_out_names"))
    if mp.left_col_indexes is not None or mp.left_col_names is not None:
        kept &= set(pick_columns(component, header, mp.left_col_indexes or [], mp.left_col_names,
                                 "manually_param.left_col_indexes", "manually_param.left_col_names"))
    return kept


def _statistic(component: str, p: FeatureSelectionParams, header: list[str], left: set[int], metric) -> set[int]:
    sp = p.statistic_param
    names = _listify(sp.metrics, 1)
    kept = set(left)
    for name, ftype, take_high, thr in zip(names, _listify(sp.filter_type, len(names)),
                                           _listify(sp.take_high, len(names)), _listify(sp.threshold, len(names))):
        kept &= common_filter(component, metric(name), ftype, thr, take_high)
    return kept


#: (component, params, header, candidates, metric(name) -> {column: value}) -> kept columns
LOCAL_FILTERS: dict[str, Callable[..., set[int]]] = {
    "manually": _manually,
    "unique_value": lambda cpn, p, header, left, metric: {
        c for c, s in metric("std").items() if s > p.unique_param.eps},
    "coefficient_of_variation_value_thres": lambda cpn, p, header, left, metric: by_threshold(
        metric("coefficient_of_variance"), p.variance_coe_param.value_threshold),
    "statistic_filter": _statistic,
    "percentage_value": lambda cpn, p, header, left, metric: {
        c for c, r in metric("top_value_ratio").items() if r <= p.percentage_value_param.upper_pct},
}


def _iv_value(component: str, p: FeatureSelectionParams, ivs: dict, hosts: list[str]) -> set:
    thresholds = dict(zip(hosts, p.iv_value_param.host_thresholds or []))
    return {k for k, v in ivs.items() if v >= thresholds.get(k[0], p.iv_value_param.value_threshold)}


def _iv_filter(component: str, p: FeatureSelectionParams, ivs: dict, hosts: list[str]) -> set:
    """Each (metric, filter_type, threshold, take_high) of ``iv_param`` in turn; with
    ``select_federated`` false, host columns are ranked per host with the ``host_*`` settings."""
    ip = p.iv_param
    metrics = _listify(ip.metrics, 1)
    if any(m != "iv" for m in metrics):
        raise ComponentError(f"{component}: iv_param.metrics {metrics}: only 'iv' is known")
    n = len(metrics)
    kept = set(ivs)
    for i, (ftype, thr, take_high) in enumerate(zip(_listify(ip.filter_type, n), _listify(ip.threshold, n),
                                                    _listify(ip.take_high, n))):
        if ip.select_federated:
            kept &= common_filter(component, {k: ivs[k] for k in kept}, ftype, thr, take_high)
            continue
        step = common_filter(component, {k: ivs[k] for k in kept if k[0] == "guest"}, ftype, thr, take_high)
        for host in hosts:
            h_type = _pick(ip.host_filter_type, i) or ftype
            h_thr = _pick(ip.host_top_k if h_type == "top_k" and ip.host_top_k is not None else ip.host_threshold, i)
            step |= common_filter(component, {k: ivs[k] for k in kept if k[0] == host}, h_type,
                                  thr if h_thr is None else h_thr, take_high)
        kept = step
    return kept


def _pick(value, step: int):
    """A host_* setting for filter step ``step``: one value for all steps, or one per step (as metrics)."""
    return value[step] if isinstance(value, list) else value


#: (component, params, {(party, column): iv}, host party ids) -> kept keys
IV_FILTERS: dict[str, Callable[..., set]] = {
    "iv_value_thres": _iv_value,
    "iv_percentile": lambda cpn, p, ivs, hosts: top_percentile(ivs, p.iv_percentile_param.percentile_threshold),
    "iv_top_k": lambda cpn, p, ivs, hosts: top_k(ivs, p.iv_top_k_param.k),
    "iv_filter": _iv_filter,
}
