"""HeteroSecureBoost parameters, FATE 1.x names first.

FATE users write ``bin_num``, ``tree_param {max_depth, min_leaf_node, criterion_method,
criterion_param: [reg_lambda]}``, ``task_type classification|regression`` and
``objective_param {objective: cross_entropy|lse}``. The short names ``max_bin, max_depth,
l2, min_child_weight, objective (binary|multiclass|regression)`` are accepted too and
win where both are given.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.base import TrainingParams
from components.crypto.params import TreeEncryptParam
from components.linear.params import PredictParam
from components.tree.tree import SplitRule


class TreeParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    criterion_method: Literal["xgboost"] = "xgboost"
    #: [reg_lambda] or [reg_lambda, reg_alpha]
    criterion_param: list[float] = Field(default_factory=lambda: [0.1], min_length=1, max_length=2)
    max_depth: int = Field(3, ge=1, le=32)
    min_sample_split: int = Field(2, ge=2)
    min_impurity_split: float = 1e-3
    min_leaf_node: int = Field(1, ge=1)
    min_child_weight: float = Field(0.0, ge=0)
    max_split_nodes: int = Field(65536, ge=1)
    feature_importance_type: Literal["split", "gain"] = "split"
    n_iter_no_change: bool = True
    tol: float = 0.001
    #: as FATE: the boosting-level use_missing / zero_as_missing apply when either level sets them
    use_missing: bool = False
    zero_as_missing: bool = False
    deterministic: bool = False

    @field_validator("criterion_param", mode="before")
    @classmethod
    def _scalar(cls, v: Any) -> Any:
        return [v] if isinstance(v, (int, float)) else v

    @field_validator("criterion_param")
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        if any(x < 0 for x in v):
            raise ValueError("criterion_param values (reg_lambda, reg_alpha) must not be negative")
        return v


class ObjectiveParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    objective: Literal["cross_entropy", "lse"] | None = None
    params: list[float] | None = None


#: task_type / short objective names -> resolved task (classification is binary or multiclass by labels)
_TASKS = {"classification": "classification", "binary": "binary", "multiclass": "multiclass",
          "regression": "regression"}


class HeteroSecureBoostParams(TrainingParams):
    inert = TrainingParams.inert | {"binning_error", "encrypted_mode_calculator_param"}
    task_type: Literal["classification", "regression", "binary", "multiclass"] = "classification"
    objective_param: ObjectiveParam = ObjectiveParam()
    objective: Literal["binary", "multiclass", "regression"] | None = None
    learning_rate: float = Field(0.3, gt=0)
    num_trees: int = Field(5, ge=1, le=10000)
    subsample_feature_rate: float = Field(1.0, gt=0, le=1)
    #: FATE's early stop: end boosting once a round changes the training loss by less than tol
    n_iter_no_change: bool = True
    tol: float = Field(1e-4, ge=0)
    bin_num: int = Field(32, ge=2, le=65536)
    max_bin: int | None = Field(None, ge=2, le=65536)
    tree_param: TreeParam = TreeParam()
    max_depth: int | None = Field(None, ge=1, le=32)
    l2: float | None = Field(None, ge=0)
    min_child_weight: float | None = Field(None, ge=0)
    encrypt_param: TreeEncryptParam = TreeEncryptParam()
    #: pack several split candidates per ciphertext on the way back to the guest
    cipher_compress: bool = True
    predict_param: PredictParam = PredictParam()
    random_seed: int | None = 100
    boosting_strategy: Literal["std"] = "std"
    #: missing values (NaN; 0 too with zero_as_missing) follow a learned direction at each split
    use_missing: bool = False
    #: FATE: only used with use_missing
    zero_as_missing: bool = False
    #: true (FATE 1.x) or a number of boosting rounds (FATE 1.9+) grown from the guest's features alone
    complete_secure: bool | int = Field(False, ge=0)
    sparse_optimization: Literal[False] = False
    run_goss: Literal[False] = False
    multi_mode: Literal["single_output"] = "single_output"
    #: predict so that each party only learns leaf candidates and the guest only the final scores
    EINI_inference: bool = False
    #: the guest scales the encrypted leaf weights by a secret random factor (removed after decryption)
    EINI_random_mask: bool = False
    #: refuse EINI when the ensemble has too few leaf combinations to hide a host's decisions
    EINI_complexity_check: bool = False
    binning_error: float = 1e-4
    encrypted_mode_calculator_param: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HeteroSecureBoostParams:
        obj = self.objective_param.objective
        if obj == "lse" and self.task != "regression":
            raise ValueError("objective_param.objective 'lse' needs task_type 'regression'")
        if obj == "cross_entropy" and self.task == "regression":
            raise ValueError("objective_param.objective 'cross_entropy' needs a classification task_type")
        return self

    @property
    def task(self) -> str:
        """binary, multiclass, regression, or classification (binary or multiclass by the labels)."""
        if self.objective is not None:
            return self.objective
        return _TASKS[self.task_type]

    def notices(self) -> dict[str, str]:
        found = super().notices()
        if (self.zero_as_missing or self.tree_param.zero_as_missing) and not self.missing[0]:
            found["zero_as_missing"] = "has no effect without use_missing (as in FATE): zeros are values"
        return found

    @property
    def missing(self) -> tuple[bool, bool]:
        """(use_missing, zero_as_missing) in effect; zeros count as missing only with use_missing."""
        use = self.use_missing or self.tree_param.use_missing
        return use, use and (self.zero_as_missing or self.tree_param.zero_as_missing)

    @property
    def guest_only_rounds(self) -> int:
        """Boosting rounds grown by the guest alone (complete_secure)."""
        cs = self.complete_secure
        return int(cs) if not isinstance(cs, bool) else (1 if cs else 0)

    @property
    def bins(self) -> int:
        return self.max_bin if self.max_bin is not None else self.bin_num

    @property
    def depth(self) -> int:
        return self.max_depth if self.max_depth is not None else self.tree_param.max_depth

    def split_rule(self) -> SplitRule:
        tp = self.tree_param
        return SplitRule(
            l2=self.l2 if self.l2 is not None else tp.criterion_param[0],
            l1=tp.criterion_param[1] if len(tp.criterion_param) > 1 else 0.0,
            min_child_weight=self.min_child_weight if self.min_child_weight is not None else tp.min_child_weight,
            min_leaf_node=tp.min_leaf_node, min_sample_split=tp.min_sample_split,
            min_impurity_split=tp.min_impurity_split)
