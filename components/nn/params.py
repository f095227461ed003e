"""HomoNN's parameters, as FATE 1.x confs spell them, checked without importing torch.

A network is declared, never pickled: either FATE's ``nn_define`` (a Sequential of
``torch.nn`` layers by class name and keyword arguments, keyed ``"<order>-<n>"``) or
``model: {module, class, params}`` naming a class of the allow list (the built-ins of
:mod:`components.nn.models` and the ``fedweave.models`` entry points). The training
settings may sit at the top level (FATE <= 1.8: ``max_iter``, ``batch_size``,
``aggregate_every_n_epoch``, ``early_stop``) or in ``trainer.param`` (FATE >= 1.9's
``fedavg_trainer``); setting one in both places to different values is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from components.base import TrainingParams
from components.linear.params import PredictParam
from flow.core.registry import Registry

#: the models a ``model`` section may name: built-ins here, more through ``fedweave.models``
BUILTIN_MODELS = {"MLP": "components.nn.models:MLP", "CNN": "components.nn.models:CNN",
                  "LogisticHead": "components.nn.models:LogisticHead"}
MODELS: Registry[Any] = Registry("models", BUILTIN_MODELS)

#: torch.nn layers an ``nn_define`` may use (stateless or plain-tensor layers only)
LAYERS = frozenset({
    "Linear", "Bilinear", "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d",
    "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Dropout", "Dropout1d", "Dropout2d", "AlphaDropout",
    "Flatten", "Unflatten", "Identity", "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU",
    "Mish", "Sigmoid", "LogSigmoid", "Hardsigmoid", "Tanh", "Hardtanh", "Softmax", "LogSoftmax", "Softplus",
    "Softsign", "Tanhshrink", "Threshold",
})
#: loss -> the task it implies under ``task_type: auto``
LOSSES = {"BCELoss": "binary", "BCEWithLogitsLoss": "binary", "CrossEntropyLoss": "multi", "NLLLoss": "multi",
          "MSELoss": "regression", "L1Loss": "regression", "SmoothL1Loss": "regression", "HuberLoss": "regression"}
OPTIMIZERS = frozenset({"SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "RMSprop", "NAdam", "RAdam", "ASGD"})
DEVICE = re.compile(r"^(cpu|auto|cuda|cuda:\d+)$")


def _refuse(what: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("not_supported", "not supported: " + what, ctx)


class TrainerParam(BaseModel):
    """``trainer.param`` of FATE's ``fedavg_trainer``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    #: accepted so a FATE conf validates; they tune FATE's data loader or its checkpoint files
    inert: ClassVar[frozenset[str]] = frozenset({"pin_memory", "data_loader_worker", "checkpoint_save_freqs",
                                                 "save_to_local_dir", "validation_freqs"})

    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = None
    aggregate_every_n_epoch: int | None = Field(None, ge=1)
    secure_aggregate: bool | None = None
    weighted_aggregation: bool = True
    early_stop: Literal["diff", "abs", "weight_diff"] | None = None
    tol: float = 1e-4
    shuffle: bool = True
    validation_freqs: int | None = None
    cuda: bool | int | None = None
    task_type: Literal["auto", "binary", "multi", "regression"] = "auto"
    pin_memory: bool = True
    data_loader_worker: int = 4
    checkpoint_save_freqs: int | None = None
    save_to_local_dir: bool = False
    collate_fn: Any = None
    collate_fn_params: Any = None

    @model_validator(mode="after")
    def _check(self) -> TrainerParam:
        if self.collate_fn is not None or self.collate_fn_params is not None:
            raise _refuse("trainer.param.collate_fn (rows are batched as tensors of the table's features)")
        return self

    def notices(self) -> dict[str, str]:
        fields = type(self).model_fields
        return {name: "accepted for FATE compatibility, not acted on"
                for name in sorted(self.inert & self.model_fields_set)
                if getattr(self, name) != fields[name].get_default()}


class TrainerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    trainer_name: str = "fedavg_trainer"
    param: TrainerParam = TrainerParam()

    @model_validator(mode="after")
    def _check(self) -> TrainerSpec:
        if self.trainer_name != "fedavg_trainer":
            raise _refuse("trainer '{t}' (HomoNN runs fedavg_trainer)", t=self.trainer_name)
        return self

    def notices(self) -> dict[str, str]:
        return {f"param.{k}": v for k, v in self.param.notices().items()}


