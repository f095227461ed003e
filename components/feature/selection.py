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
the binning step gave it (anonymous names and IVs). A multiclass binning model holds one
one-vs-rest IV per class; ``iv_param.mul_class_merge_type`` merges them per filter step
(``average``, the default and what the other IV methods use, ``min`` or ``max``).

The statistic methods (``unique_value``: stddev >= eps, ``coefficient_of_variation_value_thres``,
``outlier_cols``: the ``percentile`` value <= ``upper_threshold``, ``statistic_filter``) read
a DataStatistics model given as ``isometric_model``; a statistic it lacks is computed here
from the same party's data with the same formulas. The SecureBoost methods
(``hetero_sbt_filter``, ``hetero_fast_sbt_filter``, ``homo_sbt_filter``) rank each party's
own columns by the ``feature_importance`` entries of the tree model. With
``use_anonymous`` the names of ``select_names`` and ``manually_param`` are this party's
anonymous names (``<role>_<party_id>_x<index>``).
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Outputs, Params
from components.feature.common import keep_features, model_columns, pick_columns, with_columns
from components.feature.selection_pearson import MODEL_FILTERS, CorrelationFilterParam, PsiFilterParam, VifFilterParam
from components.feature.selection_rules import (
    ClassIV,
    ColumnMetrics,
    anonymous_to_real,
    by_threshold,
    common_filter,
    listify,
    merged_iv,
    pick_step,
    sbt_step,
    top_k,
    top_percentile,
)
from components.feature.selection_rules import column_statistics as column_statistics  # for callers
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


class OutlierColsParam(_Sub):
    percentile: float = Field(1.0, ge=0, le=1)
    upper_threshold: float = 1.0


MERGE_TYPES = ("average", "min", "max")


class CommonFilterParam(_Sub):
    metrics: str | list[str] = "iv"
    filter_type: str | list[str] = "threshold"
    take_high: bool | list[bool] = True
    threshold: float | list[float] = 1.0
    host_filter_type: str | list[str] | None = None
    host_threshold: float | list[float] | None = None
    host_top_k: int | list[int] | None = None
    #: per host, the threshold of its columns (per metric when ``metrics`` is a list)
    host_thresholds: list[float | list[float] | None] | None = None
    select_federated: bool = True
    mul_class_merge_type: str | list[str] = "average"

    @model_validator(mode="after")
    def _same_lengths(self) -> "CommonFilterParam":
        n = len(self.metrics) if isinstance(self.metrics, list) else 1
        for name in ("filter_type", "take_high", "threshold", "host_filter_type", "host_threshold", "host_top_k",
                     "mul_class_merge_type"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} metrics")
        if isinstance(self.metrics, list) and self.host_thresholds is not None and len(self.host_thresholds) != n:
            raise ValueError(f"host_thresholds has {len(self.host_thresholds)} entries for {n} metrics")
        bad = [m for m in listify(self.mul_class_merge_type, 1) if m not in MERGE_TYPES]
        if bad:
            raise ValueError(f"mul_class_merge_type {bad} unknown (use {', '.join(MERGE_TYPES)})")
        return self

    def host_threshold_at(self, step: int, host: int) -> float | None:
        """``host_thresholds`` for filter step ``step`` and the ``host``-th host (None: as the guest)."""
        per_host = self.host_thresholds[step] if isinstance(self.metrics, list) and self.host_thresholds else \
            self.host_thresholds
        if not isinstance(per_host, list) or host >= len(per_host):
            return None
        value = per_host[host]
        return None if value is None else float(value)  # type: ignore[arg-type]


class SbtFilterParam(CommonFilterParam):
    metrics: str | list[str] = "feature_importance"


