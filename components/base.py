"""What every component is: a FATE module name, a params model, roles, ports, handlers.

A component is written once against the interfaces in ``backends`` and ``federation``;
its context hands it the party's computing session, federation endpoint, storage and
tracker, so nothing in a component knows which engine runs underneath.
"""

from __future__ import annotations

import logging
from abc import ABC
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from backends.computing.api import Session, Table
from backends.storage.api import StorageEngine, TableMeta
from federation import codec
from federation.api import Federation, Party
from flow.core.errors import ComponentError
from flow.core.registry import Registry

#: the input data ports FATE's DSL v2 knows
DATA_PORTS = ("data", "train_data", "validate_data", "test_data")


class Params(BaseModel):
    """Base of every component's params: unknown names are errors, types are checked strictly
    (as FATE's own parameter checker: ``"0.01"`` is not a float, ``"yes"`` not a boolean; an
    integer is still a float).

    ``need_run`` is FATE's per-party switch to skip a component on that party.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)
    #: FATE parameters accepted so that a FATE conf validates unchanged, but not acted on
    inert: ClassVar[frozenset[str]] = frozenset()

    need_run: bool = True

    def inert_settings(self) -> list[str]:
        """The inert parameters this conf sets to something else than their default."""
        fields = type(self).model_fields
        return sorted(name for name in self.inert & self.model_fields_set
                      if getattr(self, name) != fields[name].get_default(call_default_factory=True))

    def notices(self) -> dict[str, str]:
        """What a job should be told about this conf, by dotted field: inert settings it sets, and
        what a nested settings model says about itself through its own ``notices()`` (e.g.
        ``encrypt_param.key_length``: a Paillier key shorter than 1024 bits)."""
        found = {name: "accepted for FATE compatibility, not acted on" for name in self.inert_settings()}
        for name, value in self:
            tell = getattr(value, "notices", None) if isinstance(value, BaseModel) else None
            for sub, text in (tell() if callable(tell) else {}).items():
                found.setdefault(f"{name}.{sub}", text)
        return found


class CVParam(BaseModel):
    """FATE's ``cv_param``. With ``need_cv`` the component runs k-fold cross-validation
    (components/cv.py) instead of training one model; ``mode`` and ``role`` are set by FATE
    itself (here: from the component and the party) and ``evaluate_param`` was never read by
    FATE's k-fold (the component's own ``metrics`` are), so those three are not acted on.
    ``history_with_value`` is FATE 1.5's name for ``history_value_type: instance``."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion
    inert: ClassVar[frozenset[str]] = frozenset({"mode", "role", "evaluate_param"})

    n_splits: int = Field(5, ge=1)
    mode: Literal["hetero", "homo"] = "hetero"
    role: Literal["guest", "host", "arbiter"] = "guest"
    shuffle: bool = True
    random_seed: int | None = Field(1, ge=0)
    need_cv: bool = False
    output_fold_history: bool = True
    history_value_type: Literal["score", "instance"] = "score"
    history_with_value: bool | None = None
    evaluate_param: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _folds(self) -> CVParam:
        if self.need_cv and self.n_splits < 2:
            raise PydanticCustomError("n_splits", "cv_param.n_splits must be at least 2 to cross-validate, "
                                      "got {n}", {"n": self.n_splits})
        return self

    @property
    def value_type(self) -> str:
        """What the fold history holds: ``score`` (predictions) or ``instance`` (the rows)."""
        if "history_value_type" not in self.model_fields_set and self.history_with_value:
            return "instance"
        return self.history_value_type

    def notices(self) -> dict[str, str]:
        fields = type(self).model_fields
        return {name: "accepted for FATE compatibility, not acted on"
                for name in sorted(self.inert & self.model_fields_set)
                if getattr(self, name) != fields[name].get_default(call_default_factory=True)}