class DatasetSpec(BaseModel):
    """FATE's ``dataset``: only its table dataset exists here (the rows of the input table)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dataset_name: str = "table"
    param: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if self.dataset_name != "table":
            raise _refuse("dataset '{d}' (HomoNN reads the input table: dataset 'table')", d=self.dataset_name)
        unknown = sorted(set(self.param) - {"flatten_label", "label_dtype", "feature_dtype", "label_col_name"})
        if unknown:
            raise _refuse("dataset.param {u} (known: flatten_label, label_dtype, feature_dtype, label_col_name)",
                          u=unknown)
        return self


class ModelSpec(BaseModel):
    """``model: {module, class, params}``: an allow-listed class and its keyword arguments."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    module: str | None = None
    class_name: str = Field(alias="class")
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        allowed = allowed_modules(self.class_name)
        full = f"{self.module}.{self.class_name}" if self.module else self.class_name
        if not allowed or (self.module is not None and self.module not in allowed):
            raise _refuse("model class '{c}' (allowed: components.nn.models {b} and the fedweave.models entry "
                          "points {e})", c=full, b=sorted(BUILTIN_MODELS), e=sorted(set(MODELS.names())
                                                                                   - set(BUILTIN_MODELS)))
        return self


def allowed_modules(class_name: str) -> set[str]:
    """The ``module`` values that may name ``class_name`` (empty: not allowed at all)."""
    if class_name in BUILTIN_MODELS:
        return {"components.nn.models", "fedweave.models"}
    found = {ep.value.partition(":")[0] for ep in entry_points(group=MODELS.group) if ep.name == class_name}
    return found | {"fedweave.models"} if found else set()


