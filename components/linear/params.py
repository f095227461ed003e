"""Parameters every linear model shares, with FATE 1.x's names and defaults, so a
HeteroLR conf block carries over to HomoLR and back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from components.base import TrainingParams
from components.linear.optimizer import InitParam

OptimizerName = Literal["sgd", "rmsprop", "adam", "adagrad", "nesterov_momentum_sgd"]


class PredictParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    threshold: float = 0.5


class LinearParams(TrainingParams):
    penalty: Literal["L1", "l1", "L2", "l2", "none", "None"] = "L2"
    tol: float = 1e-4
    alpha: float = 1.0
    optimizer: OptimizerName = "rmsprop"
    batch_size: int = -1
    learning_rate: float = 0.01
    init_param: InitParam = InitParam()
    max_iter: int = Field(100, ge=1)
    early_stop: Literal["diff", "abs", "weight_diff"] = "diff"
    predict_param: PredictParam = PredictParam()
    decay: float = 1.0
    decay_sqrt: bool = True
    shuffle: bool = True
    multi_class: Literal["ovr"] = "ovr"