class TrainingParams(Params):
    """FATE's validation, early-stopping, callback and cross-validation switches that every
    trained model's conf may carry; accepted so a FATE conf validates unchanged, and
    reported as not acted on when set (``flow job validate`` / ``submit``) unless the model
    acts on them. ``cv_param`` is acted on for every trained model (:class:`Component.run`)."""

    inert = frozenset({"validation_freqs", "early_stopping_rounds", "metrics", "use_first_metric_only",
                       "callback_param"})

    validation_freqs: int | None = None
    early_stopping_rounds: int | None = None
    metrics: list[str] | None = None
    use_first_metric_only: bool = False
    callback_param: dict[str, Any] | None = None
    cv_param: CVParam = CVParam()


@dataclass
class Instance:
    """One sample on one party: its features (float64) and, on the label holder, its label."""

    features: np.ndarray
    label: float | None = None
    #: FATE's sample weight (set by SampleWeight, read by models with ``uses_sample_weight``)
    weight: float | None = None


def register_codec() -> None:
    """Put Instance on the wire as tag ``X`` (its fields by name); the ``instance`` entry
    point of ``fedweave.codecs``, so a receiver decodes it before importing components."""
    codec.register_type(Instance, _INSTANCE_ENCODER)
    codec.register_tag(b"X", _INSTANCE_DECODER)


_INSTANCE_ENCODER = codec.dataclass_encoder(b"X")
_INSTANCE_DECODER = codec.dataclass_decoder(Instance)
register_codec()


@dataclass
class Dataset:
    """A Table with the meta that names its columns (what flows between components)."""

    table: Table
    meta: TableMeta


@dataclass
class Inputs:
    data: dict[str, Dataset] = field(default_factory=dict)
    #: every input on each port, in DSL order (``data`` holds one per port; Union takes several)
    all_data: dict[str, list[Dataset]] = field(default_factory=dict)
    #: the upstream component of each entry of ``all_data``, in the same order
    sources: dict[str, list[str]] = field(default_factory=dict)
    #: models from ``input.model`` (same component kind, e.g. for predict)
    model: list[dict[str, Any]] = field(default_factory=list)
    #: models from ``input.isometric_model`` (other components, e.g. binning -> selection)
    isometric_model: list[dict[str, Any]] = field(default_factory=list)
    #: caches from ``input.cache`` (an upstream Intersection's run_cache: this party's own part)
    cache: list[dict[str, Any]] = field(default_factory=list)

    def require(self, component: str, *ports: str) -> Dataset:
        """The first of ``ports`` (default ``data``) that is connected, or a clear error."""
        for port in ports or ("data",):
            if port in self.data:
                return self.data[port]
        raise ComponentError(f"{component}: no input data on {' or '.join(ports or ('data',))}")


def keys_in(keys: frozenset):
    """A Table.filter predicate keeping the given keys (picklable for workers)."""
    def keep(key, _value) -> bool:
        return key in keys
    return keep


@dataclass
class Outputs:
    data: list[Dataset] = field(default_factory=list)
    #: a JSON-able model (numpy arrays allowed); each party holds only its own part
    model: dict[str, Any] | None = None
    #: FATE 1.x's intersection cache (JSON-able, key material included): kept only in this
    #: party's own store, handed to components that name it in ``input.cache``
    cache: dict[str, Any] | None = None


class Tracker(Protocol):
    """Where a component reports what it made (implemented by the runtime)."""

    def log_metric(self, namespace: str, name: str, value: Any) -> None: ...

    def progress(self, done: int, total: int, message: str = "") -> None: ...


@dataclass
class Context:
    """Everything one party's share of one component gets from the runtime."""

    job_id: str
    component: str
    local: Party
    #: every party of the job by role, e.g. {"guest": [Party], "host": [...], "arbiter": [...]}
    parties: dict[str, list[Party]]
    computing: Session
    federation: Federation
    storage: StorageEngine
    tracker: Tracker
    logger: logging.Logger
    #: job parameters after role overrides (partitions, timeout, ...)
    job_parameters: dict[str, Any] = field(default_factory=dict)
    #: prefix for federation tags, unique per component and run attempt
    tag_prefix: str = ""

    @property
    def role(self) -> str:
        return self.local.role

    def tag(self, suffix: str = "") -> str:
        base = f"{self.component}.{self.tag_prefix}" if self.tag_prefix else self.component
        return f"{base}.{suffix}" if suffix else base

    def role_parties(self, role: str) -> list[Party]:
        return list(self.parties.get(role, []))