def ordered_layers(nn_define: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    """The layers of an ``nn_define`` in order: FATE keys them ``"<order>-<n>"``."""
    if isinstance(nn_define, list):
        return list(nn_define)

    def order(key: str) -> tuple[int, str]:
        head = key.split("-", 1)[0]
        return (int(head), key) if head.isdigit() else (1 << 30, key)

    return [nn_define[k] for k in sorted(nn_define, key=order)]


def check_layer(spec: Any, where: str) -> None:
    if not isinstance(spec, dict) or not isinstance(spec.get("layer"), str):
        raise PydanticCustomError("nn_define", "nn_define {w} must be an object with a 'layer' name", {"w": where})
    name = spec["layer"]
    if name == "CustModel":
        ModelSpec.model_validate({"module": None, "class": spec.get("class_name", ""),
                                  "params": spec.get("param") or {}})
        return
    if name not in LAYERS:
        raise _refuse("nn_define layer '{n}' at {w} (torch.nn layers allowed: {a})", n=name, w=where,
                      a=", ".join(sorted(LAYERS)))
    if spec.get("initializer"):
        raise _refuse("nn_define {w} initializer (layers start with torch's default initialisation under "
                      "torch_seed)", w=where)
    for key in ("device", "dtype"):
        if spec.get(key) is not None:
            raise _refuse("nn_define {w} {k} (set HomoNN's device; weights are float32)", w=where, k=key)


@dataclass(frozen=True)
class Settings:
    """The training settings after FATE's two places for them are merged."""

    epochs: int
    batch_size: int
    aggregate_every: int
    secure_aggregate: bool
    weighted: bool
    early_stop: str | None
    tol: float
    shuffle: bool
    device: str
    task_type: str


class HomoNNParams(TrainingParams):
    inert = TrainingParams.inert | {"config_type", "encode_label"}

    nn_define: dict[str, Any] | list[Any] | None = None
    model: ModelSpec | None = None
    loss: dict[str, Any] | str | None = None
    optimizer: dict[str, Any] | str = {"optimizer": "SGD", "lr": 0.01}
    trainer: TrainerSpec = TrainerSpec()
    dataset: DatasetSpec = DatasetSpec()
    torch_seed: int = 100
    config_type: Literal["pytorch", "nn"] = "pytorch"
    epochs: int | None = Field(None, ge=1)
    max_iter: int | None = Field(None, ge=1)
    batch_size: int | None = None
    aggregate_every_n_epoch: int | None = Field(None, ge=1)
    secure_aggregate: bool | None = None
    early_stop: Literal["diff", "abs", "weight_diff"] | dict[str, Any] | None = None
    tol: float | None = None
    device: str | None = None
    predict_param: PredictParam = PredictParam()
    encode_label: bool = False
    ds_config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> HomoNNParams:
        if (self.nn_define is None) == (self.model is None):
            raise PydanticCustomError("model", "HomoNN needs exactly one of nn_define and model", {})
        if self.nn_define is not None:
            layers = ordered_layers(self.nn_define)
            if not layers:
                raise PydanticCustomError("nn_define", "nn_define lists no layer", {})
            for i, spec in enumerate(layers):
                check_layer(spec, f"layer {i}")
        if self.loss is None:
            raise PydanticCustomError("loss", "HomoNN needs a loss (e.g. {{\"loss_fn\": \"BCELoss\"}})", {})
        if self.loss_name() not in LOSSES:
            raise _refuse("loss '{n}' (losses: {a})", n=self.loss_name(), a=", ".join(LOSSES))
        if self.optimizer_name() not in OPTIMIZERS:
            raise _refuse("optimizer '{n}' (torch.optim: {a})", n=self.optimizer_name(),
                          a=", ".join(sorted(OPTIMIZERS)))
        if isinstance(self.optimizer, dict) and self.optimizer.get("config_type", "pytorch") != "pytorch":
            raise _refuse("optimizer config_type '{c}' (pytorch only)", c=self.optimizer.get("config_type"))
        if self.ds_config:
            raise _refuse("ds_config (DeepSpeed)")
        if self.cv_param.need_cv:
            raise _refuse("cv_param.need_cv for HomoNN")
        if self.device is not None and not DEVICE.match(self.device):
            raise PydanticCustomError("device", "device must be cpu, cuda, cuda:N or auto, got '{d}'",
                                      {"d": self.device})
        self.settings()  # the two places of each setting agree
        return self

    def loss_name(self) -> str:
        if isinstance(self.loss, str):
            return self.loss
        return str((self.loss or {}).get("loss_fn", (self.loss or {}).get("method", "")))

    def loss_kwargs(self) -> dict[str, Any]:
        return {} if isinstance(self.loss, str) or self.loss is None else \
            {k: v for k, v in self.loss.items() if k not in ("loss_fn", "method")}

    def optimizer_name(self) -> str:
        if isinstance(self.optimizer, str):
            return self.optimizer
        return str(self.optimizer.get("optimizer", self.optimizer.get("method", "")))

    def optimizer_kwargs(self) -> dict[str, Any]:
        if isinstance(self.optimizer, str):
            return {}
        return {k: v for k, v in self.optimizer.items() if k not in ("optimizer", "method", "config_type")}

    def settings(self) -> Settings:
        tp = self.trainer.param

        def pick(name: str, top: Any, nested: Any, default: Any) -> Any:
            if top is not None and nested is not None and top != nested:
                raise PydanticCustomError("conflict", "{n} is {a} at the top level but {b} in trainer.param: "
                                          "set it in one place", {"n": name, "a": top, "b": nested})
            return nested if nested is not None else top if top is not None else default

        if self.epochs is not None and self.max_iter is not None and self.epochs != self.max_iter:
            raise PydanticCustomError("conflict", "epochs and max_iter differ: set one", {})
        early, tol = self.early_stop, self.tol
        if isinstance(early, dict):  # FATE <= 1.8: {"early_stop": "diff", "eps": 1e-4}
            unknown = set(early) - {"early_stop", "eps"}
            if unknown or early.get("early_stop") not in ("diff", "abs", "weight_diff", None):
                raise _refuse("early_stop {e} (diff, abs or weight_diff, with eps)", e=early)
            tol = early.get("eps", tol)
            early = early.get("early_stop")
        cuda = tp.cuda
        nested_device = None if cuda is None or cuda is False else "cuda" if cuda is True else f"cuda:{cuda}"
        batch = pick("batch_size", self.batch_size, tp.batch_size, 512)
        if batch != -1 and batch <= 0:
            raise PydanticCustomError("batch_size", "batch_size must be -1 (all rows) or positive, got {b}",
                                      {"b": batch})
        return Settings(
            epochs=pick("epochs", self.epochs if self.epochs is not None else self.max_iter, tp.epochs, 10),
            batch_size=batch,
            aggregate_every=pick("aggregate_every_n_epoch", self.aggregate_every_n_epoch,
                                 tp.aggregate_every_n_epoch, 1),
            secure_aggregate=pick("secure_aggregate", self.secure_aggregate, tp.secure_aggregate, True),
            weighted=tp.weighted_aggregation,
            early_stop=pick("early_stop", early, tp.early_stop, None),
            tol=float(pick("tol", tol, tp.tol if "tol" in tp.model_fields_set else None, 1e-4)),
            shuffle=tp.shuffle,
            device=pick("device", self.device, nested_device, "cpu"),
            task_type=tp.task_type)

    def task_type(self) -> str:
        given = self.settings().task_type
        return LOSSES[self.loss_name()] if given == "auto" else given

    def notices(self) -> dict[str, str]:
        found = super().notices()
        if self.trainer.param.validation_freqs:
            found["trainer.param.validation_freqs"] = ("validate_data is scored once, after training, not every "
                                                       "validation_freqs epochs")
        return found