class FeatureSelectionParams(Params):
    select_col_indexes: int | list[int] = -1
    select_names: list[str] | None = None
    use_anonymous: bool = False
    filter_methods: list[str] = ["manually"]
    unique_param: UniqueValueParam = UniqueValueParam()
    iv_value_param: IVValueSelectionParam = IVValueSelectionParam()
    iv_percentile_param: IVPercentileSelectionParam = IVPercentileSelectionParam()
    iv_top_k_param: IVTopKParam = IVTopKParam()
    variance_coe_param: VarianceOfCoeSelectionParam = VarianceOfCoeSelectionParam()
    manually_param: ManuallyFilterParam = ManuallyFilterParam()
    iv_param: CommonFilterParam = CommonFilterParam(metrics="iv")
    statistic_param: CommonFilterParam = CommonFilterParam(metrics="mean")
    outlier_param: OutlierColsParam = OutlierColsParam()
    percentage_value_param: PercentageValueParam = PercentageValueParam()
    psi_param: PsiFilterParam = PsiFilterParam()
    sbt_param: SbtFilterParam = SbtFilterParam()
    correlation_param: CorrelationFilterParam = CorrelationFilterParam()
    vif_param: VifFilterParam = VifFilterParam()

    @field_validator("filter_methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in all_filters()]
        if unknown:
            raise PydanticCustomError("not_supported", "not supported: filter_methods {unknown} (supported: {known})",
                                      {"unknown": str(unknown), "known": ", ".join(all_filters())})
        return value


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
            unknown = [m for m in p.filter_methods if m not in all_filters()]
            if unknown:
                raise ComponentError(f"{ctx.component}: not supported: filter_methods {unknown} "
                                     f"(supported: {', '.join(all_filters())})")
            p = anonymous_to_real(ctx, p, header)
            select = pick_columns(ctx.component, header, p.select_col_indexes, p.select_names,
                                  "select_col_indexes", "select_names")
            model = {"role": ctx.role, "header": header, "select_cols": [header[c] for c in select],
                     "filter_results": [], "host_left_cols": {}}
            left_set = set(select)
            statistics = next((m for m in inputs.isometric_model if "statistics_result" in m), None)
            metric = ColumnMetrics(ctx.component, data, header, select, statistics)
            for step, method in enumerate(p.filter_methods):
                before = sorted(left_set)
                if method in IV_FILTERS:
                    left_set = self._iv_step(ctx, p, inputs, method, step, header, left_set, model)
                elif method in MODEL_FILTERS:  # selection_pearson.py: HeteroPearson / PSI models
                    left_set = MODEL_FILTERS[method](ctx, p, inputs, step, header, left_set, model)
                elif method in SBT_FILTERS:
                    left_set = sbt_step(ctx, p.sbt_param, inputs, method, header, left_set)
                else:
                    left_set = LOCAL_FILTERS[method](ctx.component, p, header, left_set,
                                                     lambda name, cols=left_set: metric(name, cols))
                model["filter_results"].append({"method": method,
                                                "filtered_out": [header[c] for c in before if c not in left_set]})
            left = sorted(left_set | (set(range(len(header))) - set(select)))
            model["left_cols"] = [header[c] for c in left]
            ctx.tracker.log_metric("selection", "left_cols", model["left_cols"])
            ctx.logger.info("kept %d of %d columns", len(left), len(header))
        table = data.table.map_values(keep_features(left))
        return Outputs(data=[Dataset(table, with_columns(data.meta, [header[c] for c in left]))], model=model)

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
        unranked: set[tuple[str, Any]] = set()
        for host, names in zip(hosts, host_sets):
            results = binning.get("host_results", {}).get(host.party_id, {})
            if not results and method == "iv_filter" and not p.iv_param.select_federated:
                unranked |= {(host.party_id, a) for a in names}  # no IVs (local_only binning): kept, as in FATE
                continue
            candidates.update({(host.party_id, a): v for a, v in self._ivs(ctx, results, {a: a for a in names},
                                                                             method).items()})
        kept = self._decide(ctx, p, method, candidates, hosts) | unranked
        for host in hosts:
            left_names = sorted(a for pid, a in kept if pid == host.party_id)
            model["host_left_cols"][host.party_id] = left_names
            ctx.federation.remote(left_names, "result_left_cols", tag, [host])
        return {c for role, c in kept if role == "guest"}

    @staticmethod
    def _ivs(ctx: Context, results: dict, names: dict[str, Any], method: str) -> dict[Any, float]:
        missing = [n for n in names if n not in results or not {"iv", "multiclass_iv"} & set(results[n])]
        if missing:
            raise ComponentError(f"{ctx.component}: filter method '{method}': the binning model has no IV for "
                                 f"columns {sorted(missing)} (bin them, without skip_static)")
        return {col: ClassIV(results[n]["multiclass_iv"]) if "multiclass_iv" in results[n]
                else float(results[n]["iv"]) for n, col in names.items()}

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
    """Each (metric, filter_type, threshold, take_high) of ``statistic_param`` in turn, each
    step ranking the columns the earlier steps kept."""
    sp = p.statistic_param
    names = listify(sp.metrics, 1)
    n = len(names)
    kept = set(left)
    for name, ftype, take_high, thr in zip(names, listify(sp.filter_type, n), listify(sp.take_high, n),
                                           listify(sp.threshold, n)):
        values = metric(name)
        kept = common_filter(component, {c: values[c] for c in kept}, ftype, thr, take_high)
    return kept


def _outlier(component: str, p: FeatureSelectionParams, header: list[str], left: set[int], metric) -> set[int]:
    op = p.outlier_param
    return by_threshold(metric(f"{op.percentile * 100:g}%"), op.upper_threshold, take_high=False)


#: (component, params, header, candidates, metric(name) -> {column: value}) -> kept columns
LOCAL_FILTERS: dict[str, Callable[..., set[int]]] = {
    "manually": _manually,
    "unique_value": lambda cpn, p, header, left, metric: by_threshold(metric("stddev"), p.unique_param.eps),
    "coefficient_of_variation_value_thres": lambda cpn, p, header, left, metric: by_threshold(
        metric("coefficient_of_variance"), p.variance_coe_param.value_threshold),
    "statistic_filter": _statistic,
    "outlier_cols": _outlier,
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
    metrics = listify(ip.metrics, 1)
    if any(m != "iv" for m in metrics):
        raise ComponentError(f"{component}: iv_param.metrics {metrics}: only 'iv' is known")
    n = len(metrics)
    kept = set(ivs)
    for i, (ftype, thr, take_high, merge) in enumerate(zip(
            listify(ip.filter_type, n), listify(ip.threshold, n), listify(ip.take_high, n),
            listify(ip.mul_class_merge_type, n))):
        values = {k: merged_iv(ivs[k], merge) for k in kept}
        per_host = [ip.host_threshold_at(i, j) for j in range(len(hosts))]
        if ip.select_federated and all(t is None for t in per_host):
            kept = common_filter(component, values, ftype, thr, take_high)
            continue
        step = common_filter(component, {k: v for k, v in values.items() if k[0] == "guest"}, ftype, thr, take_high)
        for host, given in zip(hosts, per_host):
            h_type = pick_step(ip.host_filter_type, i) or ftype
            h_thr = pick_step(ip.host_top_k if h_type == "top_k" and ip.host_top_k is not None
                              else ip.host_threshold, i)
            h_thr = given if given is not None else thr if h_thr is None else h_thr
            step |= common_filter(component, {k: v for k, v in values.items() if k[0] == host}, h_type,
                                  h_thr, take_high)
        kept = step
    return kept


#: (component, params, {(party, column): iv}, host party ids) -> kept keys
IV_FILTERS: dict[str, Callable[..., set]] = {
    "iv_value_thres": _iv_value,
    "iv_percentile": lambda cpn, p, ivs, hosts: top_percentile(ivs, p.iv_percentile_param.percentile_threshold),
    "iv_top_k": lambda cpn, p, ivs, hosts: top_k(ivs, p.iv_top_k_param.k),
    "iv_filter": _iv_filter,
}


#: FATE's SecureBoost filters; all read the same ``feature_importance`` entries
SBT_FILTERS: dict[str, str] = {"hetero_sbt_filter": "HeteroSecureBoost",
                               "hetero_fast_sbt_filter": "HeteroFastSecureBoost",
                               "homo_sbt_filter": "HomoSecureBoost"}


def all_filters() -> list[str]:
    """Every filter method this component runs (the names FATE's confs use)."""
    return [*LOCAL_FILTERS, *IV_FILTERS, *SBT_FILTERS, *MODEL_FILTERS]