class Component(ABC):
    """Base of every algorithm. Subclasses set the ClassVars and define one method per
    role they run on (``guest``, ``host``, ``arbiter``), each ``(ctx, params, inputs) -> Outputs``."""

    module: ClassVar[str]
    params_model: ClassVar[type[Params]] = Params
    roles: ClassVar[tuple[str, ...]] = ("guest", "host", "arbiter")
    #: which input data ports it accepts (subset of DATA_PORTS); empty for none
    input_data: ClassVar[tuple[str, ...]] = ("data",)
    #: whether it accepts input.model / input.isometric_model
    accepts_model: ClassVar[bool] = False
    accepts_isometric_model: ClassVar[bool] = False
    #: whether it may declare output.data / output.model
    output_data: ClassVar[bool] = True
    output_model: ClassVar[bool] = False
    #: whether it may declare FATE 1.x's output.cache / take input.cache (Intersection's cache)
    output_cache: ClassVar[bool] = False
    accepts_cache: ClassVar[bool] = False
    #: whether it acts on (or keeps) the sample weights of its input (SampleWeight); if not, it is
    #: told so at run time and its outputs are marked as carrying none (:func:`drop_sample_weights`)
    uses_sample_weight: ClassVar[bool] = False

    def run(self, ctx: Context, params: Params, inputs: Inputs) -> Outputs:
        cv = getattr(params, "cv_param", None)
        if isinstance(cv, CVParam) and cv.need_cv and not inputs.model:
            from components.cv import cross_validate  # the driver calls back here once per fold, need_cv off

            return cross_validate(self, ctx, params, inputs)
        handler = getattr(self, ctx.role, None)
        if handler is None:
            raise ComponentError(f"{self.module} has no handler for role '{ctx.role}'")
        outputs = handler(ctx, params, inputs)
        if not self.uses_sample_weight:
            drop_sample_weights(ctx, self.module, inputs, outputs)
        return outputs


#: TableMeta.extra key of sample-weighted instances: the name of the stored weight column
SAMPLE_WEIGHT = "sample_weight"


def drop_sample_weights(ctx: Context, module: str, inputs: Inputs, outputs: Outputs) -> None:
    """Weighted data reached a component that ignores the weights (FATE would use or keep them):
    say so, and mark its outputs as unweighted so a weighted model downstream can refuse them."""
    given = list(inputs.data.values()) + [d for ds in inputs.all_data.values() for d in ds]
    if not any(d.meta.extra.get(SAMPLE_WEIGHT) for d in given):
        return
    ctx.logger.warning("%s (%s) does not use sample weights: the weights of its input are ignored and its "
                       "output data carries none", ctx.component, module)
    for ds in outputs.data:
        if ds.meta.extra.get(SAMPLE_WEIGHT):
            extra = {k: v for k, v in ds.meta.extra.items() if k != SAMPLE_WEIGHT}
            ds.meta = ds.meta.model_copy(update={"extra": {**extra, "sample_weight_dropped_by": ctx.component}})


COMPONENTS: Registry[type[Component]] = Registry(
    "components",
    {
        "Reader": "components.io.reader:Reader",
        "DataTransform": "components.io.data_transform:DataTransform",
        "Intersection": "components.psi.intersection:Intersection",
        "FeatureScale": "components.feature.scale:FeatureScale",
        "HeteroLR": "components.linear.hetero_lr:HeteroLR",
        "HeteroLinR": "components.linear.hetero_linr:HeteroLinR",
        "HeteroPoisson": "components.linear.hetero_poisson:HeteroPoisson",
        "HeteroSSHELR": "components.linear.sshe_lr:HeteroSSHELR",
        "HeteroSSHELinR": "components.linear.sshe_linr:HeteroSSHELinR",
        "Evaluation": "components.evaluation.evaluation:Evaluation",
        "HomoLR": "components.linear.homo_lr:HomoLR",
        "HomoNN": "components.nn.homo_nn:HomoNN",
        "HeteroNN": "components.nn.hetero_nn:HeteroNN",
        "HeteroSecureBoost": "components.tree.hetero_secureboost:HeteroSecureBoost",
        "HeteroFastSecureBoost": "components.tree.fast_secureboost:HeteroFastSecureBoost",
        "HomoSecureBoost": "components.tree.homo_secureboost:HomoSecureBoost",
        "HeteroFeatureBinning": "components.feature.binning:HeteroFeatureBinning",
        "HomoFeatureBinning": "components.feature.homo_binning:HomoFeatureBinning",
        "HeteroFeatureSelection": "components.feature.selection:HeteroFeatureSelection",
        "OneHotEncoder": "components.feature.onehot:OneHotEncoder",
        "HomoOneHotEncoder": "components.feature.homo_onehot:HomoOneHotEncoder",
        "FeatureImputation": "components.feature.imputation:FeatureImputation",
        "DataSplit": "components.feature.data_split:DataSplit",
        "HeteroDataSplit": "components.feature.data_split:HeteroDataSplit",
        "HomoDataSplit": "components.feature.data_split:HomoDataSplit",
        "Union": "components.io.union:Union",
        "FederatedSample": "components.feature.sample:FederatedSample",
        "SampleWeight": "components.feature.sample_weight:SampleWeight",
        "DataStatistics": "components.statistics.data_statistics:DataStatistics",
        "HeteroPearson": "components.statistics.pearson:HeteroPearson",
        "PSI": "components.statistics.psi:PSI",
        "LabelTransform": "components.feature.label_transform:LabelTransform",
        "ColumnExpand": "components.feature.column_expand:ColumnExpand",
        "Scorecard": "components.evaluation.scorecard:Scorecard",
        "SecureInformationRetrieval": "components.psi.sir:SecureInformationRetrieval",
        "HeteroSecureInformationRetrieval": "components.psi.sir:HeteroSecureInformationRetrieval",
        "FeldmanVerifiableSum": "components.feature.feldman_sum:FeldmanVerifiableSum",
        "HeteroKmeans": "components.cluster.hetero_kmeans:HeteroKmeans",
    },
)


def get_component(module: str) -> type[Component]:
    return COMPONENTS.get(module)


def roles_of(parties: dict[str, Sequence[Party]]) -> list[str]:
    return [r for r in ("guest", "host", "arbiter") if parties.get(r)]


def detail_columns(classes: Sequence[float]) -> list[str]:
    """A multiclass prediction's per-class probability columns, ``predict_detail_<class>``
    (integral classes written without a decimal point)."""
    return [f"predict_detail_{int(c) if float(c).is_integer() else c}" for c in classes]


def instances_meta(base: TableMeta, features: list[str], label: str | None, **extra: Any) -> TableMeta:
    """Meta of an Instance table: columns are the label (if any) then the features."""
    columns = ([label] if label else []) + list(features)
    return base.model_copy(update={
        "columns": columns, "label_column": label, "dtypes": ["double"] * len(columns),
        "extra": {**base.extra, "kind": "instances", **extra},
    })


def instance_to_row(has_label: bool, weighted: bool = False):
    """Instance -> stored row tuple (label first when present, weight last when ``weighted``);
    picklable for workers."""
    def convert(inst: Instance) -> tuple:
        feats = tuple(float(v) for v in inst.features)
        row = ((None if inst.label is None else float(inst.label)),) + feats if has_label else feats
        return row + (inst.weight,) if weighted else row
    return convert


def row_to_instance(has_label: bool, weighted: bool = False):
    """Stored row tuple -> Instance; the inverse of :func:`instance_to_row`."""
    def convert(row: tuple) -> Instance:
        weight = (None if row[-1] is None else float(row[-1])) if weighted else None
        row = row[:-1] if weighted else row
        if has_label:
            return Instance(np.asarray(row[1:], dtype=np.float64), None if row[0] is None else float(row[0]), weight)
        return Instance(np.asarray(row, dtype=np.float64), None, weight)
    return convert
